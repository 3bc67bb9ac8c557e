// A gateway node idle with N topics x 1 subscriber (issue 14: 1,000 topics on one node, <= 4 broker
// connections per broker, idle CPU <= 2 % of a core, RSS per topic <= 10 KiB beyond its window).
// The gateway is the one shipped (apps/gateway/src/server.ts: JWT auth, the policy in
// bench/idle-topics-policy, Redis rate limits, default queues) in a process of its own; the 1,000
// sockets are this process's, so the CPU figure is the gateway's only, from /proc/<pid>/stat
// (first-record.ts's 5. counted its clients too). In order:
//   A. the gateway with no socket, idle (what it costs before any topic);
//   B. N sockets, one topic each (`from=latest`), all subscribed, and one record published over the
//      first (a node that also publishes: the producer's connection counts); then the gateway idle: its
//      CPU, its RSS added per topic (after full GCs through its inspector), its ESTABLISHED connections
//      to the broker port (/proc/<pid>/net/tcp against its fds' socket inodes), the consumer groups on the broker;
//   D. a second socket on each topic: the RSS a socket adds, to take from B.'s per topic;
//   E. N more topics x 1 subscriber: the RSS a topic adds past the first N, less D.'s socket;
//   C. the bare reference: a process with one KafkaClient and a reader per topic from latest (what
//      reading those partitions costs without the gateway), idle, and the gateway's figure over it.
//
//   flock /tmp/heavy.lock bash deploy/local/node.sh bench/idle-topics.ts [--topics 1000] [--idle 30] [--settle 10] [--brokers host:port] [--profile idle.cpuprofile] [--heap-snapshots DIR]
//     [--node-flags "--no-concurrent-recompilation ..."] [--baseline-tree DIR]
//
// --baseline-tree DIR runs the gateway of another checkout instead (an earlier commit's `git worktree add`,
// with its own npm ci), as that checkout's npm start runs it (bench/shipped-node.ts, spawnTreeGateway),
// with the same config: the same-machine figures of the tree an issue measured its "today" on.
//
// The gateway runs as `npm start` and the image run it: on jemalloc (bench/shipped-node.ts; SLUICE_MALLOC=glibc
// runs it on glibc's malloc, MALLOC_CONF is passed on) with the shipped V8 flag (SHIPPED_V8_FLAGS, package.json's start script);
// --node-flags adds flags after it. Each reading also splits the RSS by the kind of mapping it is in
// (/proc/<pid>/smaps): V8's heap pages, the malloc arenas of threads other than the main one, the main
// malloc heap, executable mappings (JIT code), files and the rest. On this machine the first topics grew
// two threads' arenas by ~13 MiB that later topics and sockets did not grow again; with
// --node-flags --no-concurrent-recompilation they grew 0.4 MiB: V8's background compiler (bench/README.md).
// The arenas are glibc's: on jemalloc its mappings are not told apart, and count as V8's pages or other.
// Each reading also prints what each of V8's heap spaces holds (v8.getHeapSpaceStatistics() in the
// gateway, through its inspector): young generation, old space, code, trusted (bytecode and metadata).
//
// Needs REDIS_URL (a running Redis; the run's keys have a prefix of their own) and Linux.
// Without --brokers it starts a broker of its own with Kafka's default settings (KafkaBroker(),
// ~10-20 s), and the topics go with it; with --brokers the run deletes its topics at the end.
// --profile FILE writes a CPU profile of B.'s idle window to FILE and one of A.'s next to it (idle.A.cpuprofile
// for idle.cpuprofile), taken through the gateway's inspector (the sampling adds to the CPU figure, and its
// samples to the RSS: take those from a run without it). --heap-snapshots DIR writes the
// gateway's heap at A., B., D. and E. (A.heapsnapshot...; compare two with bench/heap-diff.ts); a
// snapshot adds to the RSS read after it: take those figures from a run without it.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { KafkaClient } from '@sluice/kafka'
import { KafkaBroker } from '@sluice/stack'
import { SHIPPED_V8_FLAGS, describeTree, spawnShipped, spawnTreeGateway } from './shipped-node.ts'

const root = join(import.meta.dirname, '..')
const POLICY_DIR = join(import.meta.dirname, 'idle-topics-policy')
const SECRET = 'idle-topics-bench-hs256-secret-0123456789'
const START_TIMEOUT_MS = 60_000
const SUBSCRIBE_TIMEOUT_MS = 120_000
// sockets opened at once: 1,000 upgrades in one burst queue behind the limiter's Redis round trips
// and the topic checks; 50 at a time subscribed 1,000 in a few seconds here
const OPEN_AT_ONCE = 50
// after the last subscribe, before the idle window (--settle, s): the reader polls every 500 ms for 5 s after
// a partition joins (reader.ts), and the JIT and the first GCs settle. A larger --settle measures a node idle
// for longer (60 s did not lower V8's background thread's share of the window: bench/README.md)
const SETTLE_S = '10'
// /proc/<pid>/stat counts CPU time in clock ticks: 100 a second on Linux (USER_HZ)
const TICKS_PER_S = 100
const KiB = 1024

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const say = (line: string) => process.stdout.write(`${line}\n`)

function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'idle', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

function cpuMs (pid: number, file = `/proc/${pid}/stat`): number {
  // the fields after the command's closing parenthesis: utime and stime are the 12th and 13th
  const stat = readFileSync(file, 'utf8')
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(after[11]) + Number(after[12])) * 1000 / TICKS_PER_S
}

function rss (pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * KiB
}

const MAPPING_KINDS = ['v8 pages', 'thread arenas', 'main heap', 'code', 'files', 'other'] as const
type MappingKind = typeof MAPPING_KINDS[number]
// glibc makes a thread's arena in heaps of HEAP_MAX_SIZE (64 MiB on 64-bit), aligned to it: the part in
// use is read-write, the rest of the 64 MiB is reserved (---p) right after it
const ARENA_HEAP = 64n * 1024n * 1024n

function mappingKind (name: string, perms: string, size: bigint, arena: boolean): MappingKind {
  if (name === '[heap]') return 'main heap'
  if (name.startsWith('/')) return 'files'
  if (name !== '') return 'other'
  if (perms.includes('x')) return 'code'
  if (arena) return 'thread arenas'
  // V8 allocates its heap in pages of 256 KiB (neighbours can merge into one mapping)
  if (perms === 'rw-p' && size % 262144n === 0n) return 'v8 pages'
  return 'other'
}

/** The process's RSS (bytes) by kind of mapping, from /proc/<pid>/smaps. */
function rssByKind (pid: number): Record<MappingKind, number> {
  const maps: Array<{ start: bigint, end: bigint, perms: string, name: string, rss: number }> = []
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (m) maps.push({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), perms: m[3]!, name: m[4]!, rss: 0 })
    else if (line.startsWith('Rss:') && maps.length > 0) maps.at(-1)!.rss = Number(line.split(/\s+/)[1]) * KiB
  }
  const kinds = Object.fromEntries(MAPPING_KINDS.map(k => [k, 0])) as Record<MappingKind, number>
  maps.forEach((map, i) => {
    const next = maps[i + 1]
    const arena = map.name === '' && map.perms === 'rw-p' && map.start % ARENA_HEAP === 0n &&
      (map.end - map.start === ARENA_HEAP || (next !== undefined && next.start === map.end && next.perms === '---p' && next.end === map.start + ARENA_HEAP))
    kinds[mappingKind(map.name, map.perms, map.end - map.start, arena)] += map.rss
  })
  return kinds
}

/** What each kind of mapping added from one reading to the next (MiB). */
function kindsAdded (from: Record<MappingKind, number>, to: Record<MappingKind, number>): string {
  return MAPPING_KINDS.map(k => `${k} ${((to[k] - from[k]) / KiB / KiB).toFixed(1)}`).join(', ')
}

/** The memory each V8 heap space holds (MiB), from v8.getHeapSpaceStatistics()'s physical sizes. */
function spacesHeld (spaces: Record<string, number>): string {
  return Object.entries(spaces).map(([k, v]) => `${k.replace(/_space$/, '')} ${(v / KiB / KiB).toFixed(1)}`).join(', ')
}

/** What each V8 heap space added from one reading to the next (MiB). */
function spacesAdded (from: Record<string, number>, to: Record<string, number>): string {
  return spacesHeld(Object.fromEntries(Object.entries(to).map(([k, v]) => [k, v - (from[k] ?? 0)])))
}

/** ESTABLISHED TCP connections of process `pid` to `port` (the broker's), by its fds' socket inodes */
function connectionsOf (pid: number, port: number): number {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1]!)
    } catch {}
  }
  let n = 0
  for (const file of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let text = ''
    try { text = readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      // remote address (hex port), state (01: ESTABLISHED), inode
      if (cols.length >= 10 && parseInt(cols[2]!.split(':')[1]!, 16) === port && cols[3] === '01' && inodes.has(cols[9]!)) n++
    }
  }
  return n
}

/**
 * CPU (ms) and wakeups of each thread of `pid`, summed by the thread's name (/proc/<pid>/task/<tid>/comm):
 * Node's MainThread (JavaScript, its callbacks and the syscalls they make), V8Worker (GC and compiler
 * helpers), libuv-worker (fs, dns and crypto off the loop) and the rest. Wakeups are the thread's voluntary
 * context switches: each time it slept (an event loop in epoll_wait) and was woken. They do not move with
 * the machine's load as CPU does; on this VM each wakeup of an idle process cost 0.1-0.5 ms of CPU
 * (bench/README.md). A thread that ended in between is not counted.
 */
function threadUsage (pid: number): Map<string, { cpu: number, wakeups: number }> {
  const byName = new Map<string, { cpu: number, wakeups: number }>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      const wakeups = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      const sum = byName.get(name) ?? { cpu: 0, wakeups: 0 }
      sum.cpu += cpuMs(Number(tid), `/proc/${pid}/task/${tid}/stat`)
      sum.wakeups += wakeups
      byName.set(name, sum)
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return byName
}

/** CPU of `pid` over `ms` of idle, in ms and in % of a core, and its split by thread name (ms, wakeups a second) */
async function idleCpu (pid: number, ms: number): Promise<{ ms: number, pct: number, threads: string }> {
  const a = cpuMs(pid)
  const threadsA = threadUsage(pid)
  await sleep(ms)
  const used = cpuMs(pid) - a
  const threadsB = threadUsage(pid)
  const threads = [...threadsB].map(([name, b]) => {
    const from = threadsA.get(name) ?? { cpu: 0, wakeups: 0 }
    return { name, cpu: b.cpu - from.cpu, perS: (b.wakeups - from.wakeups) / (ms / 1000) }
  }).filter(x => x.cpu > 0 || x.perS >= 0.1).sort((x, y) => y.cpu - x.cpu)
    .map(x => `${x.name} ${x.cpu} ms, ${x.perS.toFixed(1)} wakeups/s`).join('; ')
  return { ms: used, pct: used / ms * 100, threads: threads || 'none' }
}

/** The gateway's inspector, for full GCs before an RSS reading and the idle window's CPU profile. */
class Inspector {
  readonly #ws: WebSocket
  #id = 0
  readonly #waiting = new Map<number, (result: Record<string, unknown>) => void>()
  #chunks: string[] | undefined

  private constructor (ws: WebSocket) {
    this.#ws = ws
    ws.on('message', data => {
      const msg = JSON.parse(data.toString()) as { id?: number, method?: string, params?: { chunk?: string }, result?: Record<string, unknown> }
      if (msg.id !== undefined) this.#waiting.get(msg.id)?.(msg.result ?? {})
      else if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') this.#chunks?.push(msg.params!.chunk!)
    })
  }

  static async open (child: ChildProcess, stderr: () => string): Promise<Inspector> {
    const deadline = Date.now() + START_TIMEOUT_MS
    let url: string | undefined
    while (!(url = /Debugger listening on (ws:\/\/\S+)/.exec(stderr())?.[1])) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no inspector URL from the gateway (${child.exitCode === null ? 'still running' : `exited with ${child.exitCode}`}): ${stderr().slice(-2000)}`)
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

  /** three full collections (what one frees can let the next free more: weak maps, finalizers), then the V8 heap in use */
  async gc (): Promise<number> {
    for (let i = 0; i < 3; i++) await this.call('HeapProfiler.collectGarbage')
    return (await this.call('Runtime.getHeapUsage')).usedSize as number
  }

  /** process.memoryUsage() of the gateway (call after gc()): where its RSS is, V8's heap or outside it */
  async memory (): Promise<NodeJS.MemoryUsage> {
    const { result } = await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })
    return JSON.parse((result as { value: string }).value) as NodeJS.MemoryUsage
  }

  /** V8's heap spaces of the gateway (call after gc()): the memory each holds (bytes), by space */
  async spaces (): Promise<Record<string, number>> {
    const expression = "JSON.stringify(Object.fromEntries(process.getBuiltinModule('v8').getHeapSpaceStatistics().map(s => [s.space_name, s.physical_space_size])))"
    const { result } = await this.call('Runtime.evaluate', { expression, returnByValue: true })
    return JSON.parse((result as { value: string }).value) as Record<string, number>
  }

  /** a heap snapshot of the gateway, for Chrome's DevTools or bench/heap-diff.ts */
  async heapSnapshot (file: string): Promise<void> {
    this.#chunks = []
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 300_000)
    writeFileSync(file, this.#chunks.join(''))
    this.#chunks = undefined
  }

  close (): void {
    this.#ws.close()
  }
}

interface Child { child: ChildProcess, stderr: () => string, exited: Promise<number | null> }

/**
 * `node <args>`; `shipped`: as `npm start` runs it (bench/shipped-node.ts: on jemalloc unless SLUICE_MALLOC=glibc);
 * `tree`: the gateway of that checkout as its own npm start runs it (args: node's flags; the gateway's in gatewayArgs).
 */
function start (args: string[], env: Record<string, string>, shipped = false, tree?: { tree: string, gatewayArgs: string[] }): Child {
  // the malloc settings the bench has (MALLOC_CONF for jemalloc; glibc's MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_,
  // MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES) go to its children: the allocator's part in RSS outside V8's heap
  const malloc = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => /^(MALLOC_|GLIBC_TUNABLES$)/.test(e[0]) && e[1] !== undefined))
  const options = { env: { PATH: process.env.PATH ?? '', ...malloc, ...env }, stdio: ['ignore', 'pipe', 'pipe'] } satisfies SpawnOptions
  const child = tree ? spawnTreeGateway(tree.tree, args, tree.gatewayArgs, options) : shipped ? spawnShipped(args, options) : spawn(process.execPath, args, options)
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  // drained, not kept: warn-level log lines only
  child.stdout!.resume()
  return { child, stderr: () => stderr, exited }
}

async function stop (c: Child): Promise<void> {
  if (c.child.exitCode !== null) return
  c.child.kill('SIGTERM')
  const timer = setTimeout(() => c.child.kill('SIGKILL'), 15_000)
  await c.exited
  clearTimeout(timer)
}

/** One socket subscribed to `topic` from latest; resolves on `subscribed` */
function subscribe (base: string, topic: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}/v1/stream?topics=${topic}&from=latest`, ['sluice.v1'], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${topic}: not subscribed within ${SUBSCRIBE_TIMEOUT_MS} ms`)) }, SUBSCRIBE_TIMEOUT_MS)
    ws.on('message', data => {
      if (String(data).startsWith('{"op":"subscribed"')) { clearTimeout(timer); resolve(ws) }
    })
    ws.once('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`${topic}: HTTP ${res.statusCode}`)) })
    ws.once('error', err => { clearTimeout(timer); reject(err) })
    ws.once('close', (code, reason) => { clearTimeout(timer); reject(new Error(`${topic}: closed ${code} ${String(reason)}`)) })
  })
}

/** One publish over `ws` to `topic`, answered by its ack: the gateway's producer is connected from then on. */
function publishOne (ws: WebSocket, topic: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.off('message', onMessage); reject(new Error(`${topic}: no ack within ${SUBSCRIBE_TIMEOUT_MS} ms`)) }, SUBSCRIBE_TIMEOUT_MS)
    const onMessage = (data: WebSocket.RawData) => {
      const frame = JSON.parse(String(data)) as { op: string, id?: string, code?: string, message?: string }
      if (frame.id !== 'idle-publish') return
      clearTimeout(timer)
      ws.off('message', onMessage)
      if (frame.op === 'ack') resolve()
      else reject(new Error(`${topic}: publish answered ${frame.code}: ${frame.message}`))
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ op: 'publish', topic, value: { idle: true }, id: 'idle-publish' }))
  })
}

/** The bare reference (C.), run as a child: a reader per topic from latest, then idle until killed. */
async function bare (brokers: string[], topicsFile: string): Promise<void> {
  const topics = readFileSync(topicsFile, 'utf8').split('\n').filter(Boolean)
  const client = new KafkaClient({ brokers, clientId: 'bench-idle-bare' })
  await Promise.all(topics.map(topic => client.reader({ topic, onBatch () {} }).start('latest')))
  process.stdout.write('ready\n')
  process.once('SIGTERM', () => { client.close().finally(() => process.exit(0)) })
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      topics: { type: 'string', default: '1000' },
      idle: { type: 'string', default: '30' },
      settle: { type: 'string', default: SETTLE_S },
      brokers: { type: 'string' },
      profile: { type: 'string' },
      'no-bare': { type: 'boolean', default: false },
      'heap-snapshots': { type: 'string' },
      'bare-child': { type: 'string' },
      'node-flags': { type: 'string', default: '' },
      'baseline-tree': { type: 'string' }
    }
  })
  if (values['bare-child']) return await bare(values.brokers!.split(','), values['bare-child'])
  const topicCount = Number(values.topics)
  const idleMs = Number(values.idle) * 1000
  const settleMs = Number(values.settle) * 1000
  const redisUrl = process.env.REDIS_URL
  if (!redisUrl) throw new Error('REDIS_URL: a running Redis')
  const cleanups: Array<() => Promise<void>> = []
  const out: Array<[string, string | number]> = []
  try {
    let brokers: string[]
    if (values.brokers) {
      brokers = values.brokers.split(',')
    } else {
      const broker = new KafkaBroker()
      const t = Date.now()
      await broker.start()
      cleanups.push(() => broker.destroy())
      brokers = broker.brokers
      process.stderr.write(`[bench] broker ${brokers[0]} (Kafka's default settings) ready in ${Date.now() - t} ms\n`)
    }
    const brokerPort = Number(brokers[0]!.split(':').pop())
    const run = randomBytes(3).toString('hex')
    const topics = Array.from({ length: topicCount }, (_v, i) => `bench.idle.${run}-${i}`)
    // E.'s topics: as many again, read by a gateway that already holds B.'s
    const more = Array.from({ length: topicCount }, (_v, i) => `bench.idle.${run}-${topicCount + i}`)
    const setup = new KafkaClient({ brokers, clientId: 'bench-idle-setup' })
    cleanups.push(() => setup.close())
    // on a shared broker the run's topics go when it ends: a broker keeps files open for each partition,
    // and the dev broker, at 20,000 open files, died after ten runs had left theirs
    if (values.brokers) cleanups.push(() => setup.deleteTopics([...topics, ...more], 120_000))
    let t = Date.now()
    await setup.ensureTopics([...topics, ...more].map(topic => ({ topic, partitions: 1 })), 300_000)
    process.stderr.write(`[bench] ${2 * topicCount} topics created in ${Date.now() - t} ms\n`)
    const groupsBefore = new Set(await setup.listGroups())

    const dir = mkdtempSync(join(tmpdir(), 'sluice-idle-'))
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
    const port = 20_000 + Math.floor(Math.random() * 10_000)
    const configFile = join(dir, 'gateway.yaml')
    // JSON is YAML: the config loader reads it as it reads any gateway.yaml
    writeFileSync(configFile, JSON.stringify({
      server: { host: '127.0.0.1', port },
      log: { level: 'warn' },
      kafka: { brokers },
      redis: { url: redisUrl },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'idle', algorithms: ['HS256'], secret: SECRET }] } },
      policy: { dir: POLICY_DIR },
      // this run's own keys; one client address opens every socket
      rateLimit: { prefix: `sluice:idle:${run}:`, http: { upgrade: { max: 10_000_000 } } }
    }, null, 2))
    // as `npm start` and the image run it: on jemalloc, the shipped V8 flag (docs/performance.md, "Memory"), then --node-flags
    const nodeFlags = values['node-flags'].split(' ').filter(f => f !== '')
    const tree = values['baseline-tree'] ? resolvePath(values['baseline-tree']) : undefined
    if (tree) out.push(['the gateway of the baseline tree', describeTree(tree)])
    const gw = tree
      ? start([...nodeFlags, '--inspect=127.0.0.1:0'], {}, false, { tree, gatewayArgs: ['--config', configFile] })
      : start([...SHIPPED_V8_FLAGS, ...nodeFlags, '--inspect=127.0.0.1:0', join(root, 'apps', 'gateway', 'src', 'server.ts'), '--config', configFile], {}, true)
    cleanups.push(() => stop(gw))
    const pid = gw.child.pid!
    const base = `http://127.0.0.1:${port}`
    const deadline = Date.now() + START_TIMEOUT_MS
    while (!await fetch(`${base}/readyz`).then(res => res.status === 200, () => false)) {
      if (gw.child.exitCode !== null) throw new Error(`the gateway exited with ${gw.child.exitCode}:\n${gw.stderr()}`)
      if (Date.now() > deadline) throw new Error(`the gateway was not ready within ${START_TIMEOUT_MS} ms:\n${gw.stderr()}`)
      await sleep(200)
    }
    const inspector = await Inspector.open(gw.child, gw.stderr)
    cleanups.push(async () => inspector.close())
    /** the gateway's memory after full GCs (and its heap snapshot, with --heap-snapshots) */
    const reading = async (phase: string): Promise<{ heap: number, rss: number, mem: NodeJS.MemoryUsage, kinds: Record<MappingKind, number>, spaces: Record<string, number> }> => {
      const heap = await inspector.gc()
      const read = { heap, rss: rss(pid), mem: await inspector.memory(), kinds: rssByKind(pid), spaces: await inspector.spaces() }
      if (values['heap-snapshots']) await inspector.heapSnapshot(join(values['heap-snapshots'], `${phase}.heapsnapshot`))
      return read
    }
    /** KiB per topic from one reading to the next: rss / V8 heap total / V8 heap used / external / array buffers */
    const breakdown = (from: NodeJS.MemoryUsage, to: NodeJS.MemoryUsage) =>
      (['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'] as const).map(k => ((to[k] - from[k]) / topicCount / KiB).toFixed(1)).join(' / ')

    /** `run` under the gateway's CPU profiler when `file` is set (--profile), the profile written to `file` */
    const profiled = async <T>(file: string | undefined, run: () => Promise<T>): Promise<T> => {
      if (!file) return run()
      await inspector.call('Profiler.enable')
      await inspector.call('Profiler.start')
      const result = await run()
      const { profile } = await inspector.call('Profiler.stop', {}, 120_000)
      writeFileSync(file, JSON.stringify(profile))
      await inspector.call('Profiler.disable')
      return result
    }

    // A. no socket
    await sleep(settleMs)
    const cpuA = await profiled(values.profile && values.profile.replace(/(\.cpuprofile)?$/, '.A.cpuprofile'), () => idleCpu(pid, idleMs))
    out.push([`A. gateway CPU idle, no socket (% of a core; ms in ${idleMs / 1000} s)${values.profile ? ' (profiled)' : ''}`, `${cpuA.pct.toFixed(2)} (${cpuA.ms})`])
    out.push(['A. the same by thread', cpuA.threads])
    out.push(['A. gateway\'s allocator (its /proc/<pid>/maps)', readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libjemalloc.so.2') ? 'jemalloc' : 'glibc\'s malloc'])
    out.push(['A. gateway broker connections', connectionsOf(pid, brokerPort)])
    const { heap: heapA, rss: rssA, mem: memA, kinds: kindsA, spaces: spacesA } = await reading('A')
    out.push(['A. V8 heap spaces, memory held (MiB)', spacesHeld(spacesA)])

    // B. N topics x 1 subscriber
    const token = jwt(`idle-${run}`)
    const wsBase = base.replace('http', 'ws')
    const sockets: WebSocket[] = []
    cleanups.push(async () => { for (const ws of sockets) ws.terminate() })
    t = Date.now()
    for (let i = 0; i < topics.length; i += OPEN_AT_ONCE) {
      sockets.push(...await Promise.all(topics.slice(i, i + OPEN_AT_ONCE).map(topic => subscribe(wsBase, topic, token))))
    }
    out.push([`B. ${topicCount} topics x 1 subscriber, all subscribed (ms, ${OPEN_AT_ONCE} at a time)`, Date.now() - t])
    await publishOne(sockets[0]!, topics[0]!)
    await sleep(settleMs)
    const cpuB = await profiled(values.profile, () => idleCpu(pid, idleMs))
    out.push([`B. gateway CPU idle, ${topicCount} topics read (% of a core; ms in ${idleMs / 1000} s)${values.profile ? ' (profiled)' : ''}`, `${cpuB.pct.toFixed(2)} (${cpuB.ms})`])
    out.push(['B. the same by thread', cpuB.threads])
    out.push(['B. gateway broker connections (one record published: the producer\'s included)', connectionsOf(pid, brokerPort)])
    const { heap: heapB, rss: rssB, mem: memB, kinds: kindsB, spaces: spacesB } = await reading('B')
    out.push(['B. per topic (KiB): rss / V8 heap total / V8 heap used / external / array buffers', breakdown(memA, memB)])
    out.push(['B. gateway RSS after full GCs, before / after subscribing (MiB)', `${(rssA / KiB / KiB).toFixed(1)} / ${(rssB / KiB / KiB).toFixed(1)}`])
    out.push(['B. RSS added per topic, its reader, window and socket (KiB)', ((rssB - rssA) / topicCount / KiB).toFixed(1)])
    out.push(['B. V8 heap added per topic, after full GCs (KiB)', ((heapB - heapA) / topicCount / KiB).toFixed(1)])
    out.push(['B. RSS added by kind of mapping (MiB)', kindsAdded(kindsA, kindsB)])
    out.push(['B. V8 heap spaces, memory added (MiB)', spacesAdded(spacesA, spacesB)])
    out.push(['B. consumer groups created on the broker', (await setup.listGroups()).filter(g => !groupsBefore.has(g)).length])
    out.push(['B. sockets still open at the end', sockets.filter(ws => ws.readyState === WebSocket.OPEN).length])

    // D. a second socket on each topic: what a socket costs alone, so B.'s per-topic RSS less it is the topic's
    for (let i = 0; i < topics.length; i += OPEN_AT_ONCE) {
      sockets.push(...await Promise.all(topics.slice(i, i + OPEN_AT_ONCE).map(topic => subscribe(wsBase, topic, token))))
    }
    await sleep(settleMs)
    const { heap: heapD, rss: rssD, mem: memD, kinds: kindsD, spaces: spacesD } = await reading('D')
    const perSocket = (rssD - rssB) / topicCount / KiB
    out.push(['D. RSS added per second socket on a topic (KiB)', perSocket.toFixed(1)])
    out.push(['D. RSS added by kind of mapping (MiB)', kindsAdded(kindsB, kindsD)])
    out.push(['D. V8 heap spaces, memory added (MiB)', spacesAdded(spacesB, spacesD)])
    out.push(['B. - D.: RSS per topic beyond its socket (KiB)', ((rssB - rssA) / topicCount / KiB - perSocket).toFixed(1)])
    out.push(['B. - D.: the same, less what other threads\' malloc arenas added in B. (KiB)', ((rssB - rssA - (kindsB['thread arenas'] - kindsA['thread arenas'])) / topicCount / KiB - perSocket).toFixed(1)])
    // V8's young generation (new_space) is a node-wide allocation buffer that V8 grows under allocation and gives
    // back when the node goes quiet, within --max-semi-space-size: 1,000 subscribes at once may leave it 2.3 MiB
    // larger at B.'s reading and D.'s then finds it back, which moves B. - D. by ~4.6 KiB a topic that no topic holds
    const young = (to: Record<string, number>, from: Record<string, number>): number => (to.new_space ?? 0) - (from.new_space ?? 0)
    const perSocketHeld = (rssD - rssB - young(spacesD, spacesB)) / topicCount / KiB
    out.push(['B. - D.: the same, less the young generation\'s change in B. and in D. (KiB)', ((rssB - rssA - young(spacesB, spacesA)) / topicCount / KiB - perSocketHeld).toFixed(1)])
    const heapPerSocket = (heapD - heapB) / topicCount / KiB
    out.push(['D. V8 heap added per second socket (KiB); B. - D. per topic beyond its socket', `${heapPerSocket.toFixed(1)}; ${((heapB - heapA) / topicCount / KiB - heapPerSocket).toFixed(1)}`])

    // E. N more topics x 1 subscriber: what a topic adds to a gateway past its first N, without the
    // one-off costs B. pays (code compiled, tables and heap spaces grown for the first topics)
    for (let i = 0; i < more.length; i += OPEN_AT_ONCE) {
      sockets.push(...await Promise.all(more.slice(i, i + OPEN_AT_ONCE).map(topic => subscribe(wsBase, topic, token))))
    }
    await sleep(settleMs)
    const { heap: heapE, rss: rssE, mem: memE, kinds: kindsE, spaces: spacesE } = await reading('E')
    out.push([`E. ${topicCount} more topics x 1 subscriber, per topic (KiB): rss / V8 heap total / V8 heap used / external / array buffers`, breakdown(memD, memE)])
    out.push(['E. RSS added by kind of mapping (MiB)', kindsAdded(kindsD, kindsE)])
    out.push(['E. V8 heap spaces, memory added (MiB)', spacesAdded(spacesD, spacesE)])
    out.push(['E. - D.: RSS per topic beyond its socket, past the first N (KiB)', ((rssE - rssD) / topicCount / KiB - perSocket).toFixed(1)])
    out.push(['E. - D.: V8 heap per topic beyond its socket, past the first N (KiB)', ((heapE - heapD) / topicCount / KiB - heapPerSocket).toFixed(1)])

    // C. the bare reference
    if (!values['no-bare']) {
      for (const ws of sockets) ws.terminate()
      await stop(gw)
      const topicsFile = join(dir, 'topics')
      writeFileSync(topicsFile, topics.join('\n'))
      const ref = start([join(import.meta.dirname, 'idle-topics.ts'), '--bare-child', topicsFile, '--brokers', brokers.join(',')], {})
      cleanups.push(() => stop(ref))
      let stdout = ''
      ref.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
      const until = Date.now() + SUBSCRIBE_TIMEOUT_MS
      while (!stdout.includes('ready')) {
        if (ref.child.exitCode !== null || Date.now() > until) throw new Error(`the bare reference did not start:\n${ref.stderr()}`)
        await sleep(100)
      }
      await sleep(settleMs)
      const cpuC = await idleCpu(ref.child.pid!, idleMs)
      out.push([`C. bare KafkaClient, a reader per topic, CPU idle (% of a core; ms in ${idleMs / 1000} s)`, `${cpuC.pct.toFixed(2)} (${cpuC.ms})`])
      out.push(['C. the same by thread', cpuC.threads])
      out.push(['C. bare broker connections', connectionsOf(ref.child.pid!, brokerPort)])
      out.push(['gateway B / bare C CPU', cpuC.ms > 0 ? (cpuB.ms / cpuC.ms).toFixed(1) : 'n/a (bare 0 ms)'])
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(err => process.stderr.write(`[bench] cleanup: ${String(err)}\n`))
  }
  say(`\nidle-topics bench: node ${process.version}, ${topicCount} topics, idle windows of ${idleMs / 1000} s after ${settleMs / 1000} s settling`)
  for (const [k, v] of out) say(`${k}: ${v}`)
}

main().catch(err => {
  process.stderr.write(`[bench] ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
