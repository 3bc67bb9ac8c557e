// Fan-out benchmark (issues 3 and 14): one topic -> N sockets, 256-byte JSON
// records. The headline kind, `shipped`, is the gateway as users run it: its
// own process (apps/gateway/src/server.ts, a YAML config, the shipped V8 flag),
// JWT auth (each socket a subject with a Bearer token), bench/fanout-policy,
// Redis-backed limits and the default queue sizes. In the same run, against
// (a) `per-socket`, a gateway built the common way -- one Kafka consumer per
// socket, same libraries; (b) `sluice`, the stripped-down reference (the hub
// without auth, policy or limits, 16 MiB queues: what the README published
// before issue 14); (c) `raw` and `raw-frames`, `ws` broadcast and pre-framed
// TCP writes with no Kafka (the transport limit); (d) `shipped-unmetered`, the
// shipped gateway with usage metering off (usage.enabled false), for issue
// 18's metering overhead: CPU and Redis commands per delivery, on against
// off, at the same rates; (e) `shipped-baseline`, the shipped gateway of another
// checkout (--baseline-tree DIR: an earlier commit's worktree with its own npm ci),
// started as that checkout's npm start runs it, with the same YAML config and
// policy: the same-machine baseline of figures an issue measured on an earlier
// tree elsewhere (issue 14: "must not get worse than today's"). Each gateway runs in a
// process of its own, the sockets in another (the load generator), so CPU is
// measured per process. Loopback only; bounded in count and time.
//
//   bash deploy/local/node.sh bench/fanout.ts [--sizes 100,1000,5000] [--idle 1000,5000,10000]
//     [--kinds shipped,per-socket,sluice,raw,raw-frames,shipped-unmetered] [--fractions 0.01,0.05,0.25,0.5] [--rates 200] [--semi-space 16]
//     [--paced-seconds 5] [--baseline-tree DIR]
//
// Prints, per N and kind: deliveries/s at full speed and gateway CPU µs per
// delivery; then at each paced rate -- the fractions of the first kind's
// maximum and the fixed records/s of --rates, the same for every kind --
// gateway CPU per delivery, p50/p99 produce-to-socket latency (after a 1 s
// warm-up) against a plain consumer's (the Kafka floor), and the load
// generator's CPU; then the ratios against the per-socket peer at the same
// rate in the same run; then RSS per idle socket (stripped-down app and bare ws).
// Uses REDIS_URL for the limits if set, else starts a Redis of its own.
import { fork, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { WebSocketServer } from 'ws'
import { LeanClient } from './lean-client.ts'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { KafkaClient } from '@sluice/kafka'
import { Redis } from 'ioredis'
import { KafkaBroker, RedisServer, freePort } from '@sluice/stack'
import { allowAll, streamApp } from '../test/harness/stream.ts'
import { wireText } from '@sluice/hub'
import { SHIPPED_V8_FLAGS, describeTree, spawnShipped, spawnTreeGateway } from './shipped-node.ts'
import { gatewayDefaults } from '@sluice/config/gateway'

const self = fileURLToPath(import.meta.url)
const TOPIC = 'bench.fanout'
// 256-byte records, as the issue asks; `ts` is the produce time, read back by the load generator
const PAD = 'x'.repeat(196)
const record = (n: number) => JSON.stringify({ n, ts: Date.now(), sym: 'BTC-USD', pad: PAD })
// a run's records: enough for a steady state, few enough to stay bounded (N x records deliveries)
const BURST_DELIVERIES = 2_000_000
// --paced-seconds N: each paced run's length after its warm-up (longer runs average more of the Redis writes,
// which come in bursts: the meter's flush, and the leases of sockets that all deliver at the same rate)
const PACED_SECONDS = arg('--paced-seconds', '5')[0]!
// each step of the shipped gateway's search for its maximum (see scenario)
const SEARCH_SECONDS = 3
// A paced run's first second is not counted: it runs in the wake of the run before it (the
// full-speed burst's garbage, the broker's flush), which is not the steady state its latency describes.
const WARMUP_MS = 1000
// Redis commands per delivery are counted over whole flush periods of the usage meter (5 s as shipped), from
// the warm-up's end: the meter writes once a flush period, so a window of 1.2 periods held one flush or two by
// the timer's phase (1,000 applications: ~6,000 commands a flush, 0.006 a delivery at 200,000 a second)
const FLUSH_MS = gatewayDefaults.usage.flushMs
const METER_WINDOW_MS = Math.max(1, Math.round(PACED_SECONDS * 1000 / FLUSH_MS)) * FLUSH_MS
const BROKER_WARMUP_SECONDS = 30
const DRAIN_TIMEOUT_MS = 120_000

type Msg = Record<string, unknown> & { type: string }

// The gateway as shipped (kind `shipped`): its own entry, a YAML config, JWT auth, bench/fanout-policy,
// Redis-backed limits, default queue sizes. Each load-generator socket is a subject of its own.
const GATEWAY_ENTRY = join(import.meta.dirname, '..', 'apps', 'gateway', 'src', 'server.ts')
const POLICY_DIR = join(import.meta.dirname, 'fanout-policy')
const JWT_SECRET = 'fanout-bench-hs256-secret-0123456789'
function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'bench', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 6 * 3600 })}`
  return `${body}.${createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`
}

// How late each process's event loop runs (10 ms resolution would hide what matters: 1 ms)
const loopDelay = monitorEventLoopDelay({ resolution: 1 })

function ask (child: ChildProcess, msg: Msg, reply: string, timeoutMs = 300_000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${reply} within ${timeoutMs} ms`)), timeoutMs)
    const on = (m: Msg) => {
      if (m.type !== reply) return
      clearTimeout(timer)
      child.off('message', on)
      resolve(m)
    }
    child.on('message', on)
    child.send(msg)
  })
}

// ---- child: a gateway ---------------------------------------------------------------

let closing = false

/** CPU (µs) and RSS of another process of this machine, from /proc (Linux): the shipped gateway's own */
function procUsage (pid: number): { cpu: NodeJS.CpuUsage, rss: number } {
  // fields after the command name (which may hold spaces): utime and stime are the 14th and 15th, in clock ticks
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // 100 ticks a second on Linux (getconf CLK_TCK): 10 ms resolution, against runs of seconds of CPU
  const tickUs = 10_000
  const rssPages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1])
  return { cpu: { user: Number(fields[11]) * tickUs, system: Number(fields[12]) * tickUs }, rss: rssPages * 4096 }
}

/** the shipped gateway's event-loop delay p99 (ms) since the last scrape, from its own /metrics (reset at each scrape; plugins/metrics/src/loop-delay.ts) */
async function scrapeLoopP99 (url: string): Promise<number> {
  const text = await (await fetch(url)).text()
  const m = /^sluice_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)
  return m ? Number(m[1]) * 1000 : NaN
}

async function gatewayChild (kind: string, brokers: string[], baselineTree: string | undefined): Promise<void> {
  loopDelay.enable()
  let url: string
  let broadcast: ((text: string) => void) | undefined
  let close: () => Promise<void>
  // the shipped gateway is a process of its own: this child reads its CPU and memory from /proc
  let server: ChildProcess | undefined
  let metricsUrl: string | undefined
  if (kind.startsWith('shipped')) {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-fanout-'))
    const file = join(dir, 'gateway.yaml')
    const port = await freePort()
    // JSON is YAML: the file an operator would write. Only one setting is not a default: the per-address
    // upgrade limit (600 a minute), since all the load generator's sockets come from one address
    writeFileSync(file, JSON.stringify({
      server: { host: '127.0.0.1', port },
      log: { level: 'warn' },
      kafka: { brokers },
      redis: { url: process.env.REDIS_URL },
      policy: { dir: POLICY_DIR, watch: false },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'bench', algorithms: ['HS256'], secret: JWT_SECRET }] } },
      stream: { nodeId: 'bench' },
      rateLimit: { http: { upgrade: { max: 100_000 } } },
      // `shipped-unmetered`: the same gateway with usage metering off (issue 18's on/off comparison)
      ...(kind === 'shipped-unmetered' ? { usage: { enabled: false } } : {})
    }, null, 2))
    // as `npm start` runs it: on jemalloc, the shipped V8 flag, no --expose-gc, no IPC (the baseline: as
    // its own tree's npm start runs it, with that tree's flags; --semi-space does not apply to it)
    const v8 = SEMI_SPACE_MB > 0 ? [`--max-semi-space-size=${SEMI_SPACE_MB}`] : []
    const options = { env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] } satisfies SpawnOptions
    if (kind === 'shipped-baseline' && !baselineTree) throw new Error('kind shipped-baseline needs --baseline-tree DIR')
    const child = kind === 'shipped-baseline'
      ? spawnTreeGateway(baselineTree!, [], ['--config', file], options)
      : spawnShipped([...v8, GATEWAY_ENTRY, '--config', file], options)
    server = child
    let log = ''
    const keep = (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4000) }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    child.once('exit', code => { if (!closing) { console.error(`shipped gateway exited with ${code}: ${log}`); process.exit(1) } })
    process.once('exit', () => child.kill('SIGKILL'))
    // the orchestrator ends this child with SIGTERM, which skips 'exit' handlers: the gateway goes with it
    process.once('SIGTERM', () => { closing = true; child.kill('SIGKILL'); process.exit(0) })
    const deadline = Date.now() + 60_000
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined)
      if (res?.status === 200) break
      if (Date.now() > deadline) throw new Error(`the shipped gateway is not ready after 60 s: ${log}`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    url = `ws://127.0.0.1:${port}/v1/stream?topics=${TOPIC}`
    metricsUrl = `http://127.0.0.1:${port}/metrics`
    close = async () => {
      child.kill('SIGKILL')
      await new Promise(resolve => child.once('exit', resolve))
    }
  } else if (kind === 'sluice') {
    // the stripped-down reference: no auth, no policy, no rate limits, big queues
    // (16 MiB, 64x the default): throughput only, not slow clients
    const { app, url: u } = await streamApp({ access: allowAll(), brokers, nodeId: 'bench', limits: { maxQueueBytes: 16 * 1024 * 1024 } })
    url = `${u}/v1/stream?topics=${TOPIC}`
    close = () => app.close()
  } else if (kind === 'per-socket') {
    // the common way: each socket opens its own consumer (own group) and sends each record it gets
    const kafka = new KafkaClient({ brokers, clientId: 'bench-per-socket' })
    const app = Fastify()
    await app.register(websocket, { options: { perMessageDeflate: false } })
    let id = 0
    app.get('/stream', { websocket: true }, socket => {
      const consumer = kafka.consumer({
        groupId: `bench-per-socket-${process.pid}-${id++}`,
        topics: [TOPIC],
        fromBeginning: false,
        async onBatch (batch) {
          for (const r of batch.records) {
            socket.send(JSON.stringify({ op: 'message', topic: r.topic, partition: r.partition, offset: r.offset, timestamp: Number(r.timestamp), key: r.key?.toString() ?? null, value: JSON.parse(r.value?.toString() ?? 'null'), headers: {} }))
          }
        }
      })
      consumer.start().then(() => socket.send('{"op":"subscribed"}'), () => socket.close(1011))
      socket.on('close', () => { consumer.stop().catch(() => {}) })
    })
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    url = `${address.replace('http', 'ws')}/stream`
    close = async () => { await app.close(); await kafka.close() }
  } else {
    // the transport limit, no Kafka: `raw` sends one prepared string to every
    // socket with ws.send (ws frames it per socket, as ws's README broadcasts);
    // `raw-frames` writes one pre-built frame's bytes to every TCP socket (the floor)
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
    await new Promise(resolve => wss.once('listening', resolve))
    wss.on('connection', ws => ws.send('{"op":"subscribed"}'))
    const port = (wss.address() as { port: number }).port
    url = `ws://127.0.0.1:${port}/`
    broadcast = kind === 'raw'
      ? text => { for (const ws of wss.clients) ws.send(text) }
      : text => {
        const frame = wireText(text)
        for (const ws of wss.clients) (ws as unknown as { _socket: { write (b: Buffer): void } })._socket.write(frame)
      }
    close = () => new Promise(resolve => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()) })
  }
  let paced: NodeJS.Timeout | undefined
  process.on('message', (m: Msg) => {
    if (m.type === 'cpu' && server) {
      const { cpu, rss } = procUsage(server.pid!)
      scrapeLoopP99(metricsUrl!).then(loopP99 => process.send!({ type: 'cpu', cpu, rss, heap: NaN, loopP99 }), () => process.send!({ type: 'cpu', cpu, rss, heap: NaN, loopP99: NaN }))
    } else if (m.type === 'forget' && metricsUrl) {
      scrapeLoopP99(metricsUrl).catch(() => {})
    } else if (m.type === 'cpu') {
      globalThis.gc?.()
      const mem = process.memoryUsage()
      process.send!({ type: 'cpu', cpu: process.cpuUsage(), rss: mem.rss, heap: mem.heapUsed + mem.external, loopP99: loopDelay.percentile(99) / 1e6 })
      loopDelay.reset()
    } else if (m.type === 'forget') {
      loopDelay.reset()
    } else if (m.type === 'broadcast' && broadcast) {
      // the raw peer's "producer": `count` frames at `rate` per second (0: as fast as possible)
      const count = m.count as number
      const rate = m.rate as number
      let n = 0
      if (rate === 0) {
        const step = () => {
          for (let i = 0; i < 100 && n < count; i++) broadcast!(JSON.stringify({ op: 'message', topic: TOPIC, partition: 0, offset: String(n), timestamp: Date.now(), key: null, value: JSON.parse(record(n++)), headers: {} }))
          if (n < count) setImmediate(step)
        }
        step()
      } else {
        // as many as are due by now: at 2 per second that is one every 500 ms, not one per tick
        const started = Date.now()
        paced = setInterval(() => {
          const due = Math.min(count, Math.floor((Date.now() - started) * rate / 1000) + 1)
          while (n < due) broadcast!(JSON.stringify({ op: 'message', topic: TOPIC, partition: 0, offset: String(n), timestamp: Date.now(), key: null, value: JSON.parse(record(n++)), headers: {} }))
          if (n >= count) clearInterval(paced)
        }, 10)
      }
      process.send!({ type: 'broadcasting' })
    } else if (m.type === 'close') {
      closing = true
      clearInterval(paced)
      close().finally(() => process.exit(0))
    }
  })
  process.send!({ type: 'ready', url })
}

// ---- child: the load generator ------------------------------------------------------

async function loadgenChild (): Promise<void> {
  loopDelay.enable()
  let sockets: LeanClient[] = []
  let received = 0
  let latencies: number[] = []
  // each socket a subject of its own, across connects (a plan's connections are counted per subject)
  let subjects = 0
  process.on('message', async (m: Msg) => {
    if (m.type === 'connect') {
      const n = m.n as number
      const url = m.url as string
      received = 0
      // 200 at a time: a burst of thousands of handshakes is a different benchmark
      for (let i = 0; i < n; i += 200) {
        const batch: Array<Promise<void>> = []
        for (let j = i; j < Math.min(n, i + 200); j++) {
          // a lean reader (bench/lean-client.ts): a ws client per socket cost this process
          // more CPU per delivery than the gateway, and its event loop set the latency tail
          let ready!: { resolve: () => void, reject: (err: Error) => void }
          const subscribed = new Promise<void>((resolve, reject) => { ready = { resolve, reject } })
          sockets.push(new LeanClient(url, 'sluice.v1', 16, {
            onSubscribed: () => ready.resolve(),
            onError: err => ready.reject(err),
            onFrame (ts) {
              received++
              // 1 in 16 frames sampled for latency: enough points, little cost
              if (!Number.isNaN(ts)) latencies.push(Date.now() - ts)
            }
          }, m.auth ? { authorization: `Bearer ${jwt(`bench-${subjects++}`)}` } : {}))
          batch.push(subscribed)
        }
        await Promise.all(batch)
      }
      process.send!({ type: 'connected' })
    } else if (m.type === 'count') {
      process.send!({ type: 'count', received, cpu: process.cpuUsage() })
    } else if (m.type === 'stats') {
      // percentiles over the whole run since the last reset
      const sorted = [...latencies].sort((a, b) => a - b)
      const pct = (p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN
      process.send!({ type: 'stats', received, p50: pct(0.5), p99: pct(0.99), cpu: process.cpuUsage(), loopP99: loopDelay.percentile(99) / 1e6 })
    } else if (m.type === 'forget') {
      // the warm-up is over: its latencies are not counted (deliveries still are)
      latencies = []
      loopDelay.reset()
      process.send!({ type: 'forgot' })
    } else if (m.type === 'reset') {
      received = 0
      latencies = []
      loopDelay.reset()
      process.send!({ type: 'reset' })
    } else if (m.type === 'disconnect') {
      for (const ws of sockets) ws.terminate()
      sockets = []
      process.send!({ type: 'disconnected' })
    }
  })
  process.send!({ type: 'ready' })
}

// ---- the orchestrator ---------------------------------------------------------------

// Every gateway kind runs with the V8 young-generation cap the gateway ships with (SHIPPED_V8_FLAGS,
// docs/performance.md, "Memory"): `--semi-space N` runs N MiB instead, `--semi-space 0` V8's default.
const SEMI_SPACE_MB = arg('--semi-space', SHIPPED_V8_FLAGS[0]!.split('=')[1]!, n => n >= 0)[0]!
// paced runs, as fractions of the first kind's maximum (e.g. --fractions 0.1,0.25), run by every kind
const FRACTIONS = arg('--fractions', '0.01,0.05,0.25,0.5', x => x > 0 && x <= 1)
// paced runs at fixed records per second to each socket; 200: the issue's fixed point (issue 14, 1,000 sockets)
const FIXED_RATES = arg('--rates', '200')
// kind `shipped-baseline`: the checkout whose gateway it runs (see the header)
const BASELINE_TREE = process.argv.includes('--baseline-tree') ? resolvePath(process.argv[process.argv.indexOf('--baseline-tree') + 1]!) : undefined
function spawnChild (args: string[]): ChildProcess {
  const v8 = args[0] === 'gateway' && SEMI_SPACE_MB > 0 ? [`--max-semi-space-size=${SEMI_SPACE_MB}`] : []
  return fork(self, args, { execArgv: [...process.execArgv, '--expose-gc', ...v8], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

async function waitReady (child: ChildProcess): Promise<Msg> {
  return new Promise((resolve, reject) => {
    child.once('message', (m: Msg) => m.type === 'ready' ? resolve(m) : reject(new Error('unexpected ' + m.type)))
    child.once('exit', code => reject(new Error(`child exited ${code}`)))
  })
}

interface RunResult { redisCommands: number, redisDeliveries: number, deliveries: number, seconds: number, gatewayCpuUs: number, loadgenCpuUs: number, p50: number, p99: number, kafkaP50: number, kafkaP99: number, gatewayLoopP99: number, loadgenLoopP99: number }

// The Kafka floor: a plain consumer in this process, reading what the gateways read, with the same clock.
const floor: number[] = []
async function startFloorConsumer (kafka: KafkaClient): Promise<void> {
  const consumer = kafka.consumer({
    groupId: `bench-floor-${process.pid}`,
    topics: [TOPIC],
    async onBatch (batch) {
      const now = Date.now()
      for (const r of batch.records) floor.push(now - (JSON.parse(r.value!.toString()) as { ts: number }).ts)
    }
  })
  await consumer.start()
}

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN
}

async function produce (kafka: KafkaClient, count: number, rate: number): Promise<void> {
  if (rate === 0) {
    for (let n = 0; n < count; n += 500) await kafka.produceBatch(TOPIC, Array.from({ length: Math.min(500, count - n) }, (_v, i) => ({ value: record(n + i) })))
    return
  }
  const perTick = Math.max(1, Math.round(rate / 50))
  let n = 0
  const started = Date.now()
  while (n < count) {
    await kafka.produceBatch(TOPIC, Array.from({ length: Math.min(perTick, count - n) }, (_v, i) => ({ value: record(n + i) })))
    n += perTick
    const due = started + (n / rate) * 1000
    const wait = due - Date.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
  }
}

async function run (gateway: ChildProcess, loadgen: ChildProcess, kafka: KafkaClient, kind: string, n: number, records: number, rate: number, stallMs = 10_000): Promise<RunResult> {
  await ask(loadgen, { type: 'reset' }, 'reset')
  floor.length = 0
  const redis0 = await redisCommands()
  const cpu0 = (await ask(gateway, { type: 'cpu' }, 'cpu')).cpu as NodeJS.CpuUsage
  const lg0 = (await ask(loadgen, { type: 'count' }, 'count')).cpu as NodeJS.CpuUsage
  const started = performance.now()
  let warm: Promise<unknown> = Promise.resolve()
  // paced runs: Redis commands and deliveries over METER_WINDOW_MS from the warm-up's end
  let meterWindow: Promise<{ commands: number, deliveries: number } | undefined> = Promise.resolve(undefined)
  if (rate > 0) {
    warm = new Promise(resolve => setTimeout(resolve, WARMUP_MS)).then(() => {
      floor.length = 0
      gateway.send({ type: 'forget' })
      return ask(loadgen, { type: 'forget' }, 'forgot')
    })
    meterWindow = warm.then(async () => {
      const [c0, d0] = await Promise.all([redisCommands(), ask(loadgen, { type: 'count' }, 'count')])
      await new Promise(resolve => setTimeout(resolve, METER_WINDOW_MS))
      const [c1, d1] = await Promise.all([redisCommands(), ask(loadgen, { type: 'count' }, 'count')])
      // less the one INFO call between the two reads
      return { commands: c1 - c0 - 1, deliveries: (d1.received as number) - (d0.received as number) }
    })
  }
  if (kind.startsWith('raw')) await ask(gateway, { type: 'broadcast', count: records, rate }, 'broadcasting')
  else await produce(kafka, records, rate)
  const expected = n * records
  const deadline = Date.now() + DRAIN_TIMEOUT_MS
  let last = -1
  let stalledSince = Date.now()
  for (;;) {
    const got = (await ask(loadgen, { type: 'count' }, 'count')).received as number
    if (got >= expected || Date.now() > deadline) break
    if (got !== last) { last = got; stalledSince = Date.now() }
    // nothing new for a while (10 s): the gateway cannot deliver the rest
    if (Date.now() - stalledSince > stallMs) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const seconds = (performance.now() - started) / 1000
  await warm
  const metered = await meterWindow
  const stats = await ask(loadgen, { type: 'stats' }, 'stats')
  const gw1 = await ask(gateway, { type: 'cpu' }, 'cpu')
  const cpu1 = gw1.cpu as NodeJS.CpuUsage
  const lg1 = stats.cpu as NodeJS.CpuUsage
  const us = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => (b.user - a.user) + (b.system - a.system)
  // less the two INFO calls of this measure
  const redisTotal = await redisCommands() - redis0 - 2
  return { redisCommands: metered?.commands ?? redisTotal, redisDeliveries: metered?.deliveries ?? (stats.received as number), deliveries: stats.received as number, seconds, gatewayCpuUs: us(cpu0, cpu1), loadgenCpuUs: us(lg0, lg1), p50: stats.p50 as number, p99: stats.p99 as number, kafkaP50: percentile(floor, 0.5), kafkaP99: percentile(floor, 0.99), gatewayLoopP99: gw1.loopP99 as number, loadgenLoopP99: stats.loopP99 as number }
}

/** Commands Redis has processed since it started (INFO stats): the gateway is its only other client during a run. */
let infoClient: Redis | undefined
async function redisCommands (): Promise<number> {
  infoClient ??= new Redis(process.env.REDIS_URL!)
  const info = await infoClient.info('stats')
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN)
}

/** A gateway child of `kind` and a load generator child, both ready, for the length of `work`. */
async function withChildren<T> (kind: string, brokers: string[], work: (gateway: ChildProcess, loadgen: ChildProcess, url: string) => Promise<T>): Promise<T> {
  const gateway = spawnChild(['gateway', kind, brokers.join(','), ...(BASELINE_TREE ? [BASELINE_TREE] : [])])
  const loadgen = spawnChild(['loadgen'])
  try {
    const { url } = await waitReady(gateway)
    await waitReady(loadgen)
    return await work(gateway, loadgen, url as string)
  } finally {
    loadgen.send({ type: 'disconnect' })
    gateway.send({ type: 'close' })
    await new Promise(resolve => setTimeout(resolve, 500))
    loadgen.kill()
    gateway.kill()
  }
}

/** A paced rate every kind runs at, in records per second to each socket: a share of the first kind's maximum, or fixed. */
interface Rate { label: string, recordsPerSecond: number, fixed?: boolean }

interface Scenario { kind: string, n: number, connectMs: number, expected: number, burst: RunResult, maxRate: number, paced: Array<Rate & { run: RunResult, expected: number } | Rate & { skipped: string }>, search: string[] }

/**
 * One kind at N sockets: the maximum (as fast as Kafka hands records over), then each of `rates(maxRate)`.
 * A peer that cannot come near a fraction (more than 3x its own maximum) does not run it: it would only
 * drain its backlog at its maximum for minutes, which the full-speed run has measured already. The fixed
 * rates (--rates) run for every kind, behind or not (bounded by the drain timeout), since they are the
 * points compared across runs.
 */
function scenario (kind: string, n: number, brokers: string[], kafka: KafkaClient, rates: (maxRate: number) => Rate[]): Promise<Scenario> {
  return withChildren(kind, brokers, async (gateway, loadgen, url) => {
    const connectStarted = Date.now()
    const auth = kind.startsWith('shipped')
    await ask(loadgen, { type: 'connect', n, url, auth }, 'connected', 600_000)
    const connectMs = Date.now() - connectStarted
    // A socket told `lagging` has lost its subscription (a client resubscribes from the cursor it was given):
    // after a run that did not deliver everything, the next one starts on new sockets.
    const reconnect = async () => {
      await ask(loadgen, { type: 'disconnect' }, 'disconnected')
      await ask(loadgen, { type: 'connect', n, url, auth }, 'connected', 600_000)
    }
    let burst: RunResult
    let expected: number
    let maxRate: number
    const search: string[] = []
    if (auth) {
      // The shipped gateway's default queues (256 KiB a socket) hold about 790 of these frames: a backlog
      // burst from Kafka (fetches of thousands of records) overflows them at once, and every socket is told
      // `lagging`, whatever its speed. So its maximum is the highest paced rate it keeps up with, complete
      // and on time: rates from 50,000 deliveries/s up by 1.5x, 3 s each, until one falls short.
      let perSocket = Math.max(1, Math.round(50_000 / n))
      let best: { run: RunResult, expected: number } | undefined
      for (;;) {
        const records = Math.round(perSocket * SEARCH_SECONDS)
        const r = await run(gateway, loadgen, kafka, kind, n, records, perSocket, 3000)
        const complete = r.deliveries >= n * records
        const onTime = r.seconds <= 1.25 * SEARCH_SECONDS
        search.push(`${perSocket * n}/s: ${complete ? '' : 'in'}complete (${r.deliveries}/${n * records}), ${r.seconds.toFixed(1)} s, ${(r.gatewayCpuUs / r.deliveries).toFixed(2)} µs`)
        if (!complete) await reconnect()
        if (!complete || !onTime) break
        best = { run: r, expected: n * records }
        perSocket = Math.round(perSocket * 1.5)
      }
      if (!best) throw new Error(`${kind}: not even ${perSocket * n} deliveries/s kept up (${search.join('; ')})`)
      burst = best.run
      expected = best.expected
      maxRate = burst.deliveries / burst.seconds
    } else {
      // full speed: how many deliveries per second the gateway sustains, from a backlog
      const records = Math.max(200, Math.round(BURST_DELIVERIES / n))
      burst = await run(gateway, loadgen, kafka, kind, n, records, 0)
      expected = n * records
      maxRate = burst.deliveries / burst.seconds
    }
    const paced: Scenario['paced'] = []
    for (const rate of rates(maxRate)) {
      if (!rate.fixed && rate.recordsPerSecond * n > 3 * maxRate) {
        paced.push({ ...rate, skipped: `above 3x its maximum of ${Math.round(maxRate)} deliveries/s` })
        continue
      }
      const records = Math.round(rate.recordsPerSecond * (PACED_SECONDS + WARMUP_MS / 1000))
      const r = await run(gateway, loadgen, kafka, kind, n, records, rate.recordsPerSecond)
      paced.push({ ...rate, run: r, expected: n * records })
      if (auth && r.deliveries < n * records) await reconnect()
    }
    return { kind, n, connectMs, expected, burst, maxRate, paced, search }
  })
}

function idleRss (kind: string, n: number, brokers: string[]): Promise<{ rss: number, heap: number }> {
  return withChildren(kind, brokers, async (gateway, loadgen, url) => {
    // Warm-up: 1,000 sockets connect and leave, so that memory the process touches once
    // (V8's young generation, JIT code, allocator arenas) is in the baseline, not charged per socket.
    await ask(loadgen, { type: 'connect', n: 1000, url }, 'connected', 600_000)
    await ask(loadgen, { type: 'disconnect' }, 'disconnected')
    await new Promise(resolve => setTimeout(resolve, 1000))
    // one subscribed socket first, so the topic's consumer is part of the baseline
    await ask(loadgen, { type: 'connect', n: 1, url }, 'connected')
    const before = await ask(gateway, { type: 'cpu' }, 'cpu')
    await ask(loadgen, { type: 'connect', n, url }, 'connected', 600_000)
    await new Promise(resolve => setTimeout(resolve, 1000))
    const after = await ask(gateway, { type: 'cpu' }, 'cpu')
    return { rss: ((after.rss as number) - (before.rss as number)) / n, heap: ((after.heap as number) - (before.heap as number)) / n }
  })
}

/** A comma-separated list of numbers after `name` (else `fallback`), keeping those `keep` accepts. */
function arg (name: string, fallback: string, keep: (n: number) => boolean = n => n > 0): number[] {
  const i = process.argv.indexOf(name)
  return (i >= 0 ? process.argv[i + 1]! : fallback).split(',').filter(Boolean).map(Number).filter(keep)
}

async function main (): Promise<void> {
  const sizes = arg('--sizes', '100,1000,5000')
  const idle = arg('--idle', '1000,5000,10000')
  const k = process.argv.indexOf('--kinds')
  const kinds = (k >= 0 ? process.argv[k + 1]! : 'shipped,per-socket,sluice,raw,raw-frames').split(',')
  // Kafka's default group settings (a 3 s initial rebalance delay), as every real broker runs: the shipped
  // hub reads without a group; the per-socket peer's consumers and the floor consumer join one each
  const broker = new KafkaBroker({ heap: '1g' })
  await broker.start()
  // the limits' Redis: REDIS_URL, or one of this run's own (its CPU is not the gateway's: not counted)
  let redis: RedisServer | undefined
  if (!process.env.REDIS_URL) {
    redis = new RedisServer()
    await redis.start()
    process.env.REDIS_URL = redis.url
  }
  const redisUrl = process.env.REDIS_URL
  const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'bench-producer' })
  await kafka.ensureTopics([{ topic: TOPIC, partitions: 1 }])
  await startFloorConsumer(kafka)
  // A broker just started spends its first minute compiling (measured here: 31 % of a core
  // for 45 produce requests/s in its first 5 s, 9 % after 40 s), on the cores the gateway
  // and the load generator share. Warm it up first, so that no scenario pays for it.
  await produce(kafka, BROKER_WARMUP_SECONDS * 2000, 2000)
  const f = (x: number, d = 0) => Number.isFinite(x) ? x.toFixed(d) : 'n/a'
  try {
    console.log(`fan-out: 1 topic -> N sockets, 256-byte JSON records, Kafka ${broker.brokers[0]} (Kafka's default group settings), Redis ${redisUrl}, Node ${process.version}, ${new Date().toISOString()}`)
    if (kinds.includes('shipped-baseline')) console.log(`shipped-baseline: the shipped gateway of ${BASELINE_TREE ? describeTree(BASELINE_TREE) : '(no --baseline-tree)'}`)
    console.log(`kinds: ${kinds.join(', ')}; paced rates: ${FRACTIONS.map(x => `${x * 100}%`).join(', ')} of ${kinds[0]}'s maximum, and ${FIXED_RATES.join(', ')} records/s, for every kind`)
    for (const n of sizes) {
      const results: Record<string, Scenario | undefined> = {}
      let shared: Rate[] | undefined
      for (const kind of kinds) {
        // one consumer per socket: 5,000 group joins and 10,000 broker connections is past what this machine's broker serves
        if (kind === 'per-socket' && n > 1000) { console.log(`${String(n).padEnd(6)} ${kind.padEnd(11)} not run: ${n} consumers`); continue }
        // the first kind sets the paced rates from its maximum; every other kind runs the same ones, to compare at equal load
        const r = await scenario(kind, n, broker.brokers, kafka, maxRate => {
          shared ??= [
            ...FRACTIONS.map(x => ({ label: `${x * 100}% of ${kind}'s max`, recordsPerSecond: Math.max(1, Math.round(maxRate * x / n)) })),
            ...FIXED_RATES.map(x => ({ label: `${x} records/s`, recordsPerSecond: x, fixed: true }))
          ]
          return shared
        })
        results[kind] = r
        const perDelivery = (x: RunResult) => x.gatewayCpuUs / x.deliveries
        console.log(`${String(n).padEnd(6)} ${kind.padEnd(11)} connect ${n} sockets ${f(r.connectMs)} ms; max ${f(r.maxRate)} deliveries/s (${r.burst.deliveries}/${r.expected} delivered${r.search.length ? ', highest paced rate kept up with' : ', from a backlog'}): gateway CPU ${f(perDelivery(r.burst), 2)} µs per delivery, p50/p99 ${f(r.burst.p50)}/${f(r.burst.p99)} ms, load generator ${f(r.burst.loadgenCpuUs / r.burst.deliveries, 2)} µs per delivery`)
        if (r.search.length) console.log(`       ${kind} search for its maximum: ${r.search.join('; ')}`)
        for (const p of r.paced) {
          const head = `       ${kind} at ${p.label} (${f(p.recordsPerSecond * n)} deliveries/s)`
          if ('skipped' in p) { console.log(`${head}: not run, ${p.skipped}`); continue }
          const m = p.run
          const got = m.deliveries / m.seconds
          // a peer behind the rate drains a backlog: its latency is the backlog's, its CPU per delivery its maximum's
          const behind = (got < 0.9 * p.recordsPerSecond * n * PACED_SECONDS / (PACED_SECONDS + WARMUP_MS / 1000) ? ` (behind: ${f(got)} deliveries/s over ${f(m.seconds, 1)} s)` : '') +
            (m.deliveries < p.expected ? ` (incomplete: ${m.deliveries}/${p.expected})` : '')
          console.log(`${head}${behind}: gateway CPU ${f(perDelivery(m), 2)} µs per delivery, p50/p99 ${f(m.p50)}/${f(m.p99)} ms${kind.startsWith('raw') ? '' : `, Kafka floor ${f(m.kafkaP50)}/${f(m.kafkaP99)} ms (p99 added ${f(m.p99 - m.kafkaP99)})`}; event-loop delay p99 gateway ${f(m.gatewayLoopP99, 1)} ms, load generator ${f(m.loadgenLoopP99, 1)} ms; load generator ${f(m.loadgenCpuUs / m.deliveries, 2)} µs per delivery; Redis ${f(m.redisCommands / m.redisDeliveries, 5)} commands per delivery (${m.redisCommands} in ${m.redisDeliveries} deliveries${m.redisDeliveries === m.deliveries ? '' : `, ${METER_WINDOW_MS / 1000} s from the warm-up's end`})`)
        }
      }
      // CPU per delivery against the consumer-per-socket peer, at the same rate in the same run
      const peer = results['per-socket']
      for (const kind of kinds) {
        const r = results[kind]
        if (!r || !peer || kind === 'per-socket') continue
        const cells = [`max ${f((peer.burst.gatewayCpuUs / peer.burst.deliveries) / (r.burst.gatewayCpuUs / r.burst.deliveries), 1)}x`]
        for (const [i, p] of r.paced.entries()) {
          const q = peer.paced[i]
          if ('skipped' in p || !q || 'skipped' in q) continue
          cells.push(`${p.label} ${f((q.run.gatewayCpuUs / q.run.deliveries) / (p.run.gatewayCpuUs / p.run.deliveries), 1)}x`)
        }
        console.log(`       ratio at ${n}: per-socket gateway CPU per delivery / ${kind}: ${cells.join(', ')}`)
      }
      // usage metering on (shipped) against off (shipped-unmetered), at the same rates in the same run
      const metered = results.shipped
      const unmetered = results['shipped-unmetered']
      if (metered && unmetered) {
        const cells: string[] = []
        for (const [i, p] of metered.paced.entries()) {
          const q = unmetered.paced[i]
          if ('skipped' in p || !q || 'skipped' in q) continue
          const on = p.run.gatewayCpuUs / p.run.deliveries
          const off = q.run.gatewayCpuUs / q.run.deliveries
          cells.push(`${p.label}: ${f(on, 2)} / ${f(off, 2)} µs = ${f((on / off - 1) * 100, 1)} % CPU, Redis ${f(p.run.redisCommands / p.run.redisDeliveries, 5)} / ${f(q.run.redisCommands / q.run.redisDeliveries, 5)} commands per delivery`)
        }
        console.log(`       usage metering at ${n} (on / off): ${cells.join('; ')}`)
      }
      // this tree's shipped gateway against the baseline tree's, at the same rates in the same run
      const baseline = results['shipped-baseline']
      if (metered && baseline) {
        const cells = [`max ${f(metered.maxRate)} / ${f(baseline.maxRate)} deliveries/s`]
        for (const [i, p] of metered.paced.entries()) {
          const q = baseline.paced[i]
          if ('skipped' in p || !q || 'skipped' in q) continue
          const now = p.run.gatewayCpuUs / p.run.deliveries
          const then = q.run.gatewayCpuUs / q.run.deliveries
          cells.push(`${p.label}: ${f(now, 2)} / ${f(then, 2)} µs = ${f(now / then, 2)}x`)
        }
        console.log(`       shipped / shipped-baseline (${BASELINE_TREE}) at ${n}, gateway CPU per delivery: ${cells.join('; ')}`)
      }
      const s = results.shipped ?? results.sluice
      const raw = results.raw
      const frames = results['raw-frames']
      if (s && raw) console.log(`       ratio: ${s.kind} CPU per delivery at max / raw ws = ${f((s.burst.gatewayCpuUs / s.burst.deliveries) / (raw.burst.gatewayCpuUs / raw.burst.deliveries), 2)}x, raw deliveries/s / ${s.kind} = ${f(raw.maxRate / s.maxRate, 2)}x`)
      if (s && frames) console.log(`       ratio: ${s.kind} CPU per delivery at max / pre-framed TCP writes = ${f((s.burst.gatewayCpuUs / s.burst.deliveries) / (frames.burst.gatewayCpuUs / frames.burst.deliveries), 2)}x, their deliveries/s / ${s.kind} = ${f(frames.maxRate / s.maxRate, 2)}x`)
    }
    // Sluice, and a bare `ws` server holding the same sockets (the transport's own cost)
    for (const kind of ['sluice', 'raw']) {
      let prior: { n: number, total: number } | undefined
      for (const n of idle) {
        const perSocket = await idleRss(kind, n, broker.brokers)
        // the marginal cost between two sizes is what each further socket costs
        const marginal = prior ? ` marginal from ${prior.n}: ${f((perSocket.rss * n - prior.total) / (n - prior.n) / 1024, 1)} KB per socket;` : ''
        console.log(`idle ${kind.padEnd(6)}: ${n} sockets, gateway RSS growth ${f(perSocket.rss / 1024, 1)} KB per socket;${marginal} JS heap and external ${f(perSocket.heap / 1024, 1)} KB per socket${kind === 'sluice' ? ' (target <= 10 KB)' : ''}`)
        prior = { n, total: perSocket.rss * n }
      }
    }
  } finally {
    await kafka.close()
    await broker.destroy()
    await redis?.stop()
  }
}

const role = process.argv[2]
if (role === 'gateway') gatewayChild(process.argv[3]!, process.argv[4]!.split(','), process.argv[5])
else if (role === 'loadgen') loadgenChild()
else main().then(() => process.exit(0), err => { console.error(err); process.exit(1) })
