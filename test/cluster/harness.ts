// Test support for the cluster suites (not a test file): N real gateway
// processes (apps/gateway/src/server.ts, configured by a YAML file each) on
// the run's Kafka and Redis, behind the local layer-4 balancer; clients that
// reconnect through the balancer and resume with their cursor; a publisher
// that sends again, on its next connection, what was never acked.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { Balancer } from '@sluice/stack/balancer'
import { freePort } from '@sluice/stack'
import { ADMIN_TOKEN, bearer, JWT_SECRET, prefix } from '../harness/rate-limit.ts'
import { Client, type Frame } from '../harness/client.ts'
import { eventually, kafkaBrokers, redisUrl } from '../helpers.ts'

const ENTRY = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')

export interface GatewayNode {
  index: number
  id: string
  port: number
  child: ChildProcess
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<number | null>
  log (): string
  /** the subjects of the sessions open on this node, asked of its own admin API */
  subjects (): Promise<string[]>
}

export interface ClusterOptions {
  policyDir: string
  nodes?: number
  drainMs?: number
  shutdownTimeoutMs?: number
  /** the balancer's health-check period: short, so that a draining node leaves the rotation quickly */
  healthIntervalMs?: number
}

export interface Cluster {
  nodes: GatewayNode[]
  balancer: Balancer
  /** ws:// URL of /v1/stream through the balancer */
  streamUrl: string
  /** subject -> index of the node its (one) session is on */
  placement (): Promise<Map<string, number>>
}

function startNode (t: Test, index: number, port: number, options: ClusterOptions, rateLimitPrefix: string): GatewayNode {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-'))
  const file = join(dir, 'gateway.yaml')
  const id = `node-${index}`
  // JSON is YAML: one file per node, as an operator would write it
  writeFileSync(file, JSON.stringify({
    server: { host: '127.0.0.1', port, drainMs: options.drainMs ?? 2000, shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000 },
    log: { level: 'info' },
    kafka: { brokers: kafkaBrokers() },
    redis: { url: redisUrl() },
    policy: { dir: options.policyDir, watch: false },
    auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'rl', algorithms: ['HS256'], secret: JWT_SECRET }] } },
    admin: { token: ADMIN_TOKEN },
    stream: { nodeId: id, keepaliveMs: 5000 },
    rateLimit: { prefix: rateLimitPrefix }
  }, null, 2))
  const child = spawn(process.execPath, [ENTRY, '--config', file], {
    env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let log = ''
  child.stdout.on('data', chunk => { log += chunk })
  child.stderr.on('data', chunk => { log += chunk })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    index,
    id,
    port,
    child,
    exited,
    log: () => log,
    subjects: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/admin/sessions?limit=1000`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
      const body = await res.json() as { sessions?: Array<{ subject: string }> }
      if (!body.sessions) throw new Error(`${id} /admin/sessions: ${res.status} ${JSON.stringify(body)}`)
      return body.sessions.map(s => s.subject)
    }
  }
}

/** Starts the nodes in parallel (each takes seconds to boot on 2 cores) and the balancer once all are ready. */
export async function startCluster (t: Test, options: ClusterOptions): Promise<Cluster> {
  const count = options.nodes ?? 3
  const shared = prefix()
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()))
  const nodes = ports.map((port, i) => startNode(t, i, port, options, shared))
  t.teardown(() => {
    if (t.passing()) return
    // what the nodes said above info level, to read beside the failure
    for (const node of nodes) {
      const lines = node.log().split('\n').filter(line => line.length > 0 && !line.includes('"level":30'))
      t.comment(`${node.id} (port ${node.port}), its last warnings and errors:\n${lines.slice(-20).join('\n')}`)
    }
  })
  await Promise.all(nodes.map(node => eventually(async () => {
    if (node.child.exitCode !== null) throw new Error(`${node.id} exited with ${node.child.exitCode}: ${node.log().slice(-2000)}`)
    const res = await fetch(`http://127.0.0.1:${node.port}/readyz`).catch(() => undefined)
    return res?.status === 200
  }, 40_000, `${node.id} is ready`)))
  const balancer = new Balancer({ backends: nodes.map(n => ({ host: '127.0.0.1', port: n.port })), healthIntervalMs: options.healthIntervalMs ?? 200 })
  const { port } = await balancer.start()
  t.teardown(() => balancer.stop())
  return {
    nodes,
    balancer,
    streamUrl: `ws://127.0.0.1:${port}/v1/stream`,
    placement: async () => {
      const where = new Map<string, number>()
      for (const node of nodes) {
        if (node.child.exitCode !== null || node.child.signalCode !== null) continue
        for (const subject of await node.subjects()) where.set(subject, node.index)
      }
      return where
    }
  }
}

/** For a failure message: who has how many of `expected`, what is missing, and each live node's hub counters. */
/** A new topic `rl.<name>-<random>` of 3 partitions (one per node's share), and a Kafka client closed at teardown. */
export async function clusterTopic (t: Test, name: string): Promise<{ topic: string, kafka: KafkaClient }> {
  const topic = `rl.${name}-${randomBytes(4).toString('hex')}`
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: `cluster-${name}-suite` })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  return { topic, kafka }
}

/** `count` subscribers sub-0, sub-1, ... to `topic`, each open (subscribed) before the next connects. */
export async function openSubscribers (t: Test, cluster: Cluster, topic: string, count: number): Promise<Subscriber[]> {
  const subscribers: Subscriber[] = []
  for (let i = 0; i < count; i++) {
    const s = new Subscriber(t, cluster, `sub-${i}`, topic)
    await s.open()
    subscribers.push(s)
  }
  return subscribers
}

export async function deliveryReport (cluster: Cluster, subscribers: Subscriber[], expected: Set<string>): Promise<string> {
  const where = await cluster.placement().catch(() => new Map<string, number>())
  // where each record is in Kafka, as any subscriber saw it
  const position = new Map<string, string>()
  for (const s of subscribers) {
    const values = s.values()
    s.messages.forEach((f, i) => position.set(values[i]!, `${f.partition}:${f.offset}`))
  }
  const lines = subscribers.map(s => {
    const got = new Set(s.values())
    const missing = [...expected].filter(v => !got.has(v)).map(v => `${v}@${position.get(v) ?? '?'}`)
    return `${s.subject} on node-${where.get(s.subject)} (${s.connections} connections, closes ${s.closes.join(',') || '-'}, ` +
      `${s.laggings} lagging, cursors ${s.cursors.join(' ') || '-'}): ` +
      `${s.messages.length} deliveries, ${got.size} distinct; missing ${missing.length}: ${missing.slice(0, 8).join(' ')}`
  })
  for (const node of cluster.nodes) {
    if (node.child.exitCode !== null || node.child.signalCode !== null) continue
    const metrics = await fetch(`http://127.0.0.1:${node.port}/metrics`).then(res => res.text(), () => '')
    lines.push(`${node.id}: ` + metrics.split('\n').filter(l => /^sluice_(hub|sessions)/.test(l)).join(', '))
  }
  return lines.join('\n')
}

/** The cursor that resumes after every message in `frames` (docs/design.md: the next offset per partition). */
export function cursorOf (topic: string, frames: Frame[]): string | undefined {
  const next = new Map<number, bigint>()
  for (const f of frames) {
    const offset = BigInt(f.offset as string) + 1n
    if (offset > (next.get(f.partition as number) ?? 0n)) next.set(f.partition as number, offset)
  }
  if (next.size === 0) return undefined
  return `${topic}@` + [...next].sort((a, b) => a[0] - b[0]).map(([p, o]) => `${p}:${o}`).join(',')
}

// a refused connect (a draining node, a dead one) is tried again after the server's Retry-After, or this
const RETRY_MS = 100
// bounds a reconnect loop: far more than a drain or a dead node's health check takes
const MAX_ATTEMPTS = 200

/** Opens a client through the balancer, trying again while it is refused; resolves with the open one and the refusals seen. */
async function connect (t: Test, url: string, subject: string, refusals: number[], bodies: unknown[] = []): Promise<Client> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const client = new Client(url, { headers: bearer(subject) })
    t.teardown(() => client.terminate())
    const outcome = await client.outcome
    if (outcome === 'open') return client
    refusals.push(outcome.status)
    bodies.push(outcome.body)
    const retryAfter = Number(outcome.headers['retry-after'])
    await new Promise(resolve => setTimeout(resolve, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : RETRY_MS))
  }
  throw new Error(`${subject} could not connect in ${MAX_ATTEMPTS} attempts; refusals: ${refusals.join(',')}`)
}

/**
 * A subscriber that, when its socket closes with 1001 (going away) or 1006
 * (the node died), reconnects through the balancer with the cursor of what it
 * received, as a client following docs/design.md does.
 */
export class Subscriber {
  readonly subject: string
  readonly messages: Frame[] = []
  readonly closes: number[] = []
  readonly refusals: number[] = []
  readonly refusalBodies: unknown[] = []
  connections = 0
  /** `lagging` notices received (each answered with a subscribe from its resume cursor) */
  laggings = 0
  readonly laggingFrames: Frame[] = []
  /** the cursor of each reconnect */
  readonly cursors: string[] = []
  #client: Client | undefined
  #stopped = false
  #reconnecting: Promise<void> | undefined
  readonly #t: Test
  readonly #url: string
  readonly #topic: string

  constructor (t: Test, cluster: Cluster, subject: string, topic: string) {
    this.#t = t
    this.#url = cluster.streamUrl
    this.subject = subject
    this.#topic = topic
  }

  /** Connects (live from now) and resolves once subscribed. */
  async open (): Promise<void> {
    await this.#connect('latest')
  }

  get reconnecting (): Promise<void> | undefined {
    return this.#reconnecting
  }

  async #connect (from: string): Promise<void> {
    const client = await connect(this.#t, `${this.#url}?topics=${this.#topic}&from=${encodeURIComponent(from)}`, this.subject, this.refusals, this.refusalBodies)
    this.#client = client
    this.connections++
    const onFrame = (frame: Frame) => {
      if (frame.op === 'message') this.messages.push(frame)
      // the socket fell behind (its send queue filled; a loaded test machine does that): subscribe again from where it stopped
      if (frame.op === 'lagging') {
        this.laggings++
        this.laggingFrames.push(frame)
        client.send({ op: 'subscribe', id: `lagging-${this.laggings}`, topics: [this.#topic], from: frame.resume })
      }
    }
    // Frames that came in the same read as the upgrade's answer were emitted before connect()
    // resolved (ws emits them on the next tick, ahead of promise continuations): the Client kept
    // them. A resume replayed from a node's window comes that fast on a loaded machine.
    for (const frame of client.frames) onFrame(frame)
    client.ws.on('message', data => { onFrame(JSON.parse(data.toString()) as Frame) })
    client.closed.then(({ code }) => {
      this.closes.push(code)
      if (this.#stopped || (code !== 1001 && code !== 1006)) return
      // nothing received yet: the topic is the suite's own, so its beginning is where this subscriber started
      const cursor = cursorOf(this.#topic, this.messages) ?? 'earliest'
      this.cursors.push(cursor)
      this.#reconnecting = this.#connect(cursor)
    })
    await client.next(f => f.op === 'subscribed')
  }

  /** the values received, as `${publisher}:${n}` */
  values (): string[] {
    return this.messages.map(f => { const v = f.value as { p: string, n: number }; return `${v.p}:${v.n}` })
  }

  stop (): void {
    this.#stopped = true
    this.#client?.terminate()
  }
}

/**
 * A publisher through the balancer: at most `window` publishes unacked; when
 * its socket closes it reconnects and sends again, in order, every publish it
 * has no ack for. A record is `{ p, n }`.
 */
export class Publisher {
  readonly subject: string
  readonly acked = new Set<number>()
  readonly errors: Frame[] = []
  readonly closes: number[] = []
  readonly refusals: number[] = []
  connections = 0
  #next = 0
  readonly #unacked = new Map<number, object>()
  #client: Client | undefined
  #running = false
  #closing = false
  #timer: NodeJS.Timeout | undefined
  readonly #t: Test
  readonly #url: string
  readonly #topic: string
  readonly #window: number

  constructor (t: Test, cluster: Cluster, subject: string, topic: string, window = 8) {
    this.#t = t
    this.#url = cluster.streamUrl
    this.subject = subject
    this.#topic = topic
    this.#window = window
  }

  async open (): Promise<void> {
    const client = await connect(this.#t, this.#url, this.subject, this.refusals)
    this.#client = client
    this.connections++
    client.ws.on('message', data => {
      const frame = JSON.parse(data.toString()) as Frame
      if (frame.op === 'ack') {
        const n = Number(frame.id)
        this.#unacked.delete(n)
        this.acked.add(n)
      } else if (frame.op === 'error') {
        this.errors.push(frame)
      }
    })
    client.closed.then(({ code }) => {
      this.closes.push(code)
      if (!this.#closing && (code === 1001 || code === 1006)) this.open().catch(err => this.errors.push({ op: 'reconnect', message: String(err) }))
    })
    // what the last connection never acked, again and in order: never read (so never written) or written and acked
    for (const [n, frame] of this.#unacked) client.send({ ...frame, id: String(n) })
  }

  /** Publishes one record every `everyMs` while fewer than the window are unacked. */
  start (everyMs: number): void {
    this.#running = true
    this.#timer = setInterval(() => {
      const client = this.#client
      if (!this.#running || !client || client.ws.readyState !== client.ws.OPEN || this.#unacked.size >= this.#window) return
      const n = this.#next++
      const frame = { op: 'publish', topic: this.#topic, value: { p: this.subject, n } }
      this.#unacked.set(n, frame)
      client.send({ ...frame, id: String(n) })
    }, everyMs)
  }

  /** Stops publishing; what was sent is still acked (and sent again after a reconnect). */
  stop (): void {
    this.#running = false
    clearInterval(this.#timer)
  }

  /** publishes sent and not acked yet */
  get unacked (): number {
    return this.#unacked.size
  }

  get published (): number {
    return this.#next
  }

  /** stops publishing and closes, without reconnecting */
  close (): void {
    this.stop()
    this.#closing = true
    this.#client?.terminate()
  }
}
