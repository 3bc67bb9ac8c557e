// Fan-out benchmark (issue 3): one topic -> N sockets, 256-byte JSON records.
// In the same run, against (a) a gateway built the common way -- one Kafka
// consumer per socket, same libraries -- and (b) raw `ws` broadcast of a
// prepared frame with no Kafka (the transport limit). Each gateway runs in a
// child process of its own, the sockets in another (the load generator), so
// CPU is measured per process. Loopback only; bounded in count and time.
//
//   bash deploy/local/node.sh bench/fanout.ts [--sizes 100,1000,5000] [--idle 1000,5000,10000] [--kinds sluice,per-socket,raw,raw-frames] [--semi-space 8] [--fractions 0.1,0.25]
//
// Prints, per N: deliveries/s at full speed, gateway CPU µs per delivery,
// p50/p99 produce-to-socket latency at half that rate (after a 1 s warm-up), the load generator's
// CPU, and the ratios the issue names. Then RSS per idle socket.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { WebSocketServer } from 'ws'
import { LeanClient } from './lean-client.ts'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { KafkaClient } from '@sluice/kafka/core'
import { KafkaBroker } from '../deploy/local/stack.ts'
import { allowAll, streamApp } from '../test/stream-harness.ts'
import { wireText } from '@sluice/hub'

const self = fileURLToPath(import.meta.url)
const TOPIC = 'bench.fanout'
// 256-byte records, as the issue asks; `ts` is the produce time, read back by the load generator
const PAD = 'x'.repeat(196)
const record = (n: number) => JSON.stringify({ n, ts: Date.now(), sym: 'BTC-USD', pad: PAD })
// a run's records: enough for a steady state, few enough to stay bounded (N x records deliveries)
const BURST_DELIVERIES = 2_000_000
const PACED_SECONDS = 5
// A paced run's first second is not counted: it runs in the wake of the run before it (the
// full-speed burst's garbage, the broker's flush), which is not the steady state its latency describes.
const WARMUP_MS = 1000
const BROKER_WARMUP_SECONDS = 30
const DRAIN_TIMEOUT_MS = 120_000

type Msg = Record<string, unknown> & { type: string }

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

async function gatewayChild (kind: string, brokers: string[]): Promise<void> {
  loopDelay.enable()
  let url: string
  let broadcast: ((text: string) => void) | undefined
  let close: () => Promise<void>
  if (kind === 'sluice') {
    // big queues: this benchmark is about throughput, not about slow clients
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
    if (m.type === 'cpu') {
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
          }))
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

// Every gateway kind runs with the V8 young-generation cap the gateway ships with
// (README, "Memory"): `--semi-space 0` runs V8's default instead.
const SEMI_SPACE_MB = arg('--semi-space', '8', n => n >= 0)[0]!
// paced runs besides the half rate, as fractions of each gateway's maximum (e.g. --fractions 0.1,0.25)
const FRACTIONS = arg('--fractions', '', x => x > 0 && x <= 1)
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

interface RunResult { deliveries: number, seconds: number, gatewayCpuUs: number, loadgenCpuUs: number, p50: number, p99: number, kafkaP50: number, kafkaP99: number, gatewayLoopP99: number, loadgenLoopP99: number }

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

async function run (gateway: ChildProcess, loadgen: ChildProcess, kafka: KafkaClient, kind: string, n: number, records: number, rate: number): Promise<RunResult> {
  await ask(loadgen, { type: 'reset' }, 'reset')
  floor.length = 0
  const cpu0 = (await ask(gateway, { type: 'cpu' }, 'cpu')).cpu as NodeJS.CpuUsage
  const lg0 = (await ask(loadgen, { type: 'count' }, 'count')).cpu as NodeJS.CpuUsage
  const started = performance.now()
  let warm: Promise<unknown> = Promise.resolve()
  if (rate > 0) {
    warm = new Promise(resolve => setTimeout(resolve, WARMUP_MS)).then(() => {
      floor.length = 0
      gateway.send({ type: 'forget' })
      return ask(loadgen, { type: 'forget' }, 'forgot')
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
    // nothing new for 10 s: the gateway cannot deliver the rest
    if (Date.now() - stalledSince > 10_000) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const seconds = (performance.now() - started) / 1000
  await warm
  const stats = await ask(loadgen, { type: 'stats' }, 'stats')
  const gw1 = await ask(gateway, { type: 'cpu' }, 'cpu')
  const cpu1 = gw1.cpu as NodeJS.CpuUsage
  const lg1 = stats.cpu as NodeJS.CpuUsage
  const us = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => (b.user - a.user) + (b.system - a.system)
  return { deliveries: stats.received as number, seconds, gatewayCpuUs: us(cpu0, cpu1), loadgenCpuUs: us(lg0, lg1), p50: stats.p50 as number, p99: stats.p99 as number, kafkaP50: percentile(floor, 0.5), kafkaP99: percentile(floor, 0.99), gatewayLoopP99: gw1.loopP99 as number, loadgenLoopP99: stats.loopP99 as number }
}

/** A gateway child of `kind` and a load generator child, both ready, for the length of `work`. */
async function withChildren<T> (kind: string, brokers: string[], work: (gateway: ChildProcess, loadgen: ChildProcess, url: string) => Promise<T>): Promise<T> {
  const gateway = spawnChild(['gateway', kind, brokers.join(',')])
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

function scenario (kind: string, n: number, brokers: string[], kafka: KafkaClient) {
  return withChildren(kind, brokers, async (gateway, loadgen, url) => {
    const connectStarted = Date.now()
    await ask(loadgen, { type: 'connect', n, url }, 'connected', 600_000)
    const connectMs = Date.now() - connectStarted
    // full speed: how many deliveries per second the gateway sustains
    const records = Math.max(200, Math.round(BURST_DELIVERIES / n))
    const burst = await run(gateway, loadgen, kafka, kind, n, records, 0)
    const maxRate = burst.deliveries / burst.seconds
    // half of that rate, for latency
    const halfRecordsPerSecond = Math.max(1, Math.round(maxRate / 2 / n))
    const paced = await run(gateway, loadgen, kafka, kind, n, Math.round(halfRecordsPerSecond * (PACED_SECONDS + WARMUP_MS / 1000)), halfRecordsPerSecond)
    // latency at other fractions of the maximum rate (--fractions), to show where the tail starts to grow
    const more: Array<{ fraction: number, deliveriesPerSecond: number, run: RunResult }> = []
    for (const fraction of FRACTIONS) {
      const perSecond = Math.max(1, Math.round(maxRate * fraction / n))
      more.push({ fraction, deliveriesPerSecond: perSecond * n, run: await run(gateway, loadgen, kafka, kind, n, Math.round(perSecond * (PACED_SECONDS + WARMUP_MS / 1000)), perSecond) })
    }
    return { kind, n, connectMs, expected: n * records, burst, maxRate, paced, halfRecordsPerSecond, more }
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
  const kinds = (k >= 0 ? process.argv[k + 1]! : 'sluice,per-socket,raw,raw-frames').split(',')
  const broker = new KafkaBroker({ heap: '1g' })
  await broker.start()
  const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'bench-producer' })
  await kafka.ensureTopics([{ topic: TOPIC, partitions: 1 }])
  await startFloorConsumer(kafka)
  // A broker just started spends its first minute compiling (measured here: 31 % of a core
  // for 45 produce requests/s in its first 5 s, 9 % after 40 s), on the cores the gateway
  // and the load generator share. Warm it up first, so that no scenario pays for it.
  await produce(kafka, BROKER_WARMUP_SECONDS * 2000, 2000)
  const f = (x: number, d = 0) => Number.isFinite(x) ? x.toFixed(d) : 'n/a'
  try {
    console.log(`fan-out: 1 topic -> N sockets, 256-byte JSON records, Kafka ${broker.brokers[0]}, Node ${process.version}, ${new Date().toISOString()}`)
    console.log('N      gateway     deliveries/s  gw µs/delivery  p50 ms  p99 ms (at half rate)  loadgen µs/delivery  delivered/expected  Kafka floor p50/p99 ms (plain consumer, same run)')
    for (const n of sizes) {
      const results: Record<string, Awaited<ReturnType<typeof scenario>> | undefined> = {}
      for (const kind of kinds) {
        // one consumer per socket: 5,000 group joins and 10,000 broker connections is past what this machine's broker serves
        if (kind === 'per-socket' && n > 1000) { console.log(`${String(n).padEnd(6)} ${kind.padEnd(11)} not run: ${n} consumers`); continue }
        const r = await scenario(kind, n, broker.brokers, kafka)
        results[kind] = r
        console.log(`${String(n).padEnd(6)} ${kind.padEnd(11)} ${f(r.maxRate).padStart(12)}  ${f(r.burst.gatewayCpuUs / r.burst.deliveries, 2).padStart(14)}  ${f(r.paced.p50).padStart(6)}  ${f(r.paced.p99).padStart(6)}                 ${f(r.burst.loadgenCpuUs / r.burst.deliveries, 2).padStart(8)}             ${r.burst.deliveries}/${r.expected}  ${kind.startsWith('raw') ? '-' : `${f(r.paced.kafkaP50)}/${f(r.paced.kafkaP99)}`}`)
        console.log(`       ${kind}: event-loop delay p99 at half rate: gateway ${f(r.paced.gatewayLoopP99, 1)} ms, load generator ${f(r.paced.loadgenLoopP99, 1)} ms`)
        if (!kind.startsWith('raw')) console.log(`       ${kind}: p99 added over the Kafka floor at half rate (${f(r.halfRecordsPerSecond * n)} deliveries/s): ${f(r.paced.p99 - r.paced.kafkaP99)} ms${n === 1000 ? ' (target <= 15)' : ''}`)
        for (const m of r.more) {
          console.log(`       ${kind} at ${f(m.fraction * 100)}% of its maximum (${f(m.deliveriesPerSecond)} deliveries/s): gateway CPU ${f(m.run.gatewayCpuUs / m.run.deliveries, 2)} µs per delivery, p50/p99 ${f(m.run.p50)}/${f(m.run.p99)} ms${kind.startsWith('raw') ? '' : `, Kafka floor ${f(m.run.kafkaP50)}/${f(m.run.kafkaP99)} ms`}; event-loop delay p99 gateway ${f(m.run.gatewayLoopP99, 1)} ms, load generator ${f(m.run.loadgenLoopP99, 1)} ms`)
        }
      }
      const s = results.sluice
      const p = results['per-socket']
      const raw = results.raw
      const floor = results['raw-frames']
      if (s && p) console.log(`       ratio: per-socket gateway CPU per delivery / Sluice = ${f((p.burst.gatewayCpuUs / p.burst.deliveries) / (s.burst.gatewayCpuUs / s.burst.deliveries), 2)}x (target >= 3)`)
      if (s && raw) console.log(`       ratio: Sluice CPU per delivery / raw ws = ${f((s.burst.gatewayCpuUs / s.burst.deliveries) / (raw.burst.gatewayCpuUs / raw.burst.deliveries), 2)}x, raw deliveries/s / Sluice = ${f(raw.maxRate / s.maxRate, 2)}x (target <= 1.5)`)
      if (s && floor) console.log(`       ratio: Sluice CPU per delivery / pre-framed TCP writes = ${f((s.burst.gatewayCpuUs / s.burst.deliveries) / (floor.burst.gatewayCpuUs / floor.burst.deliveries), 2)}x, their deliveries/s / Sluice = ${f(floor.maxRate / s.maxRate, 2)}x`)
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
  }
}

const role = process.argv[2]
if (role === 'gateway') gatewayChild(process.argv[3]!, process.argv[4]!.split(','))
else if (role === 'loadgen') loadgenChild()
else main().then(() => process.exit(0), err => { console.error(err); process.exit(1) })
