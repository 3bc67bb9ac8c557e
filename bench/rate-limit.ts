// Rate-limit benchmark: what the limiter costs per delivered and per
// published message, against the same gateway with limits off, in the same
// run. Figures: Redis calls (round trips) and Redis commands (the script's own
// commands included) per message, from Redis' INFO commandstats before and
// after each round; and the gateway process's CPU µs per message
// (process.cpuUsage), limits on vs off, as a ratio.
//
//   bash deploy/local/node.sh bench/rate-limit.ts
//
// Starts its own Redis and Kafka. The gateway runs in this process; the
// clients and the producer run in a child process, so that their work is not
// counted as the gateway's. Rounds alternate off / on, and medians are
// reported. Bounded: fixed counts per round, a deadline on every phase. Not a
// test: it prints figures.
import { fork, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'

const SECRET = 'rate-limit-bench-hs256-secret-0123456789'
// delivery: 4 subjects × 5 sockets on one topic, 10 000 records at 2 000/s:
// 10 000 deliveries/s per subject, 200 000 per round
const SUBJECTS = 4
const SOCKETS_PER_SUBJECT = 5
const RECORDS = 10_000
const RECORD_RATE = 2000
// publish: 4 sockets (one per subject), 2 500 publishes each, 32 in flight per socket
const PUBLISHES_PER_SOCKET = 2500
const PUBLISH_WINDOW = 32
const ROUNDS = 5
// no phase may take longer than this: a stuck run fails instead of hanging
const PHASE_DEADLINE_MS = 120_000
// The plan: above the load, so that both runs deliver the same messages and
// the figures are the cost of checking, not of refusing. Per subject:
// 20 000 delivered/s against 10 000/s of load; a lease then holds 10 000.
const PLAN = { connections: 100, connectsPerMinute: 1000, deliveredPerSecond: 20_000, publishedPerSecond: 100_000, bytesPerSecond: 50_000_000, dailyQuota: 1_000_000_000 }

function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'bench', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

type Command =
  | { cmd: 'deliver', url: string, brokers: string[], topic: string }
  | { cmd: 'publish', url: string, topic: string }
  | { cmd: 'go' }

// ---- the clients and the producer (child process) ----------------------------------

async function clients (): Promise<void> {
  const { KafkaClient } = await import('@sluice/kafka')
  const send = (message: unknown) => process.send!(message)
  // `onMessage` is attached before the socket opens: a frame in the same packet as the 101 is emitted before open() resolves
  const open = (url: string, sub: string, onMessage: (data: Buffer) => void): Promise<WebSocket> => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['sluice.v1'], { headers: { authorization: `Bearer ${jwt(sub)}` }, perMessageDeflate: false })
    ws.on('message', onMessage)
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)))
    ws.once('error', reject)
  })
  let go: () => void = () => {}
  process.on('message', async (command: Command) => {
    if (command.cmd === 'go') return go()
    if (command.cmd === 'deliver') {
      const sockets: WebSocket[] = []
      const counts: number[] = []
      for (let s = 0; s < SUBJECTS; s++) {
        for (let i = 0; i < SOCKETS_PER_SUBJECT; i++) {
          const n = counts.length
          counts.push(0)
          // counting frames, not parsing them: the clients' cost stays small
          sockets.push(await open(`${command.url}/v1/stream?topics=${command.topic}`, `subject-${s}`, () => { counts[n]!++ }))
        }
      }
      // every socket heard `subscribed` (one frame each) before records flow
      while (counts.some(c => c < 1)) await new Promise(resolve => setTimeout(resolve, 10))
      const kafka = new KafkaClient({ brokers: command.brokers, clientId: 'bench-producer' })
      await new Promise<void>(resolve => { go = resolve; send({ ready: true }) })
      const started = Date.now()
      const value = Buffer.from(JSON.stringify({ sym: 'BTC-USD', px: 97_123.45, qty: 0.0123, side: 'buy' }))
      // paced in 50 ms slices
      for (let sent = 0; sent < RECORDS;) {
        const due = Math.min(RECORDS, Math.floor((Date.now() - started) / 1000 * RECORD_RATE) + 100)
        if (due > sent) {
          await kafka.produceBatch(command.topic, Array.from({ length: due - sent }, () => ({ key: null, value })))
          sent = due
        }
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      const deadline = Date.now() + PHASE_DEADLINE_MS
      while (counts.some(c => c < RECORDS + 1) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      send({ done: true, delivered: counts.reduce((a, b) => a + b - 1, 0) })
      for (const ws of sockets) ws.terminate()
      await kafka.close()
      return
    }
    let acked = 0
    let refused = 0
    const runs: Array<() => Promise<void>> = []
    const sockets = await Promise.all(Array.from({ length: SUBJECTS }, async (_, s) => {
      let sent = 0
      let answered = 0
      let finished: () => void = () => {}
      const next = () => {
        if (sent < PUBLISHES_PER_SOCKET) ws.send(`{"op":"publish","id":"${sent++}","topic":"${command.topic}","value":1}`)
      }
      const ws: WebSocket = await open(`${command.url}/v1/stream`, `subject-${s}`, data => {
        if (data.toString().startsWith('{"op":"ack"')) acked++
        else refused++
        if (++answered === PUBLISHES_PER_SOCKET) finished()
        else next()
      })
      runs.push(() => new Promise<void>(resolve => {
        finished = resolve
        for (let i = 0; i < PUBLISH_WINDOW; i++) next()
      }))
      return ws
    }))
    await new Promise<void>(resolve => { go = resolve; send({ ready: true }) })
    await Promise.all(runs.map(run => run()))
    send({ done: true, acked, refused })
    for (const ws of sockets) ws.terminate()
  })
  send({ started: true })
}

// ---- the gateway and the measurements (this process) -------------------------------

interface Figures { messages: number, cpuUs: number, calls: number, commands: number, ms: number }

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function main (): Promise<void> {
  const { KafkaBroker, RedisServer } = await import('@sluice/stack')
  const { buildApp } = await import('@sluice/gateway')
  const { loadGatewayConfig } = await import('@sluice/gateway/config')
  const { Redis } = await import('ioredis')

  const broker = new KafkaBroker()
  const redisServer = new RedisServer()
  let child: ChildProcess | undefined
  const apps: Array<{ close (): Promise<unknown> }> = []
  const cleanup = async () => {
    child?.kill()
    await Promise.allSettled(apps.map(a => a.close()))
    await Promise.allSettled([broker.destroy(), redisServer.stop()])
  }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })
  try {
    await Promise.all([broker.start(), redisServer.start()])
    const stats = new Redis(redisServer.url)
    const commandstats = async (): Promise<{ calls: number, commands: number }> => {
      const info = await stats.info('commandstats')
      let calls = 0
      let commands = 0
      for (const m of info.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)) {
        const [name, n] = [m[1]!, Number(m[2])]
        // the benchmark's own INFO calls are not the gateway's
        if (name === 'info') continue
        commands += n
        if (name !== 'time' && name !== 'hmget' && name !== 'hset' && name !== 'pexpire' && name !== 'hgetall' && name !== 'hget' && name !== 'hdel' && name !== 'pttl') calls += n
      }
      return { calls, commands }
    }

    const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-policy-'))
    writeFileSync(join(dir, 'policy.yaml'), JSON.stringify({
      version: 1,
      plans: { bench: { limits: PLAN } },
      products: { bench: { plans: ['bench'], topics: [{ pattern: 'bench.*', slowClient: 'lagging' }] } },
      rules: [{ name: 'all', product: 'bench', plan: 'bench', subscribe: ['bench.*'], publish: ['bench.*'] }]
    }))
    const gatewayFor = async (enabled: boolean) => {
      const app = await buildApp(loadGatewayConfig({
        base: {
          kafka: { brokers: broker.brokers },
          redis: { url: redisServer.url },
          log: { level: 'warn' },
          policy: { dir, watch: false },
          auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'bench', algorithms: ['HS256'], secret: SECRET }] } },
          // the send queue holds a round's burst: no drops in either run
          stream: { maxQueueBytes: 8 * 1024 * 1024 },
          rateLimit: { enabled, http: { upgrade: { max: 100_000 } } }
        }
      }))
      apps.push(app)
      const url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace('http', 'ws')
      return { app, url }
    }
    const off = await gatewayFor(false)
    const on = await gatewayFor(true)

    child = fork(fileURLToPath(import.meta.url), ['--clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const replies: Array<Record<string, unknown>> = []
    let wake: () => void = () => {}
    child.on('message', m => { replies.push(m as Record<string, unknown>); wake() })
    const reply = async (key: string): Promise<Record<string, unknown>> => {
      const deadline = Date.now() + PHASE_DEADLINE_MS
      for (;;) {
        const i = replies.findIndex(r => key in r)
        if (i >= 0) return replies.splice(i, 1)[0]!
        if (Date.now() > deadline) throw new Error(`the clients did not answer "${key}" within ${PHASE_DEADLINE_MS} ms`)
        await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 100) })
      }
    }
    await reply('started')

    const round = async (kind: 'deliver' | 'publish', gw: { url: string }, n: number): Promise<Figures> => {
      const topic = `bench.${kind}-${n}-${Math.random().toString(36).slice(2, 8)}`
      await on.app.kafka.ensureTopics([{ topic }])
      child!.send({ cmd: kind, url: gw.url, brokers: broker.brokers, topic })
      await reply('ready')
      const redisBefore = await commandstats()
      const cpuBefore = process.cpuUsage()
      const started = Date.now()
      child!.send({ cmd: 'go' })
      const done = await reply('done')
      const cpu = process.cpuUsage(cpuBefore)
      const redisAfter = await commandstats()
      const messages = kind === 'deliver' ? done.delivered as number : (done.acked as number) + (done.refused as number)
      if (kind === 'deliver' && messages !== RECORDS * SUBJECTS * SOCKETS_PER_SUBJECT) throw new Error(`round delivered ${messages} of ${RECORDS * SUBJECTS * SOCKETS_PER_SUBJECT}`)
      if (kind === 'publish' && (done.refused as number) > 0) throw new Error(`${done.refused} publishes refused: the plan must be above the load`)
      // the stats connection's own INFO is excluded; its cmdstat line updates after the call
      return { messages, cpuUs: cpu.user + cpu.system, calls: redisAfter.calls - redisBefore.calls, commands: redisAfter.commands - redisBefore.commands, ms: Date.now() - started }
    }

    const report = (kind: 'deliver' | 'publish', offRuns: Figures[], onRuns: Figures[]) => {
      const per = (runs: Figures[], f: (r: Figures) => number) => median(runs.map(r => f(r) / r.messages))
      const cpuOff = per(offRuns, r => r.cpuUs)
      const cpuOn = per(onRuns, r => r.cpuUs)
      const label = kind === 'deliver' ? 'delivered' : 'published'
      process.stdout.write([
        `${label} messages per round: ${onRuns[0]!.messages} (rounds: ${ROUNDS} off, ${ROUNDS} on, interleaved; medians)`,
        `  Redis calls per ${label} message:    limits on ${per(onRuns, r => r.calls).toFixed(5)}   limits off ${per(offRuns, r => r.calls).toFixed(5)}`,
        `  Redis commands per ${label} message (script's own included): on ${per(onRuns, r => r.commands).toFixed(5)}   off ${per(offRuns, r => r.commands).toFixed(5)}`,
        `  gateway CPU µs per ${label} message: limits on ${cpuOn.toFixed(2)}   limits off ${cpuOff.toFixed(2)}   ratio on/off ${(cpuOn / cpuOff).toFixed(3)} (${((cpuOn / cpuOff - 1) * 100).toFixed(1)} %)`,
        `  round time (ms): on ${onRuns.map(r => r.ms).join(', ')}   off ${offRuns.map(r => r.ms).join(', ')}`,
        ''
      ].join('\n'))
    }

    for (const kind of ['deliver', 'publish'] as const) {
      // one warm-up round each way: JIT, consumer groups, the script's first load
      await round(kind, off, -1)
      await round(kind, on, -1)
      const offRuns: Figures[] = []
      const onRuns: Figures[] = []
      for (let i = 0; i < ROUNDS; i++) {
        offRuns.push(await round(kind, off, i))
        onRuns.push(await round(kind, on, i))
      }
      report(kind, offRuns, onRuns)
    }
    stats.disconnect()
  } finally {
    await cleanup()
  }
}

if (process.argv.includes('--clients')) {
  clients().catch(err => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1) })
} else {
  main().then(() => process.exit(0), err => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1) })
}
