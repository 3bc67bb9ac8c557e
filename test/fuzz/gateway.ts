// The process under fuzz (not a test file): apps/gateway/src/server.ts as
// shipped -- JWT auth, a policy directory, Redis-backed limits, the run's
// Kafka -- in a child process of its own, so that a crash is seen as an exit
// (code, signal and the last of its output), not as a failure of the suite.
// Also what the invariants watch from outside: /healthz latency (probed from
// another process, healthz-probe.ts, so that the fuzzer's own busy event loop
// never shows up as the gateway's), RSS and open file descriptors from /proc.
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { WebSocket } from 'ws'
import { freePort } from '@sluice/stack'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { kafkaBrokers, redisUrl } from '../helpers.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const ENTRY = join(ROOT, 'apps', 'gateway', 'src', 'server.ts')
export const POLICY_DIR = join(import.meta.dirname, 'policy')
export const JWT_SECRET = 'fuzz-suites-hs256-secret-0123456789abcdef'
export const ISSUER = 'fuzz'
// a crash's stack and the warnings before it are at the end: 64 KiB of output keeps them
const LOG_TAIL_BYTES = 64 * 1024
// a gateway boots in 2-5 s on this machine (Kafka metadata, Redis, policy); 40 s is cluster-harness's bound too
const READY_TIMEOUT_MS = 40_000

export interface Exit { code: number | null, signal: NodeJS.Signals | null, at: number }

/**
 * `heapKb`: the JS heap in use plus external memory (Buffers), after a full GC, when the inspector answered;
 * `heapTotalKb`: the pages V8 keeps for its heap then (process.memoryUsage().heapTotal), in use or not: where RSS
 * stays up with `heapKb` flat, this says whether V8 keeps the pages or something outside its heap does
 */
export interface Resources { rssKb: number, fds: number, heapKb?: number, heapTotalKb?: number }

/**
 * `down`: refused connections (no process listening: after a crash, until the restart); `starved`: slow
 * answers while the probe itself got no CPU for 100 ms (the machine's load, not the gateway's), not counted;
 * `queued`: slow answers that were within the bound but for the time the gateway's main thread waited on a
 * run queue meanwhile (healthz-probe.ts), not counted either
 */
export interface HealthReport { samples: number, maxMs: number, over: number, failures: number, down: number, starved: number, queued: number, worst: Array<{ at: string, ms: number }> }

export function jwt (sub: string, claims: Record<string, unknown> = {}, ttlSeconds = 3600): string {
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: ISSUER, aud: 'sluice', sub, exp: nowSeconds() + ttlSeconds, ...claims }, JWT_SECRET)
}

/** /proc/<pid>/status VmRSS (KiB) and the entries of /proc/<pid>/fd. */
export function resourcesOf (pid: number): Resources {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)
  return { rssKb: rss ? Number(rss[1]) : NaN, fds: readdirSync(`/proc/${pid}/fd`).length }
}

export class FuzzGateway {
  readonly name: string
  port = 0
  /** where the inspector listens once SIGUSR1 wakes it (forceGc) */
  inspectPort = 0
  child: ChildProcess | undefined
  exits: Exit[] = []
  /** how many gateway processes this suite started (a restart follows a crash) */
  starts = 0
  /** crashReport() of the last process that ended */
  lastExitReport = ''
  #log = ''
  #stderr = ''
  #configFile = ''
  /** the config files' folders, one per start, removed at stop */
  #dirs: string[] = []
  #probe: ChildProcess | undefined
  /** heap snapshots written so far (FUZZ_HEAP_SNAPSHOTS) */
  #snapshots = 0

  constructor (name: string) {
    this.name = name
  }

  get pid (): number {
    return this.child!.pid!
  }

  get alive (): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  get streamUrl (): string { return `ws://127.0.0.1:${this.port}/v1/stream` }
  get brokerUrl (): string { return `ws://127.0.0.1:${this.port}/v2/broker/` }

  /** the last of the process's stdout and stderr */
  log (): string {
    return this.#log
  }

  async start (): Promise<void> {
    // a restart after a crash keeps the port: the /healthz probe goes on with the new process
    if (this.port === 0) this.port = await freePort()
    this.inspectPort = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'sluice-fuzz-'))
    this.#dirs.push(dir)
    this.#configFile = join(dir, 'gateway.yaml')
    // JSON is YAML: the file an operator would write, with the limits the fuzzer needs lifted
    writeFileSync(this.#configFile, JSON.stringify({
      server: { host: '127.0.0.1', port: this.port, drainMs: 0, shutdownTimeoutMs: 5000 },
      log: { level: 'warn' },
      kafka: { brokers: kafkaBrokers() },
      redis: { url: redisUrl() },
      policy: { dir: POLICY_DIR, watch: false },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: ISSUER, algorithms: ['HS256'], secret: JWT_SECRET }] } },
      stream: { nodeId: `fuzz-${this.name}` },
      // MQTT retained messages of the run's own (generated names would pile up in one shared topic)
      mqtt: { retainedTopic: `sluice-fuzz-retained-${randomBytes(4).toString('hex')}` },
      rateLimit: {
        // the suite's own buckets in the shared Redis
        prefix: `sluice:fuzz:${randomBytes(4).toString('hex')}:`,
        // one upgrade per property run from one address: 600 a minute (the default) is seconds of fuzzing
        http: { upgrade: { max: 10_000_000 } }
      }
    }, null, 2))
    this.#log = ''
    this.#stderr = ''
    // as `npm start` runs it (deploy/local/node.sh --jemalloc): on jemalloc, the young generation capped at
    // 16 MiB per semi-space (package.json's start script). node.sh ends in `exec node`: the pid is the gateway's. --inspect-port does
    // nothing until SIGUSR1 (forceGc): the process runs as shipped until then
    const child = spawn('bash', [join(ROOT, 'deploy', 'local', 'node.sh'), '--jemalloc', '--max-semi-space-size=16', '--disable-warning=TimeoutNegativeWarning', `--inspect-port=127.0.0.1:${this.inspectPort}`, ...(process.env.FUZZ_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.FUZZ_CPU_PROF}`] : []), ENTRY, '--config', this.#configFile], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.child = child
    this.starts++
    // the probe reads this process's run-queue time (healthz-probe.ts): a restart is a new pid
    if (this.#probe?.connected && child.pid !== undefined) this.#probe.send({ pid: child.pid })
    const keep = (chunk: Buffer) => {
      this.#log += chunk.toString()
      if (this.#log.length > LOG_TAIL_BYTES * 2) this.#log = this.#log.slice(-LOG_TAIL_BYTES)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    // Node writes an uncaught exception's stack to stderr; pino's JSON lines go to stdout
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr += chunk.toString()
      if (this.#stderr.length > LOG_TAIL_BYTES * 2) this.#stderr = this.#stderr.slice(-LOG_TAIL_BYTES)
    })
    child.once('exit', (code, signal) => {
      this.exits.push({ code, signal, at: Date.now() })
      // kept: a restart clears the output this report is made from
      this.lastExitReport = this.crashReport()
    })
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      if (!this.alive) throw new Error(`the gateway exited while starting (${child.exitCode ?? child.signalCode}): ${this.#log.slice(-2000)}`)
      const res = await fetch(`http://127.0.0.1:${this.port}/readyz`).catch(() => undefined)
      if (res?.status === 200) return
      if (Date.now() > deadline) throw new Error(`the gateway was not ready within ${READY_TIMEOUT_MS} ms: ${this.#log.slice(-2000)}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /** Waits up to `ms` for the process to exit: a crash by an unhandled rejection comes a tick after the socket closed. */
  async exitedWithin (ms: number): Promise<boolean> {
    if (!this.alive) return true
    const child = this.child!
    return await new Promise<boolean>(resolve => {
      const timer = setTimeout(() => { child.off('exit', onExit); resolve(false) }, ms)
      const onExit = () => { clearTimeout(timer); resolve(true) }
      child.once('exit', onExit)
    })
  }

  /** The cause of the last exit, for a report: how it ended and the output before it. */
  crashReport (): string {
    const exit = this.exits.at(-1)
    const lines = this.#stderr.split('\n').filter(line => line.length > 0 && !line.includes('TimeoutNegativeWarning'))
    // Node's crash dump: the source line, a caret, then `SomeError: message` and its stack; show from the error on
    const error = lines.findLastIndex(line => /^\w*(Error|Exception)\b|^Uncaught/.test(line))
    const shown = error >= 0 ? lines.slice(Math.max(0, error - 3), error + 8) : lines.slice(-14)
    return `the gateway exited (code ${exit?.code ?? '-'}, signal ${exit?.signal ?? '-'}); its stderr:\n${shown.join('\n')}`
  }

  /** Whether /healthz answers within `ms`: a process that is alive but does not is stuck. */
  async responsive (ms = 2000): Promise<boolean> {
    if (!this.alive) return false
    const res = await fetch(`http://127.0.0.1:${this.port}/healthz`, { signal: AbortSignal.timeout(ms) }).catch(() => undefined)
    return res?.status === 200
  }

  /** Ends a stuck process (SIGKILL), so that the next run starts a fresh one. */
  async kill (): Promise<void> {
    const child = this.child
    if (!child || !this.alive) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  resources (): Resources {
    return resourcesOf(this.pid)
  }

  /**
   * A full garbage collection in the gateway, through its inspector (woken by SIGUSR1; it then listens
   * for good, and its socket is in the baseline): without it, buffers nobody holds any more still count
   * in RSS until V8 next needs the room, and an idle gateway never does.
   */
  async forceGc (): Promise<{ heapKb: number, heapTotalKb: number }> {
    return this.#inspect(async ws => {
      // the collection runs on the main thread: a stuck gateway never answers
      await inspectorCall(ws, 1, 'HeapProfiler.collectGarbage', {}, 'collect garbage')
      // then what JavaScript still holds: a leak of objects or Buffers shows here, an allocator keeping freed pages does not
      const reply = await inspectorCall(ws, 2, 'Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true }, 'read its memory') as { result?: { value?: string } }
      const usage = JSON.parse(reply.result?.value ?? '{}') as { heapUsed: number, heapTotal: number, external: number }
      if (process.env.FUZZ_HEAP_SNAPSHOTS) writeFileSync(join(process.env.FUZZ_HEAP_SNAPSHOTS, `${++this.#snapshots}.heapsnapshot`), await heapSnapshot(ws, 3))
      return { heapKb: Math.round((usage.heapUsed + usage.external) / 1024), heapTotalKb: Math.round(usage.heapTotal / 1024) }
    })
  }

  /**
   * How many objects of each of these classes the gateway's heap holds (a heap snapshot, which
   * collects garbage first). FUZZ_HEAP_SNAPSHOTS=DIR also writes each forced collection's heap, as
   * DIR/1.heapsnapshot (the baseline), 2, ...; bench/heap-diff.ts tells what the last holds more than
   * the first. They found the sessions closed sockets left in a hub feed and in the MQTT session store.
   */
  async heapObjects (classes: readonly string[]): Promise<Record<string, number>> {
    const snapshot = JSON.parse(await this.#inspect(ws => heapSnapshot(ws, 1))) as {
      snapshot: { meta: { node_fields: string[], node_types: [string[]] } }, nodes: number[], strings: string[]
    }
    const fields = snapshot.snapshot.meta.node_fields
    const width = fields.length
    const typeAt = fields.indexOf('type')
    const nameAt = fields.indexOf('name')
    const object = snapshot.snapshot.meta.node_types[0].indexOf('object')
    const wanted = new Map<number, string>()
    snapshot.strings.forEach((name, i) => { if (classes.includes(name)) wanted.set(i, name) })
    const counts: Record<string, number> = Object.fromEntries(classes.map(c => [c, 0]))
    for (let n = 0; n < snapshot.nodes.length; n += width) {
      const name = wanted.get(snapshot.nodes[n + nameAt]!)
      if (name !== undefined && snapshot.nodes[n + typeAt] === object) counts[name]!++
    }
    return counts
  }

  /** Runs `use` on a connection to the gateway's inspector (woken by SIGUSR1). */
  async #inspect<T> (use: (ws: WebSocket) => Promise<T>): Promise<T> {
    process.kill(this.pid, 'SIGUSR1')
    let target: string | undefined
    for (let i = 0; i < 50 && target === undefined; i++) {
      const list = await fetch(`http://127.0.0.1:${this.inspectPort}/json/list`).then(res => res.json() as Promise<Array<{ webSocketDebuggerUrl: string }>>, () => undefined)
      target = list?.[0]?.webSocketDebuggerUrl
      if (target === undefined) await new Promise(resolve => setTimeout(resolve, 100))
    }
    if (target === undefined) throw new Error('the gateway\'s inspector did not answer')
    const ws = new WebSocket(target, { maxPayload: 0 })
    try {
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
      return await use(ws)
    } finally {
      ws.terminate()
    }
  }

  /** Starts polling /healthz every 100 ms from a process of its own. */
  startProbe (): void {
    this.#probe = fork(join(import.meta.dirname, 'healthz-probe.ts'), [`http://127.0.0.1:${this.port}/healthz`, String(this.child?.pid ?? '')], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  }

  /** What the probe saw since it started (and it stops). */
  async stopProbe (): Promise<HealthReport | undefined> {
    const probe = this.#probe
    this.#probe = undefined
    if (!probe || probe.exitCode !== null) return undefined
    const report = await new Promise<HealthReport | undefined>(resolve => {
      const timer = setTimeout(() => resolve(undefined), 5000)
      probe.once('message', m => { clearTimeout(timer); resolve(m as HealthReport) })
      probe.send('report')
    })
    probe.kill()
    return report
  }

  async stop (): Promise<void> {
    await this.stopProbe()
    for (const dir of this.#dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
    const child = this.child
    if (!child || !this.alive) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 6000)
    await exited
    clearTimeout(timer)
  }
}

/** One inspector call's answer; fails past `timeoutMs` (a stuck gateway never answers: its inspector runs on the main thread). */
function inspectorCall (ws: WebSocket, id: number, method: string, params: object, what: string, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.off('message', onMessage); reject(new Error(`the gateway did not ${what} within ${timeoutMs} ms`)) }, timeoutMs)
    function onMessage (data: unknown): void {
      const reply = JSON.parse(String(data)) as { id?: number, result?: unknown }
      if (reply.id !== id) return
      clearTimeout(timer)
      ws.off('message', onMessage)
      resolve(reply.result)
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ id, method, params }))
  })
}

/** The gateway's heap as a .heapsnapshot text (V8 collects garbage first). */
async function heapSnapshot (ws: WebSocket, id: number): Promise<string> {
  const chunks: string[] = []
  const onChunk = (data: unknown) => {
    const msg = JSON.parse(String(data)) as { method?: string, params?: { chunk?: string } }
    if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(msg.params!.chunk!)
  }
  ws.on('message', onChunk)
  try {
    // ~80 MB of JSON for a fuzzed gateway: 2-5 s here
    await inspectorCall(ws, id, 'HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 'write its heap', 60_000)
  } finally {
    ws.off('message', onChunk)
  }
  return chunks.join('')
}
