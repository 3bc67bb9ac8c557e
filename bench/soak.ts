// Soak benchmark: does the gateway give back what a connection took? N cycles
// of connect, subscribe, receive one record, close (a clean 1000), `--concurrency`
// at a time, against one gateway started as shipped (apps/gateway/src/server.ts in
// a child process: JWT auth, the policy, Redis rate limits, default queues), while
// a producer keeps the topic live. The gateway's RSS, open descriptors and V8
// heap are read at the start (after a warm-up and a quiet period), every
// `--every` seconds, and at the end once the sockets have closed and the node
// has been quiet; the drift and end/start ratio of each is printed, with
// cycles/s. Not a test: it prints figures.
//
//   bash deploy/local/node.sh bench/soak.ts [--cycles 200000] [--concurrency 50] [--warmup 2000]
//       [--quiet-ms 5000] [--every 30] [--max-minutes 40] [--no-gc] [--heap-diff]
//
// Kafka and Redis: KAFKA_BROKERS and REDIS_URL when set (a running stack),
// otherwise a broker and a Redis of its own (deploy/local/stack.ts).
//
// Prints the setup, the start reading, a line every --every seconds (cycles,
// cycles/s over the last period, RSS and its drift, open fds, heap not
// collected), then the cycles/s of the whole run, the failures by kind, a
// table of RSS, open fds and heap after GC: start, end, drift in %, end/start,
// and how many warn/error lines the gateway logged. A leak shows as an
// end/start that grows with --cycles; a one-off growth does not (JIT-compiled
// code: 0.9 MiB of the 1.1 MiB a 3,000-cycle run grew, by --heap-diff).
//
// Runs here (2 cores shared with other work, load average 4-16; 2026-12-04), 0 failed in each:
//   cycles   cycles/s  RSS start -> end        fds      heap after GC
//   5,000    1,059     114.2 -> 121.6 (1.065)  36 -> 37  26.1 -> 27.3 MiB (1.044)  one GC
//   200,000  456       131.9 -> 140.6 (1.066)  38 -> 35  27.3 -> 31.2 MiB (1.145)  one GC
//   200,000  433       (snapshotted)           36 -> 35  27.0 -> 27.1 MiB (1.002)  --heap-diff: +0.7 MiB, 478 KiB of it 150 arrays; no named constructor over 12 KiB
//   50,000   340       121.6 -> 127.0 (1.044)  36 -> 35  27.3 -> 27.0 MiB (0.990)  three GCs
// One GC left up to 4 MiB that more collections free; since then three are made.
// The gateway's CPU per cycle stayed 0.5-0.9 ms through the 200,000: the
// cycles/s moved with the machine's load, not with the gateway.
//
// What differs from a production gateway, and why:
// - the policy is bench/soak-policy/: one subject makes every connection, and the
//   example policy's highest plan (pro) allows 120 connects a minute; the soak's
//   plan is far above the load, so nothing is refused (the limiter still runs);
// - the per-address upgrade limit (rateLimit.http.upgrade, 600 a minute) is raised:
//   every client comes from 127.0.0.1;
// - the gateway runs with --inspect on 127.0.0.1 (an ephemeral port) so that the
//   heap is read after a full GC (HeapProfiler.collectGarbage): without one, the
//   heap figure is mostly the garbage of the last few seconds. --no-gc leaves it out
//   and reads RSS and descriptors only. --heap-diff also takes a heap snapshot
//   at the start and the end and prints what grew, by constructor (the start's
//   snapshot grows the RSS: the RSS row of such a run is not a figure).
//
// Bounded: every cycle has a 15 s deadline, every phase one too, and the whole
// run stops at --max-minutes (the figures are then those of the cycles done).
import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'

const root = join(import.meta.dirname, '..')
const POLICY_DIR = join(import.meta.dirname, 'soak-policy')
const SECRET = 'soak-bench-hs256-secret-0123456789abcdef'
// a cycle that takes this long is stuck (a real one takes tens of ms); it counts as a failure
const CYCLE_TIMEOUT_MS = 15_000
const START_TIMEOUT_MS = 60_000
// a record, then 5 ms: a new subscriber waits a few ms for its record. The cycle
// rate cannot pass concurrency x records/s (each socket waits for the next
// record): with 20 ms, 50 sockets stopped at ~1,230 cycles/s, the producer's pace
const PRODUCE_EVERY_MS = 10
const MiB = 2 ** 20

const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '200000' },
    concurrency: { type: 'string', default: '50' },
    warmup: { type: 'string' },
    'quiet-ms': { type: 'string', default: '5000' },
    every: { type: 'string', default: '30' },
    'max-minutes': { type: 'string', default: '40' },
    'no-gc': { type: 'boolean', default: false },
    'heap-diff': { type: 'boolean', default: false }
  }
})
const CYCLES = Number(args.cycles)
const CONCURRENCY = Number(args.concurrency)
// JIT, the topic's shared consumer, the Redis scripts, pools: not what the soak measures
const WARMUP = Number(args.warmup ?? Math.min(2000, Math.ceil(CYCLES / 10)))
const QUIET_MS = Number(args['quiet-ms'])
const EVERY_MS = Number(args.every) * 1000
const DEADLINE = Date.now() + Number(args['max-minutes']) * 60_000
const GC = !args['no-gc']
const HEAP_DIFF = GC && args['heap-diff']

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const say = (line: string) => process.stdout.write(`${line}\n`)

function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'soak', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 6 * 3600 })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

// ---- the gateway process ---------------------------------------------------------------

interface Gateway {
  child: ChildProcess
  base: string
  /** warn and error lines the gateway logged (pino JSON, level 40 and above) */
  problems: string[]
  stderr: () => string
  exited: Promise<number | null>
}

async function startGateway (configFile: string, port: number): Promise<Gateway> {
  const execArgv = GC ? ['--inspect=127.0.0.1:0'] : []
  const child = spawn(process.execPath, [...execArgv, join(root, 'apps', 'gateway', 'src', 'server.ts'), '--config', configFile], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const problems: string[] = []
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  let tail = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (tail + chunk).split('\n')
    tail = lines.pop()!
    // the config asks for warn and above; lines that are not pino's JSON are not the gateway's log
    for (const line of lines) {
      let level = 0
      try { level = (JSON.parse(line) as { level?: number }).level ?? 0 } catch {}
      if (level >= 40) problems.push(line)
    }
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    const ready = await fetch(`${base}/readyz`).then(res => res.status === 200, () => false)
    if (ready) break
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}:\n${stderr}`)
    if (Date.now() > deadline) throw new Error(`the gateway was not ready within ${START_TIMEOUT_MS} ms:\n${stderr}`)
    await sleep(200)
  }
  return { child, base, problems, stderr: () => stderr, exited }
}

/** The gateway's V8 heap through its inspector: a full GC first, then the heap in use. */
class Inspector {
  readonly #ws: WebSocket
  #id = 0
  readonly #waiting = new Map<number, (result: Record<string, unknown>) => void>()
  #chunks: string[] = []

  private constructor (ws: WebSocket) {
    this.#ws = ws
    ws.on('message', data => {
      const msg = JSON.parse(data.toString()) as { id?: number, result?: Record<string, unknown>, method?: string, params?: { chunk?: string } }
      if (msg.id !== undefined) this.#waiting.get(msg.id)?.(msg.result ?? {})
      else if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') this.#chunks.push(msg.params!.chunk!)
    })
  }

  static async open (child: ChildProcess, stderr: () => string): Promise<Inspector> {
    const deadline = Date.now() + START_TIMEOUT_MS
    let url: string | undefined
    while (!(url = /Debugger listening on (ws:\/\/\S+)/.exec(stderr())?.[1])) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('no inspector URL from the gateway')
      await sleep(50)
    }
    const ws = new WebSocket(url)
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return new Inspector(ws)
  }

  call (method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const id = ++this.#id
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`inspector: no answer to ${method}`)), timeoutMs)
      this.#waiting.set(id, result => { clearTimeout(timer); this.#waiting.delete(id); resolve(result) })
      this.#ws.send(JSON.stringify({ id, method, params }))
    })
  }

  /** A heap snapshot (it collects first), summed by node type and constructor name. */
  async snapshot (): Promise<Map<string, { count: number, bytes: number }>> {
    this.#chunks = []
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 120_000)
    const snap = JSON.parse(this.#chunks.join('')) as { snapshot: { meta: { node_fields: string[], node_types: [string[]] } }, nodes: number[], strings: string[] }
    this.#chunks = []
    const fields = snap.snapshot.meta.node_fields
    const types = snap.snapshot.meta.node_types[0]
    const [TYPE, NAME, SIZE] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')]
    const sums = new Map<string, { count: number, bytes: number }>()
    for (let i = 0; i < snap.nodes.length; i += fields.length) {
      const type = types[snap.nodes[i + TYPE]!]!
      // strings and code are summed by type: their names are their contents
      const key = type === 'object' || type === 'closure' ? `${type} ${snap.strings[snap.nodes[i + NAME]!]}` : `(${type})`
      const sum = sums.get(key) ?? { count: 0, bytes: 0 }
      sum.count++
      sum.bytes += snap.nodes[i + SIZE]!
      sums.set(key, sum)
    }
    return sums
  }

  async heapAfterGc (): Promise<number> {
    // three full collections: what one frees can let the next free more (weak maps, finalizers, aged bytecode)
    for (let i = 0; i < 3; i++) await this.call('HeapProfiler.collectGarbage')
    return (await this.call('Runtime.getHeapUsage')).usedSize as number
  }

  async heap (): Promise<number> {
    return (await this.call('Runtime.getHeapUsage')).usedSize as number
  }

  close (): void {
    this.#ws.close()
  }
}

interface Reading { rss: number, fds: number, cpuMs: number, heap?: number }

// /proc/<pid>/stat counts CPU time in clock ticks: 100 a second on Linux (USER_HZ)
const TICKS_PER_S = 100

function readProc (pid: number): Reading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) * 1024
  // the fields after the command's closing parenthesis: utime and stime are the 12th and 13th
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const cpuMs = (Number(after[11]) + Number(after[12])) * 1000 / TICKS_PER_S
  return { rss, fds: readdirSync(`/proc/${pid}/fd`).length, cpuMs }
}

// ---- the clients ----------------------------------------------------------------------

/** One cycle: upgrade, `subscribed`, one record, a clean close from the client. */
function cycle (url: string, token: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let stage = 'connect'
    let settled = false
    const ws = new WebSocket(url, ['sluice.v1'], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
    const fail = (err: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    const timer = setTimeout(() => fail(new Error(`no progress within ${CYCLE_TIMEOUT_MS} ms in ${stage}`)), CYCLE_TIMEOUT_MS)
    ws.on('open', () => { stage = 'subscribe' })
    ws.on('message', data => {
      const text = data.toString()
      if (stage === 'subscribe' && text.startsWith('{"op":"subscribed"')) stage = 'receive'
      else if (stage === 'receive' && text.startsWith('{"op":"message"')) {
        stage = 'close'
        ws.close(1000)
      } else if (text.startsWith('{"op":"error"')) fail(new Error(`error frame in ${stage}: ${text.slice(0, 120)}`))
    })
    ws.on('error', err => fail(new Error(`${stage}: ${err.message}`)))
    ws.on('close', code => {
      if (stage !== 'close' || code !== 1000) return fail(new Error(`closed with ${code} in ${stage}`))
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve()
    })
  })
}

interface Run { done: number, failures: Map<string, number>, stoppedByTime: boolean }

/** `count` cycles, `CONCURRENCY` at a time; `onTick` every EVERY_MS with the cycles done so far. */
async function cycles (count: number, url: string, token: string, onTick?: (done: number) => Promise<void>): Promise<Run> {
  const run: Run = { done: 0, failures: new Map(), stoppedByTime: false }
  let started = 0
  const worker = async () => {
    while (started < count) {
      if (Date.now() > DEADLINE) { run.stoppedByTime = true; return }
      started++
      try {
        await cycle(url, token)
      } catch (err) {
        // the kind of failure, without the numbers that make each message unique
        const kind = (err as Error).message.replace(/\d{3,}/g, 'N')
        run.failures.set(kind, (run.failures.get(kind) ?? 0) + 1)
      }
      run.done++
    }
  }
  const ticks = { on: true }
  const ticker = (async () => {
    while (ticks.on) {
      const next = Date.now() + EVERY_MS
      while (ticks.on && Date.now() < next) await sleep(100)
      if (ticks.on && onTick) await onTick(run.done)
    }
  })()
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, worker))
  ticks.on = false
  await ticker
  return run
}

// ---- the run --------------------------------------------------------------------------

const pct = (end: number, start: number) => `${end >= start ? '+' : ''}${((end / start - 1) * 100).toFixed(1)} %`
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

async function main (): Promise<void> {
  const { KafkaBroker, RedisServer, freePort } = await import('@sluice/stack')
  const { KafkaClient } = await import('@sluice/kafka')
  const cleanups: Array<() => Promise<unknown>> = []
  const cleanup = async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })
  try {
    let brokers = process.env.KAFKA_BROKERS?.split(',')
    let redisUrl = process.env.REDIS_URL
    if (!brokers) {
      const broker = new KafkaBroker()
      cleanups.push(() => broker.destroy())
      await broker.start()
      brokers = broker.brokers
    }
    if (!redisUrl) {
      const redis = new RedisServer()
      cleanups.push(() => redis.stop())
      await redis.start()
      redisUrl = redis.url
    }

    const runId = randomBytes(4).toString('hex')
    const topic = `bench.soak.${runId}`
    const kafka = new KafkaClient({ brokers, clientId: 'bench-soak-producer' })
    cleanups.push(() => kafka.close())
    await kafka.ensureTopics([{ topic, partitions: 1 }])

    const dir = mkdtempSync(join(tmpdir(), 'sluice-soak-'))
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
    const port = await freePort()
    const configFile = join(dir, 'gateway.yaml')
    // JSON is YAML: the config loader reads it as it reads any gateway.yaml
    writeFileSync(configFile, JSON.stringify({
      server: { host: '127.0.0.1', port },
      log: { level: 'warn' },
      kafka: { brokers },
      redis: { url: redisUrl },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'soak', algorithms: ['HS256'], secret: SECRET }] } },
      policy: { dir: POLICY_DIR },
      // this run's own keys: a shared Redis keeps other runs' buckets
      rateLimit: { prefix: `sluice:soak:${runId}:`, http: { upgrade: { max: 10_000_000 } } }
    }, null, 2))

    const gateway = await startGateway(configFile, port)
    cleanups.push(async () => {
      gateway.child.kill('SIGTERM')
      const timer = setTimeout(() => gateway.child.kill('SIGKILL'), 15_000)
      await gateway.exited
      clearTimeout(timer)
    })
    const pid = gateway.child.pid!
    const inspector = GC ? await Inspector.open(gateway.child, gateway.stderr) : undefined
    if (inspector) cleanups.push(async () => inspector.close())

    const production = { on: true, records: 0 }
    const producer = (async () => {
      while (production.on) {
        await kafka.produceBatch(topic, [{ value: Buffer.from(JSON.stringify({ n: production.records++, ts: Date.now() })) }])
        await sleep(PRODUCE_EVERY_MS)
      }
    })()
    cleanups.push(async () => { production.on = false; await producer })

    const url = `${gateway.base.replace('http', 'ws')}/v1/stream?topics=${topic}&from=latest`
    const token = jwt(`soak-${runId}`)
    say(`soak: ${CYCLES} cycles (connect, subscribe, receive one record, close 1000), ${CONCURRENCY} at a time, after ${WARMUP} warm-up cycles; one record every ${PRODUCE_EVERY_MS} ms on ${topic}`)
    say(`gateway: apps/gateway/src/server.ts pid ${pid} (JWT auth, Redis rate limits, default queues); policy ${POLICY_DIR}: plan "soak" allows 1,000,000 connects a minute (the example policy's highest, pro, allows 120); per-address upgrade limit raised to 10,000,000 a minute (one client address)`)
    say(`heap: ${GC ? 'V8 heap used after three full GCs (inspector HeapProfiler.collectGarbage)' : 'not read (--no-gc)'}; start and end are read after ${QUIET_MS} ms without sockets`)

    const warm = await cycles(WARMUP, url, token)
    const measure = async (): Promise<Reading> => {
      await sleep(QUIET_MS)
      const heap = await inspector?.heapAfterGc()
      return { ...readProc(pid), heap }
    }
    const start = await measure()
    // after the start's RSS is read: a snapshot makes the gateway's RSS grow
    const startHeap = HEAP_DIFF ? await inspector!.snapshot() : undefined
    say(`start (after ${warm.done} warm-up cycles, ${[...warm.failures.values()].reduce((a, b) => a + b, 0)} failed): RSS ${mib(start.rss)}, ${start.fds} fds${start.heap ? `, heap ${mib(start.heap)}` : ''}`)

    const startedAt = performance.now()
    let last = { at: startedAt, done: 0, cpuMs: start.cpuMs }
    const run = await cycles(CYCLES, url, token, async done => {
      const now = performance.now()
      const r = readProc(pid)
      const heap = await inspector?.heap()
      // the gateway's CPU per cycle tells a slower gateway from a busier machine
      const cpuPerCycle = (r.cpuMs - last.cpuMs) / Math.max(1, done - last.done)
      say(`  ${((now - startedAt) / 1000).toFixed(0).padStart(5)} s  ${String(done).padStart(7)} cycles  ${((done - last.done) / ((now - last.at) / 1000)).toFixed(0).padStart(5)} cycles/s  gateway CPU ${cpuPerCycle.toFixed(2)} ms/cycle  RSS ${mib(r.rss)} (${pct(r.rss, start.rss)})  ${r.fds} fds${heap ? `  heap ${mib(heap)} (not collected)` : ''}`)
      last = { at: now, done, cpuMs: r.cpuMs }
    })
    const seconds = (performance.now() - startedAt) / 1000
    const end = await measure()
    const endHeap = HEAP_DIFF ? await inspector!.snapshot() : undefined
    production.on = false
    await producer

    const failed = [...run.failures.values()].reduce((a, b) => a + b, 0)
    say('')
    say(`${run.done} cycles in ${seconds.toFixed(1)} s: ${(run.done / seconds).toFixed(1)} cycles/s, gateway CPU ${((end.cpuMs - start.cpuMs) / Math.max(1, run.done)).toFixed(2)} ms/cycle; ${failed} failed${run.stoppedByTime ? `; stopped at --max-minutes ${args['max-minutes']}` : ''}`)
    for (const [kind, n] of run.failures) say(`  ${n} x ${kind}`)
    say(`${'gateway'.padEnd(18)}${'start'.padStart(12)}${'end'.padStart(12)}${'drift'.padStart(10)}${'end/start'.padStart(11)}`)
    const row = (name: string, s: number, e: number, show: (n: number) => string) =>
      say(`${name.padEnd(18)}${show(s).padStart(12)}${show(e).padStart(12)}${pct(e, s).padStart(10)}${(e / s).toFixed(3).padStart(11)}`)
    // a snapshot at the start grows the gateway's RSS by the snapshot's size: the end's RSS then says nothing
    row(HEAP_DIFF ? 'RSS (snapshotted)' : 'RSS', start.rss, end.rss, mib)
    row('open fds', start.fds, end.fds, String)
    if (start.heap && end.heap) row('heap after GCs', start.heap, end.heap, mib)
    if (startHeap && endHeap) {
      // what grew: a leak is a count that grows with --cycles
      const grown = [...endHeap].map(([key, e]) => {
        const s = startHeap.get(key) ?? { count: 0, bytes: 0 }
        return { key, count: e.count - s.count, bytes: e.bytes - s.bytes }
      }).sort((a, b) => b.bytes - a.bytes).slice(0, 12)
      say('heap snapshot, end minus start, by self size (top 12):')
      for (const g of grown) say(`  ${(g.bytes / 1024).toFixed(0).padStart(8)} KiB ${String(g.count).padStart(8)} nodes  ${g.key.slice(0, 100)}`)
    }
    say(`gateway warn/error lines: ${gateway.problems.length}${gateway.problems.length ? `; the last: ${gateway.problems.at(-1)!.slice(0, 300)}` : ''}`)
    say(`records produced: ${production.records}`)
  } finally {
    await cleanup()
  }
}

main().then(() => process.exit(0), err => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1) })
