// MQTT fan-out benchmark (issue 16): 1,000 subscribers on one filter,
// `sensors/+/temp`, fed by one Kafka topic (bench/mqtt-fanout-policy maps
// `sensors/{device}/temp` to `bench.mqtt-fanout`, key `{device}`), 256-byte
// JSON records, at QoS 0 and at QoS 1. In the same run and at the same rates:
// (a) the same 1,000 sockets on `/v1/stream` of the same gateway (the fan-out
// bench's lean client, bench/lean-client.ts), the same records; (b) `aedes`
// (npm, a plain in-memory Node MQTT broker, 3.1.1) with the same 1,000 MQTT
// subscribers and a publisher publishing the records to it directly at the
// rate, at the run's QoS.
//
// The gateway is the one users run (apps/gateway/src/server.ts, a YAML config,
// JWT auth with a subject per socket, the policy above, Redis-backed limits,
// default queue sizes) with its MQTT TCP listener on. MQTT clients speak 3.1.1
// (what aedes speaks) over plain TCP, to both: a lean client of this file
// (CONNECT and SUBSCRIBE built by `mqtt-packet`, every packet from the server
// read by hand off the socket with no allocation per packet, QoS 1 PUBACKed at
// once, the PUBACKs of one read written together), in a load-generator process
// of its own; MQTT.js would cost that process more than the servers it
// measures. Gateway and aedes CPU come from /proc/<pid>/stat: each is a process
// of its own, neither the orchestrator nor the load generator.
//
//   KAFKA_BROKERS=127.0.0.1:19092 REDIS_URL=redis://127.0.0.1:16379 \
//     bash deploy/local/node.sh bench/mqtt-fanout.ts [--n 1000] [--rates 20,100,200]
//     [--kinds mqtt-qos0,mqtt-qos1,stream,aedes-qos0,aedes-qos1] [--seconds 5] [--cpu-prof DIR]
//
// Prints per rate and kind: deliveries/s, delivered/expected and lost, server CPU
// µs per delivery, p50/p99 produce -> client receipt (the record's `ts`, same
// clock; after a 1 s warm-up), the load generator's CPU; then the ratios
// MQTT/stream and MQTT/aedes. `--cpu-prof DIR` runs the gateway with
// --cpu-prof, stops it with SIGTERM at the end and prints its top self-time
// functions. Bounded: about 10 s per kind and rate plus the connects.
import { fork, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generate } from 'mqtt-packet'
import { KafkaClient } from '@sluice/kafka'
import { freePort } from '@sluice/stack'
import { SHIPPED_V8_FLAGS, spawnShipped } from './shipped-node.ts'
import { LeanClient } from './lean-client.ts'

const self = fileURLToPath(import.meta.url)
const TOPIC = 'bench.mqtt-fanout'
const FILTER = 'sensors/+/temp'
// ten devices: the records' keys, so ten MQTT topic names under the one filter
const DEVICES = 10
// 256-byte records, as the /v1/stream fan-out bench's; `ts` is the produce time, read back by the load generator
const PAD = 'x'.repeat(196)
const record = (n: number) => JSON.stringify({ n, ts: Date.now(), sym: 'BTC-USD', pad: PAD })
// A run's first second is not counted for latency: it runs in the wake of the connects or the run before it
const WARMUP_MS = 1000
// nothing new for this long: the server cannot deliver the rest (counted as not delivered)
const STALL_MS = 5000
// A run waits at most this long after its last record for the rest: a server far behind the rate (aedes at
// 100,000 deliveries/s and more here) would otherwise drain its backlog for a minute, which says no more
const DRAIN_MS = 10_000
// the last delivery more than this after the last record published: the server did not keep up with the rate
const LATE_MS = 1000
// 1 frame in 16 sampled for latency, per socket from its own phase: enough points, little cost
const SAMPLE = 16

type Msg = Record<string, unknown> & { type: string }

const GATEWAY_ENTRY = join(import.meta.dirname, '..', 'apps', 'gateway', 'src', 'server.ts')
const POLICY_DIR = join(import.meta.dirname, 'mqtt-fanout-policy')
const JWT_SECRET = 'mqtt-fanout-bench-hs256-secret-0123'
function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'bench', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 6 * 3600 })}`
  return `${body}.${createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`
}

function ask (child: ChildProcess, msg: Msg, reply: string, timeoutMs = 120_000): Promise<Msg> {
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

/** CPU time (µs) of another process of this machine, from /proc (Linux) */
function procCpuUs (pid: number): number {
  // fields after the command name (which may hold spaces): utime and stime are the 14th and 15th, in clock ticks
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // 100 ticks a second on Linux (getconf CLK_TCK): 10 ms resolution, against runs of seconds of CPU
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}

// ---- a lean MQTT 3.1.1 subscriber ---------------------------------------------------

const TS = Buffer.from('"ts":')
// Every client of the process reads into this one buffer (net's `onread`): a read's callback runs to its
// end before the next, so nothing is allocated per read; a packet split across reads is copied, once.
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

interface MqttCallbacks { onSubscribed (): void, onFrame (tsMs: number): void, onError (err: Error): void }

class LeanMqtt {
  readonly #socket: Socket
  readonly #cb: MqttCallbacks
  readonly #filter: string
  readonly #qos: 0 | 1
  #rest: Buffer | undefined
  #frames = Math.floor(Math.random() * SAMPLE)
  #acks: Buffer[] = []

  constructor (host: string, port: number, clientId: string, password: string, filter: string, qos: 0 | 1, cb: MqttCallbacks) {
    this.#cb = cb
    this.#filter = filter
    this.#qos = qos
    this.#socket = connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => { this.#data(buf as Buffer, n); return true } }
    })
    // keep-alive 0: no PINGREQ to send, no timer on either side; the socket is busy the whole run anyway
    this.#socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0, username: 'bench', password: Buffer.from(password) }))
    this.#socket.on('error', err => cb.onError(err))
    this.#socket.on('close', () => cb.onError(new Error(`${clientId}: connection closed`)))
  }

  terminate (): void {
    this.#socket.removeAllListeners('close')
    this.#socket.destroy()
  }

  #data (buffer: Buffer, length: number): void {
    let chunk = buffer.subarray(0, length)
    if (this.#rest) {
      chunk = Buffer.concat([this.#rest, chunk])
      this.#rest = undefined
    }
    let at = 0
    while (at < chunk.length) {
      // fixed header: type and flags, then the remaining length (1 to 4 bytes, 7 bits each)
      let len = 0
      let mul = 1
      let i = at + 1
      for (;;) {
        if (i >= chunk.length) { len = -1; break }
        const b = chunk[i++]!
        len += (b & 0x7f) * mul
        mul *= 128
        if ((b & 0x80) === 0) break
      }
      if (len < 0 || i + len > chunk.length) break
      this.#packet(chunk, chunk[at]!, i, i + len)
      at = i + len
    }
    if (at < chunk.length) this.#rest = Buffer.from(chunk.subarray(at))
    if (this.#acks.length) {
      this.#socket.write(this.#acks.length === 1 ? this.#acks[0]! : Buffer.concat(this.#acks))
      this.#acks = []
    }
  }

  #packet (buf: Buffer, first: number, start: number, end: number): void {
    const type = first >> 4
    if (type === 3) {
      // PUBLISH: topic name, a packet id at QoS 1, then the payload
      const qos = (first >> 1) & 3
      let p = start + 2 + buf.readUInt16BE(start)
      if (qos > 0) {
        this.#acks.push(Buffer.from([0x40, 2, buf[p]!, buf[p + 1]!]))
        p += 2
      }
      let ts = NaN
      if (++this.#frames % SAMPLE === 0) {
        const k = buf.indexOf(TS, p)
        if (k !== -1 && k < end) ts = parseInt(buf.toString('latin1', k + TS.length, Math.min(end, k + TS.length + 20)), 10)
      }
      this.#cb.onFrame(ts)
    } else if (type === 2) {
      // CONNACK: return code in its second byte
      if (buf[start + 1] !== 0) { this.#cb.onError(new Error(`CONNACK ${buf[start + 1]}`)); return }
      this.#socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: this.#filter, qos: this.#qos }] }))
    } else if (type === 9) {
      // SUBACK: the granted QoS, 0x80 refused
      const granted = buf[start + 2]!
      if (granted !== this.#qos) this.#cb.onError(new Error(`SUBACK granted ${granted}, asked ${this.#qos}`))
      else this.#cb.onSubscribed()
    }
  }
}

// ---- child: aedes -------------------------------------------------------------------

async function aedesChild (): Promise<void> {
  const { Aedes } = await import('aedes')
  const broker = await Aedes.createBroker()
  const server = createServer(broker.handle)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  process.on('message', (m: Msg) => { if (m.type === 'close') process.exit(0) })
  process.send!({ type: 'ready', port: (server.address() as { port: number }).port })
}

// ---- child: the load generator ------------------------------------------------------

async function loadgenChild (): Promise<void> {
  let sockets: Array<{ terminate (): void }> = []
  let received = 0
  let latencies: number[] = []
  let errors = 0
  let lastError = ''
  let subjects = 0
  process.on('message', async (m: Msg) => {
    if (m.type === 'connect') {
      const n = m.n as number
      received = 0
      // 100 at a time: a burst of thousands of handshakes is a different benchmark
      for (let i = 0; i < n; i += 100) {
        const batch: Array<Promise<void>> = []
        for (let j = i; j < Math.min(n, i + 100); j++) {
          let ready!: { resolve: () => void, reject: (err: Error) => void }
          batch.push(new Promise<void>((resolve, reject) => { ready = { resolve, reject } }))
          const cb = {
            onSubscribed: () => ready.resolve(),
            onError (err: Error) { errors++; lastError = err.message; ready.reject(err) },
            onFrame (ts: number) {
              received++
              if (!Number.isNaN(ts)) latencies.push(Date.now() - ts)
            }
          }
          const sub = `bench-${subjects++}`
          if (m.kind === 'stream') sockets.push(new LeanClient(m.url as string, 'sluice.v1', SAMPLE, cb, { authorization: `Bearer ${jwt(sub)}` }))
          else sockets.push(new LeanMqtt('127.0.0.1', m.port as number, sub, jwt(sub), FILTER, m.qos as 0 | 1, cb))
        }
        try {
          await Promise.all(batch)
        } catch (err) {
          process.send!({ type: 'connected', error: (err as Error).message })
          return
        }
      }
      errors = 0
      process.send!({ type: 'connected' })
    } else if (m.type === 'count') {
      process.send!({ type: 'count', received, cpu: process.cpuUsage() })
    } else if (m.type === 'stats') {
      const sorted = [...latencies].sort((a, b) => a - b)
      const pct = (p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN
      process.send!({ type: 'stats', received, p50: pct(0.5), p99: pct(0.99), samples: sorted.length, cpu: process.cpuUsage(), errors, lastError })
    } else if (m.type === 'forget') {
      latencies = []
      process.send!({ type: 'forgot' })
    } else if (m.type === 'reset') {
      received = 0
      latencies = []
      errors = 0
      process.send!({ type: 'reset' })
    } else if (m.type === 'disconnect') {
      for (const s of sockets) s.terminate()
      sockets = []
      process.send!({ type: 'disconnected' })
    }
  })
  process.send!({ type: 'ready' })
}

// ---- the orchestrator ---------------------------------------------------------------

function arg (name: string, fallback: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const N = Number(arg('--n', '1000'))
const RATES = arg('--rates', '20,100,200').split(',').map(Number).filter(x => x > 0)
const KINDS = arg('--kinds', 'mqtt-qos0,mqtt-qos1,stream,aedes-qos0,aedes-qos1').split(',')
const SECONDS = Number(arg('--seconds', '5'))
const PROF_DIR = process.argv.includes('--cpu-prof') ? arg('--cpu-prof', '') : undefined

function spawnChild (role: string): ChildProcess {
  return fork(self, [role], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

function waitReady (child: ChildProcess): Promise<Msg> {
  return new Promise((resolve, reject) => {
    child.once('message', (m: Msg) => m.type === 'ready' ? resolve(m) : reject(new Error('unexpected ' + m.type)))
    child.once('exit', code => reject(new Error(`child exited ${code}`)))
  })
}

interface Gateway { child: ChildProcess, port: number, mqttPort: number, stop (): Promise<void> }

/** The gateway as `npm start` runs it, its MQTT TCP listener on */
async function startGateway (brokers: string[]): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-mqtt-fanout-'))
  const file = join(dir, 'gateway.yaml')
  const port = await freePort()
  const mqttPort = await freePort()
  // JSON is YAML. Not defaults: the TCP port, and the per-address upgrade limit (600 a minute): every
  // `/v1/stream` socket of the load generator comes from one address
  writeFileSync(file, JSON.stringify({
    server: { host: '127.0.0.1', port },
    log: { level: 'warn' },
    kafka: { brokers },
    redis: { url: process.env.REDIS_URL },
    policy: { dir: POLICY_DIR, watch: false },
    auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'bench', algorithms: ['HS256'], secret: JWT_SECRET }] } },
    stream: { nodeId: 'bench-mqtt' },
    mqtt: { tcpPort: mqttPort },
    rateLimit: { http: { upgrade: { max: 100_000 } } }
  }, null, 2))
  // as `npm start` runs it, on jemalloc with the shipped V8 flag (docs/performance.md, "Memory"), as the fan-out bench runs it
  const flags = [...SHIPPED_V8_FLAGS, ...(PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`] : [])]
  const child = spawnShipped([...flags, GATEWAY_ENTRY, '--config', file], {
    env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let log = ''
  let stopping = false
  const keep = (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4000) }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  child.once('exit', code => { if (!stopping) { console.error(`gateway exited with ${code}: ${log}`); process.exit(1) } })
  process.once('exit', () => child.kill('SIGKILL'))
  const deadline = Date.now() + 60_000
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined)
    if (res?.status === 200) break
    if (Date.now() > deadline) throw new Error(`the gateway is not ready after 60 s: ${log}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  return {
    child,
    port,
    mqttPort,
    async stop () {
      stopping = true
      // SIGTERM: a graceful stop, which writes the CPU profile; SIGKILL if it takes more than 20 s
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      await exited
      clearTimeout(timer)
    }
  }
}

/** `count` records at `rate` a second, in ticks of 20 ms; `send` writes one tick's */
async function paced (count: number, rate: number, send: (from: number, k: number) => Promise<void> | void): Promise<void> {
  const perTick = Math.max(1, Math.round(rate / 50))
  let n = 0
  const started = Date.now()
  while (n < count) {
    const k = Math.min(perTick, count - n)
    await send(n, k)
    n += k
    const wait = started + (n / rate) * 1000 - Date.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
  }
}

/** A plain MQTT publisher to aedes: CONNECT, then PUBLISHes at `qos` (PUBACKs read and dropped) */
async function aedesPublisher (port: number): Promise<{ send (from: number, k: number, qos: 0 | 1): void, close (): void }> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'bench-publisher', keepalive: 0 }))
  await new Promise<void>((resolve, reject) => { socket.once('data', () => resolve()); socket.once('error', reject) })
  socket.on('data', () => {})
  let id = 0
  return {
    send (from, k, qos) {
      const out: Buffer[] = []
      for (let i = from; i < from + k; i++) {
        id = id % 65_535 + 1
        out.push(generate({ cmd: 'publish', topic: `sensors/d${i % DEVICES}/temp`, payload: record(i), qos, retain: false, dup: false, ...(qos ? { messageId: id } : {}) }))
      }
      socket.write(Buffer.concat(out))
    },
    close () { socket.destroy() }
  }
}

interface RunResult { kind: string, rate: number, expected: number, deliveries: number, seconds: number, lateMs: number, closed: number, serverCpuUs: number, loadgenCpuUs: number, p50: number, p99: number, samples: number }

/** kept up: everything delivered, the last within LATE_MS of the last record published, no connection closed */
const keptUp = (r: RunResult) => r.deliveries >= r.expected && r.lateMs <= LATE_MS && r.closed === 0

async function run (kind: string, rate: number, serverPid: number, loadgen: ChildProcess, send: (from: number, k: number) => Promise<void> | void): Promise<RunResult> {
  await ask(loadgen, { type: 'reset' }, 'reset')
  const records = Math.round(rate * (SECONDS + WARMUP_MS / 1000))
  const expected = N * records
  const cpu0 = procCpuUs(serverPid)
  const lg0 = (await ask(loadgen, { type: 'count' }, 'count')).cpu as NodeJS.CpuUsage
  const started = performance.now()
  const warm = new Promise(resolve => setTimeout(resolve, WARMUP_MS)).then(() => ask(loadgen, { type: 'forget' }, 'forgot'))
  await paced(records, rate, send)
  const published = Date.now()
  let last = -1
  let stalledSince = Date.now()
  for (;;) {
    const got = (await ask(loadgen, { type: 'count' }, 'count')).received as number
    if (got >= expected) break
    if (got !== last) { last = got; stalledSince = Date.now() }
    if (Date.now() - stalledSince > STALL_MS || Date.now() - published > DRAIN_MS) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const seconds = (performance.now() - started) / 1000
  const lateMs = Date.now() - published
  await warm
  const cpu1 = procCpuUs(serverPid)
  const stats = await ask(loadgen, { type: 'stats' }, 'stats')
  if (stats.errors) console.log(`  ${kind} at ${rate}/s: ${stats.errors} connections closed or failed, the last: ${stats.lastError}`)
  const lg1 = stats.cpu as NodeJS.CpuUsage
  return { kind, rate, expected, deliveries: stats.received as number, seconds, lateMs, closed: stats.errors as number, serverCpuUs: cpu1 - cpu0, loadgenCpuUs: (lg1.user - lg0.user) + (lg1.system - lg0.system), p50: stats.p50 as number, p99: stats.p99 as number, samples: stats.samples as number }
}

/** The top self-time functions of the newest .cpuprofile in `dir` */
function profileSummary (dir: string, top = 15): string[] {
  const file = readdirSync(dir).filter(f => f.endsWith('.cpuprofile')).sort().at(-1)
  if (!file) return [`no .cpuprofile in ${dir}`]
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: Array<{ id: number, hitCount?: number, callFrame: { functionName: string, url: string, lineNumber: number } }>, samples: number[] }
  const total = prof.samples.length
  const self = new Map<string, number>()
  for (const node of prof.nodes) {
    const f = node.callFrame
    const name = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|apps|plugins|packages)\//, '$1/')}:${f.lineNumber + 1}`
    self.set(name, (self.get(name) ?? 0) + (node.hitCount ?? 0))
  }
  return [`${join(dir, file)}: ${total} samples`, ...[...self].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, hits]) => `  ${(100 * hits / total).toFixed(1).padStart(5)} %  ${name}`)]
}

async function main (): Promise<void> {
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',')
  if (!process.env.REDIS_URL) throw new Error('REDIS_URL is required (the gateway\'s limits)')
  const began = Date.now()
  const kafka = new KafkaClient({ brokers, clientId: 'bench-mqtt-fanout' })
  await kafka.ensureTopics([{ topic: TOPIC, partitions: 1 }])
  const gateway = KINDS.some(k => !k.startsWith('aedes')) ? await startGateway(brokers) : undefined
  const aedes = KINDS.some(k => k.startsWith('aedes')) ? spawnChild('aedes') : undefined
  const aedesPort = aedes ? (await waitReady(aedes)).port as number : 0
  const loadgen = spawnChild('loadgen')
  await waitReady(loadgen)
  const f = (x: number, d = 0) => Number.isFinite(x) ? x.toFixed(d) : 'n/a'
  console.log(`mqtt fan-out: ${N} subscribers on ${FILTER} (MQTT 3.1.1 over TCP) / ${TOPIC} (/v1/stream), 256-byte JSON records, Kafka ${brokers.join(',')}, Redis ${process.env.REDIS_URL}, Node ${process.version}, ${new Date().toISOString()}`)
  console.log(`kinds: ${KINDS.join(', ')}; rates ${RATES.join(', ')} records/s to each subscriber, ${SECONDS} s each after a ${WARMUP_MS} ms warm-up`)
  const results: RunResult[] = []
  try {
    for (const kind of KINDS) {
      const qos: 0 | 1 = kind.endsWith('qos1') ? 1 : 0
      const isAedes = kind.startsWith('aedes')
      const connectStarted = Date.now()
      const c = await ask(loadgen, { type: 'connect', n: N, kind: kind === 'stream' ? 'stream' : 'mqtt', qos, port: isAedes ? aedesPort : gateway!.mqttPort, url: `ws://127.0.0.1:${gateway?.port}/v1/stream?topics=${TOPIC}` }, 'connected', 300_000)
      if (c.error) throw new Error(`${kind}: connect failed: ${c.error}`)
      console.log(`${kind}: ${N} subscribed in ${Date.now() - connectStarted} ms`)
      const publisher = isAedes ? await aedesPublisher(aedesPort) : undefined
      let behindAt: number | undefined
      for (const rate of RATES) {
        // a kind that did not keep up with a rate does not run the higher ones: it would only drain a backlog
        // at its maximum, which the rate it failed at has measured already, and the run would not stay bounded
        if (behindAt !== undefined) { console.log(`  ${kind} at ${rate} records/s: not run, behind at ${behindAt}`); continue }
        const send = publisher
          ? (from: number, k: number) => publisher.send(from, k, qos)
          : (from: number, k: number) => kafka.produceBatch(TOPIC, Array.from({ length: k }, (_v, i) => ({ key: `d${(from + i) % DEVICES}`, value: record(from + i) })))
        const r = await run(kind, rate, isAedes ? aedes!.pid! : gateway!.child.pid!, loadgen, send)
        results.push(r)
        if (!keptUp(r)) behindAt = rate
        console.log(`  ${kind} at ${rate} records/s (${rate * N} deliveries/s): ${r.deliveries}/${r.expected} delivered in ${f(r.seconds, 1)} s (the last ${r.lateMs} ms after the last published), not delivered ${r.expected - r.deliveries}, connections closed ${r.closed}${keptUp(r) ? '' : ' (BEHIND)'}; server CPU ${f(r.serverCpuUs / r.deliveries, 2)} µs per delivery; p50/p99 ${f(r.p50)}/${f(r.p99)} ms (${r.samples} samples); load generator ${f(r.loadgenCpuUs / r.deliveries, 2)} µs per delivery`)
      }
      publisher?.close()
      await ask(loadgen, { type: 'disconnect' }, 'disconnected')
      // the server closes what it held before the next kind connects
      await new Promise(resolve => setTimeout(resolve, 1000))
    }
  } finally {
    loadgen.kill()
    aedes?.kill()
    await gateway?.stop()
    await kafka.close()
  }
  const by = (kind: string, rate: number) => results.find(r => r.kind === kind && r.rate === rate)
  // a ratio only between two runs that kept up with the rate: a backlog's latency and CPU are another measure
  const ok = (kind: string, rate: number) => { const r = by(kind, rate); return r && keptUp(r) ? r : undefined }
  const us = (r: RunResult | undefined) => r ? r.serverCpuUs / r.deliveries : NaN
  console.log('\n| records/s (deliveries/s) | kind | delivered / expected | connections closed | kept up | server CPU µs per delivery | p50 / p99 ms | load generator µs per delivery |')
  console.log('|---|---|---:|---:|---|---:|---:|---:|')
  for (const rate of RATES) {
    for (const kind of KINDS) {
      const r = by(kind, rate)
      if (r) console.log(`| ${rate} (${(rate * N).toLocaleString('en')}) | ${kind} | ${r.deliveries.toLocaleString('en')} / ${r.expected.toLocaleString('en')} | ${r.closed} | ${keptUp(r) ? 'yes' : `no (last ${f(r.lateMs / 1000, 1)} s late)`} | ${f(us(r), 2)} | ${f(r.p50)} / ${f(r.p99)} | ${f(r.loadgenCpuUs / r.deliveries, 2)} |`)
    }
  }
  console.log('\n| records/s | CPU mqtt-qos0 / stream | CPU mqtt-qos1 / stream | CPU mqtt-qos0 / aedes-qos0 | CPU mqtt-qos1 / aedes-qos1 | p99 mqtt-qos0 / stream | p99 mqtt-qos0 / aedes-qos0 | p99 mqtt-qos1 / aedes-qos1 |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  const p99 = (kind: string, rate: number) => ok(kind, rate)?.p99 ?? NaN
  const cpu = (a: string, b: string, rate: number) => f(us(ok(a, rate)) / us(ok(b, rate)), 2)
  for (const rate of RATES) {
    console.log(`| ${rate} | ${cpu('mqtt-qos0', 'stream', rate)} | ${cpu('mqtt-qos1', 'stream', rate)} | ${cpu('mqtt-qos0', 'aedes-qos0', rate)} | ${cpu('mqtt-qos1', 'aedes-qos1', rate)} | ${f(p99('mqtt-qos0', rate) / p99('stream', rate), 2)} | ${f(p99('mqtt-qos0', rate) / p99('aedes-qos0', rate), 2)} | ${f(p99('mqtt-qos1', rate) / p99('aedes-qos1', rate), 2)} |`)
  }
  console.log('(n/a: one of the two did not keep up with the rate, or was not run)')
  console.log(`\ntotal ${f((Date.now() - began) / 1000, 0)} s`)
  if (PROF_DIR) for (const line of profileSummary(PROF_DIR)) console.log(line)
}

const role = process.argv[2]
if (role === 'aedes') aedesChild()
else if (role === 'loadgen') loadgenChild()
else main().then(() => process.exit(0), err => { console.error(err); process.exit(1) })
