// Publish benchmark: acked publishes per second over /v1/stream, and the
// gateway's CPU µs per publish, against a bare kafkajs producer (one record
// per request, and batches of 100) in the same run, on the same topic.
//
//   KAFKA_BROKERS=127.0.0.1:19092 REDIS_URL=redis://127.0.0.1:16379 bash deploy/local/node.sh bench/publish.ts
//
// The gateway is as shipped (buildApp: JWT auth, a policy, Redis-backed
// limits) and runs in this process; the WebSocket clients and the bare
// producer run in a child process, so that their work is not counted as the
// gateway's. A second gateway with rate limits off runs in the same process
// too, to show what the rate limits cost. Phases: the bare producer; the
// gateway with 1 socket × 64 in flight; 20 sockets paced together at 1 %,
// 10 % and 50 % of the bare producer's batched rate of the same run (ack
// latency p50 / p99 beside the CPU); 20 sockets × 64 in flight (max); and the
// limits-off gateway. Uses the Kafka and Redis it is given (loopback); starts
// none. Bounded: 12 phases of PHASE_MS (5 s), each then waits for its answers
// with a deadline of 30 s: about a minute, 9 at most. Not a test: it prints figures.
// The gateway's producer is @platformatic/kafka (packages/kafka/src/producer.ts);
// the bare reference stays kafkajs, as issue 14 defines the target. Per gateway
// phase it also prints the records each produce request carried on average.
import { fork, type ChildProcess } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { LeanPublisher } from './lean-publisher.ts'

const SECRET = 'publish-bench-hs256-secret-0123456789'
// 5 s per phase: long enough for thousands of round trips, short enough that the
// whole run (10 phases and a warm-up of 2) stays near a minute on a shared machine
const PHASE_MS = Number(process.env.PHASE_MS ?? 5000)
// the stream route's default maxInflightPublishes: a client pipelining as far as the gateway lets it
const WINDOW = 64
const SOCKETS = 20
// a phase that has not been answered this long after it stopped sending is stuck: fail, do not hang
const DRAIN_DEADLINE_MS = 30_000
// far above the load, so that the figures are the cost of checking, not of refusing
const PLAN = { connections: 1000, connectsPerMinute: 10_000, deliveredPerSecond: 1_000_000, publishedPerSecond: 1_000_000, bytesPerSecond: 1_000_000_000, dailyQuota: 1_000_000_000 }
// a small trade, as clients publish: about 70 bytes of JSON
const VALUE = '{"sym":"BTC-USD","px":97123.45,"qty":0.0123,"side":"buy"}'

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',')
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:16379'

function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'bench', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

// the clients' WebSocket: `lean` (bench/lean-publisher.ts, the default) or `ws` (the library, the bench before 2026-12-05)
const CLIENT = process.env.PUBLISH_CLIENT === 'ws' ? 'ws' : 'lean'

type Command =
  | { cmd: 'sockets', url: string, topic: string, sockets: number, rate?: number }
  | { cmd: 'bare', topic: string, batch: number }

/** `latency`: ms from send to ack, p50 and p99 (sockets only); `clientCpuUs`: the child process's CPU in the phase */
interface Outcome { acked: number, refused: number, ms: number, clientCpuUs?: number, latency?: { p50: number, p99: number } }

// paced phases: the 20 sockets together at these shares of the bare producer's batched rate in the same run
const PACED = [0.01, 0.1, 0.5]
// a paced phase sends every 5 ms what its rate owes since the last tick (at most WINDOW in flight per socket)
const TICK_MS = 5

// ---- the clients and the bare producer (child process) -----------------------------

async function clients (): Promise<void> {
  const { Kafka, Partitioners, logLevel } = await import('kafkajs')
  // the reference with the gateway's fix of kafkajs 2.2.4's idle loop (packages/kafka/src/kafkajs-idle.ts): without it
  // each of its connections ran a 1 ms timer for good (Node's TimeoutNegativeWarning at its first answer), a cost
  // the gateway's own client does not pay
  await import('@sluice/kafka/kafkajs-idle')
  const kafka = new Kafka({ brokers, clientId: 'bench-bare', logLevel: logLevel.NOTHING })
  // the gateway's producer settings (packages/kafka/src/kafka.ts before the batcher)
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const run = async (command: Command): Promise<Outcome> => {
    const cpu = process.cpuUsage()
    const outcome = await (command.cmd === 'bare' ? bare(command) : CLIENT === 'lean' ? leanSockets(command) : sockets(command))
    const used = process.cpuUsage(cpu)
    return { ...outcome, clientCpuUs: used.user + used.system }
  }

  const bare = async ({ topic, batch }: { topic: string, batch: number }): Promise<Outcome> => {
    const value = Buffer.from(VALUE)
    const messages = Array.from({ length: batch }, () => ({ value }))
    let acked = 0
    const started = Date.now()
    while (Date.now() - started < PHASE_MS) {
      await producer.send({ topic, acks: -1, messages })
      acked += batch
    }
    return { acked, refused: 0, ms: Date.now() - started }
  }

  const sockets = async ({ url, topic, sockets: count, rate }: { url: string, topic: string, sockets: number, rate?: number }): Promise<Outcome> => {
    const sub = `bench-${randomBytes(4).toString('hex')}`
    const open = (onMessage: (data: Buffer) => void): Promise<WebSocket> => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}/v1/stream`, ['sluice.v1'], { headers: { authorization: `Bearer ${jwt(sub)}` }, perMessageDeflate: false })
      ws.on('message', onMessage)
      ws.once('open', () => resolve(ws))
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)))
      ws.once('error', reject)
    })
    let acked = 0
    let refused = 0
    let stopAt = Infinity
    const finished: Array<Promise<void>> = []
    const starts: Array<() => void> = []
    const opened: WebSocket[] = []
    const nexts: Array<() => void> = []
    let totalSent = 0
    const latencies: number[] = []
    const ticks: NodeJS.Timeout[] = []
    for (let s = 0; s < count; s++) {
      let sent = 0
      let answered = 0
      let owed = 0
      const sentAt: number[] = []
      let done: () => void = () => {}
      finished.push(new Promise<void>(resolve => { done = resolve }))
      const send = () => {
        sentAt.push(performance.now())
        totalSent++
        ws.send(`{"op":"publish","id":"${sent++}","topic":"${topic}","value":${VALUE}}`)
      }
      // unpaced: a publish for each answer, WINDOW in flight; paced: what the rate owes, within the window
      const next = () => {
        if (Date.now() >= stopAt) {
          if (answered === sent) done()
          return
        }
        if (rate === undefined) send()
        else {
          const room = Math.min(Math.floor(owed), WINDOW - (sent - answered))
          for (let i = 0; i < room; i++) send()
          if (room > 0) owed -= room
        }
      }
      const ws = await open(data => {
        const text = data.toString()
        if (text.startsWith('{"op":"ack"')) {
          acked++
          const id = Number(JSON.parse(text).id)
          latencies.push(performance.now() - sentAt[id]!)
        } else if (refused++ === 0) process.stderr.write(`first refusal: ${text}\n`)
        answered++
        next()
      })
      opened.push(ws)
      nexts.push(next)
      if (rate === undefined) starts.push(() => { for (let i = 0; i < WINDOW; i++) next() })
      else {
        starts.push(() => {
          let last = performance.now()
          ticks.push(setInterval(() => {
            const now = performance.now()
            owed = Math.min(owed + (now - last) * rate / count / 1000, WINDOW)
            last = now
            next()
          }, TICK_MS))
        })
      }
    }
    const started = Date.now()
    stopAt = started + PHASE_MS
    for (const start of starts) start()
    // the ticks stop after the phase; then each socket looks once more whether it is done: a paced socket
    // answered in full before the end has no answer left to wake it, and its last tick may have come just
    // before stopAt (seen: a 1 % phase left unanswered past the deadline, every publish acked)
    setTimeout(() => {
      for (const tick of ticks) clearInterval(tick)
      for (const next of nexts) next()
    }, PHASE_MS + TICK_MS)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(finished),
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`publishes unanswered past the deadline: ${acked + refused} of ${totalSent} answered`)), PHASE_MS + DRAIN_DEADLINE_MS) })
    ]).finally(() => clearTimeout(timer))
    const ms = Date.now() - started
    for (const ws of opened) ws.terminate()
    latencies.sort((a, b) => a - b)
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN
    return { acked, refused, ms, latency: { p50: at(0.5), p99: at(0.99) } }
  }

  // the same phases with bench/lean-publisher.ts: one write per read's worth of owed frames, acks counted by scanning.
  // Acks come in frame order (the route answers a socket's publishes in the order read), so the k-th answer is the k-th frame sent
  const leanSockets = async ({ url, topic, sockets: count, rate }: { url: string, topic: string, sockets: number, rate?: number }): Promise<Outcome> => {
    const sub = `bench-${randomBytes(4).toString('hex')}`
    const headers = { authorization: `Bearer ${jwt(sub)}` }
    const body = (id: string) => `{"op":"publish","id":"${id}","topic":"${topic}","value":${VALUE}}`
    let acked = 0
    let refused = 0
    let stopAt = Infinity
    let failed: Error | undefined
    const finished: Array<Promise<void>> = []
    const starts: Array<() => void> = []
    const opened: LeanPublisher[] = []
    const nexts: Array<() => void> = []
    let totalSent = 0
    const latencies: number[] = []
    const ticks: NodeJS.Timeout[] = []
    for (let s = 0; s < count; s++) {
      let sent = 0
      let answered = 0
      let owed = 0
      // send times of the frames not yet answered, oldest first (a ring of WINDOW)
      const sentAt = new Float64Array(WINDOW)
      let done: () => void = () => {}
      let fail: (err: Error) => void = () => {}
      finished.push(new Promise<void>((resolve, reject) => { done = resolve; fail = reject }))
      const send = (n: number) => {
        if (n <= 0) return
        const now = performance.now()
        for (let i = 0; i < n; i++) sentAt[(sent + i) % WINDOW] = now
        sent += n
        totalSent += n
        publisher.publish(n)
      }
      const next = () => {
        if (Date.now() >= stopAt) {
          if (answered === sent) done()
          return
        }
        const room = WINDOW - (sent - answered)
        if (rate === undefined) send(room)
        else {
          const n = Math.min(Math.floor(owed), room)
          if (n > 0) {
            send(n)
            owed -= n
          }
        }
      }
      const publisher: LeanPublisher = new LeanPublisher(`${url}/v1/stream`, 'sluice.v1', headers, body, {
        onAnswers (n, errors, first) {
          const now = performance.now()
          for (let i = 0; i < n + errors; i++) latencies.push(now - sentAt[(answered + i) % WINDOW]!)
          acked += n
          if (errors > 0 && refused === 0) process.stderr.write(`first refusal: ${first}\n`)
          refused += errors
          answered += n + errors
          next()
        },
        onError (err) {
          failed ??= err
          fail(err)
        }
      })
      await Promise.race([publisher.opened(), finished.at(-1)])
      opened.push(publisher)
      nexts.push(next)
      if (rate === undefined) starts.push(() => next())
      else {
        starts.push(() => {
          let last = performance.now()
          ticks.push(setInterval(() => {
            const now = performance.now()
            owed = Math.min(owed + (now - last) * rate / count / 1000, WINDOW)
            last = now
            next()
          }, TICK_MS))
        })
      }
    }
    const started = Date.now()
    stopAt = started + PHASE_MS
    for (const start of starts) start()
    // the ticks stop after the phase; then each socket looks once more whether it is done: a paced socket
    // answered in full before the end has no answer left to wake it, and its last tick may have come just
    // before stopAt (seen: a 1 % phase left unanswered past the deadline, every publish acked)
    setTimeout(() => {
      for (const tick of ticks) clearInterval(tick)
      for (const next of nexts) next()
    }, PHASE_MS + TICK_MS)
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        Promise.all(finished),
        new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`publishes unanswered past the deadline: ${acked + refused} of ${totalSent} answered`)), PHASE_MS + DRAIN_DEADLINE_MS) })
      ])
    } finally {
      clearTimeout(timer)
      for (const tick of ticks) clearInterval(tick)
    }
    const ms = Date.now() - started
    for (const publisher of opened) publisher.terminate()
    if (failed) throw failed
    latencies.sort((a, b) => a - b)
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN
    return { acked, refused, ms, latency: { p50: at(0.5), p99: at(0.99) } }
  }

  process.on('message', (command: Command) => {
    run(command).then(outcome => process.send!({ outcome }), err => process.send!({ error: String((err as Error).stack) }))
  })
  process.send!({ started: true })
}

// ---- the gateways and the measurements (this process) ------------------------------

async function main (): Promise<void> {
  const { buildApp } = await import('@sluice/gateway')
  const { loadGatewayConfig } = await import('@sluice/gateway/config')

  let child: ChildProcess | undefined
  const apps: Array<{ close (): Promise<unknown> }> = []
  const cleanup = async () => {
    child?.kill()
    await Promise.allSettled(apps.map(a => a.close()))
  }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })
  try {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-publish-'))
    writeFileSync(join(dir, 'policy.yaml'), JSON.stringify({
      version: 1,
      plans: { bench: { limits: PLAN } },
      products: { bench: { plans: ['bench'], topics: [{ pattern: 'bench.*' }] } },
      rules: [{ name: 'all', product: 'bench', plan: 'bench', subscribe: ['bench.*'], publish: ['bench.*'] }]
    }))
    const gatewayFor = async (enabled: boolean) => {
      const app = await buildApp(loadGatewayConfig({
        base: {
          kafka: { brokers },
          redis: { url: redisUrl },
          log: { level: 'warn' },
          policy: { dir, watch: false },
          auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'bench', algorithms: ['HS256'], secret: SECRET }] } },
          rateLimit: { enabled, http: { upgrade: { max: 100_000 } } }
        }
      }))
      apps.push(app)
      const url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace('http', 'ws')
      return { app, url }
    }
    const on = await gatewayFor(true)
    const off = await gatewayFor(false)
    const topic = `bench.publish-${randomBytes(4).toString('hex')}`
    await on.app.kafka.ensureTopics([{ topic, partitions: 3 }])

    child = fork(fileURLToPath(import.meta.url), ['--clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, KAFKA_BROKERS: brokers.join(',') } })
    const replies: Array<Record<string, unknown>> = []
    let wake: () => void = () => {}
    child.on('message', m => { replies.push(m as Record<string, unknown>); wake() })
    const reply = async (): Promise<Record<string, unknown>> => {
      const deadline = Date.now() + PHASE_MS + DRAIN_DEADLINE_MS + 10_000
      for (;;) {
        const r = replies.shift()
        if (r) return r
        if (Date.now() > deadline) throw new Error('the child did not answer in time')
        await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 100) })
      }
    }
    await reply()

    // produce requests of both gateways' shared producers: the records each carried on average, per phase
    const sent = () => {
      const a = on.app.kafka.publishRequests
      const b = off.app.kafka.publishRequests
      return { requests: a.requests + b.requests, records: a.records + b.records }
    }
    const phase = async (command: Command): Promise<Outcome & { cpuUs: number, elu: number, perRequest: number }> => {
      const sentBefore = sent()
      const cpuBefore = process.cpuUsage()
      const eluBefore = performance.eventLoopUtilization()
      child!.send(command)
      const answer = await reply()
      const cpu = process.cpuUsage(cpuBefore)
      const elu = performance.eventLoopUtilization(eluBefore).utilization
      const sentAfter = sent()
      const perRequest = (sentAfter.records - sentBefore.records) / Math.max(1, sentAfter.requests - sentBefore.requests)
      if (answer.error) throw new Error(answer.error as string)
      const outcome = answer.outcome as Outcome
      if (outcome.refused > 0) throw new Error(`${outcome.refused} publishes refused: the plan must be above the load`)
      return { ...outcome, cpuUs: cpu.user + cpu.system, elu, perRequest }
    }

    // warm-up: JIT, the producer's first metadata, the limiter's script load
    await phase({ cmd: 'sockets', url: on.url, topic, sockets: 2 })
    await phase({ cmd: 'sockets', url: off.url, topic, sockets: 2 })
    const rows: Array<{ name: string, rate: number, clientCpu: number, cpu?: number, elu?: number, perRequest?: number, latency?: Outcome['latency'] }> = []
    const record = (name: string, r: Outcome & { cpuUs: number, elu: number, perRequest: number }, gateway: boolean) => {
      rows.push({ name, rate: r.acked / r.ms * 1000, clientCpu: r.clientCpuUs! / r.acked, latency: r.latency, ...(gateway ? { cpu: r.cpuUs / r.acked, elu: r.elu, perRequest: r.perRequest } : {}) })
      return rows.at(-1)!
    }
    const single = record('bare kafkajs, 1 record per request', await phase({ cmd: 'bare', topic, batch: 1 }), false).rate
    const batched = record('bare kafkajs, batches of 100', await phase({ cmd: 'bare', topic, batch: 100 }), false).rate
    record(`gateway, 1 socket × ${WINDOW} in flight`, await phase({ cmd: 'sockets', url: on.url, topic, sockets: 1 }), true)
    // paced: the 20 sockets together at a share of what the bare producer sent in batches, this run
    for (const share of PACED) {
      const rate = Math.round(batched * share)
      record(`gateway, ${SOCKETS} sockets at ${share * 100} % (${rate}/s)`, await phase({ cmd: 'sockets', url: on.url, topic, sockets: SOCKETS, rate }), true)
    }
    const max = record(`gateway, ${SOCKETS} sockets × ${WINDOW} in flight (max)`, await phase({ cmd: 'sockets', url: on.url, topic, sockets: SOCKETS }), true)
    // the bare producer again right after the maximum: others' load on a shared machine moves between phases,
    // and the target's ratio is taken against the mean of the bare runs on either side of it
    const batchedAfter = record('bare kafkajs, batches of 100 (again)', await phase({ cmd: 'bare', topic, batch: 100 }), false).rate
    record(`gateway limits off, 1 socket × ${WINDOW}`, await phase({ cmd: 'sockets', url: off.url, topic, sockets: 1 }), true)
    const off20 = record(`gateway limits off, ${SOCKETS} sockets × ${WINDOW}`, await phase({ cmd: 'sockets', url: off.url, topic, sockets: SOCKETS }), true)

    const lines = [`acked publishes/s, ${PHASE_MS} ms per phase, topic of 3 partitions, ${VALUE.length}-byte JSON values, ${CLIENT} WebSocket clients (2 shared cores: figures move with others' load)`]
    for (const row of rows) {
      const latency = row.latency ? `  ack p50 ${row.latency.p50.toFixed(1)} / p99 ${row.latency.p99.toFixed(1)} ms` : ''
      lines.push(`  ${row.name.padEnd(44)} ${row.rate.toFixed(0).padStart(8)}/s  ×${(row.rate / single).toFixed(2)} of bare 1-at-a-time  ×${(row.rate / batched).toFixed(3)} of bare batches${row.cpu === undefined ? '' : `  gateway CPU ${row.cpu.toFixed(1)} µs/publish, event loop ${(row.elu! * 100).toFixed(0)} % busy, ${row.perRequest!.toFixed(0)} records/request`}  client process CPU ${row.clientCpu.toFixed(1)} µs/${row.cpu === undefined ? 'record' : 'publish'}${latency}`)
    }
    lines.push(`  limits on/off CPU per publish, ${SOCKETS} sockets: ${max.cpu!.toFixed(1)} / ${off20.cpu!.toFixed(1)} µs (the limiter's share ${((1 - off20.cpu! / max.cpu!) * 100).toFixed(0)} %)`)
    const around = (batched + batchedAfter) / 2
    lines.push(`  target (issue 14): ${SOCKETS} sockets × ${WINDOW} ≥ 0.5 of bare batches: ×${(max.rate / around).toFixed(3)} (of the mean of the bare runs before and after, ${around.toFixed(0)}/s); ≤ 20 µs of gateway CPU per publish: ${max.cpu!.toFixed(1)} µs`)
    process.stdout.write(lines.join('\n') + '\n')
  } finally {
    await cleanup()
  }
}

if (process.argv.includes('--clients')) {
  clients().catch(err => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1) })
} else {
  main().then(() => process.exit(0), err => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1) })
}
