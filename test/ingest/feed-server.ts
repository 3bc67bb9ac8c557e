// A real WebSocket feed on 127.0.0.1 for the ingest suites, behaving as the
// exchange and IoT feeds do: it may demand a bearer token and a custom header
// at the upgrade, and a subscription message before it streams anything. It
// can refuse upgrades, drop connections abruptly and stream bursts. Also the
// suites' way of reading a topic back from the real broker.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Writable } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import type { FastifyInstance } from 'fastify'
import type { ConsumedRecord, KafkaClient } from '@sluice/kafka'
import { buildApp } from '@sluice/ingest'
import { loadIngestConfig } from '@sluice/ingest/config'
import type { Feed } from '@sluice/ingest/feed'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

export interface FeedServerOptions {
  /** the bearer token the upgrade must carry */
  token?: string
  /** a header the upgrade must carry, with this exact value */
  header?: { name: string, value: string }
  /** the first message a connection must send before anything is streamed to it */
  subscription?: string
}

export interface UpgradeAttempt {
  at: number
  status: number
  authorization: string | undefined
  header: string | undefined
}

export class FeedServer {
  readonly options: FeedServerOptions
  readonly attempts: UpgradeAttempt[] = []
  /** subscription messages received, in order, one per subscribed connection */
  readonly subscriptions: string[] = []
  /** connections that subscribed and are open */
  readonly subscribers = new Set<WebSocket>()
  #http: Server | undefined
  #wss: WebSocketServer | undefined
  #refuse: { count: number, status: number } = { count: 0, status: 503 }
  #waiters: Array<(ws: WebSocket) => void> = []
  port = 0

  constructor (options: FeedServerOptions = {}) {
    this.options = options
  }

  get url (): string {
    return `ws://127.0.0.1:${this.port}/feed`
  }

  async start (): Promise<void> {
    this.#wss = new WebSocketServer({ noServer: true })
    this.#http = createServer((_req, res) => { res.writeHead(426).end() })
    this.#http.on('upgrade', (req, socket, head) => this.#upgrade(req, socket as Socket, head))
    await new Promise<void>(resolve => this.#http!.listen(0, '127.0.0.1', resolve))
    this.port = (this.#http.address() as AddressInfo).port
  }

  /** The next `count` upgrades are answered with `status` (a feed restarting, or rate limiting reconnects). */
  refuse (count: number, status = 503): void {
    this.#refuse = { count, status }
  }

  #upgrade (req: IncomingMessage, socket: Socket, head: Buffer): void {
    const authorization = req.headers.authorization
    const header = this.options.header ? req.headers[this.options.header.name.toLowerCase()] as string | undefined : undefined
    let status = 101
    if (this.#refuse.count > 0) {
      this.#refuse.count--
      status = this.#refuse.status
    } else if (this.options.token && authorization !== `Bearer ${this.options.token}`) {
      status = 401
    } else if (this.options.header && header !== this.options.header.value) {
      status = 403
    }
    this.attempts.push({ at: Date.now(), status, authorization, header })
    if (status !== 101) {
      socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    this.#wss!.handleUpgrade(req, socket, head, ws => this.#connection(ws))
  }

  #connection (ws: WebSocket): void {
    ws.on('error', () => {})
    ws.on('close', () => this.subscribers.delete(ws))
    if (!this.options.subscription) {
      this.#subscribed(ws)
      return
    }
    ws.once('message', data => {
      const text = data.toString()
      if (text !== this.options.subscription) {
        ws.close(1008, 'expected a subscription message')
        return
      }
      this.subscriptions.push(text)
      this.#subscribed(ws)
    })
  }

  #subscribed (ws: WebSocket): void {
    this.subscribers.add(ws)
    const waiters = this.#waiters
    this.#waiters = []
    for (const waiter of waiters) waiter(ws)
  }

  /** Resolves with the next connection that subscribes (or the current one, if `existing`). */
  nextSubscriber (timeoutMs = 15_000): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no subscriber within ${timeoutMs} ms`)), timeoutMs)
      this.#waiters.push(ws => {
        clearTimeout(timer)
        resolve(ws)
      })
    })
  }

  /** Sends to every subscriber; resolves when the frames are written to the sockets. */
  async send (data: string | Buffer, binary = typeof data !== 'string'): Promise<void> {
    await Promise.all([...this.subscribers].map(ws => new Promise<void>((resolve, reject) => {
      ws.send(data, { binary }, err => err ? reject(err) : resolve())
    })))
  }

  /**
   * Streams `count` frames made by `make(i)` to one subscriber, spread over
   * `durationMs` in ticks of 10 ms (the pacing of a real burst), and resolves
   * when the last one is written to the socket.
   */
  async burst (ws: WebSocket, count: number, durationMs: number, make: (i: number) => string | Buffer): Promise<void> {
    // 10 ms ticks: a 1 s burst in 100 slices, each sent back to back
    const ticks = Math.max(1, Math.floor(durationMs / 10))
    const perTick = Math.ceil(count / ticks)
    const started = Date.now()
    let sent = 0
    for (let tick = 0; sent < count; tick++) {
      const due = started + tick * 10 - Date.now()
      if (due > 0) await new Promise(resolve => setTimeout(resolve, due))
      const end = Math.min(count, sent + perTick)
      for (; sent < end - 1; sent++) send(make(sent))
      await new Promise<void>((resolve, reject) => send(make(sent++), err => err ? reject(err) : resolve()))
    }
    function send (data: string | Buffer, cb?: (err?: Error) => void): void {
      ws.send(data, { binary: typeof data !== 'string' }, cb)
    }
  }

  /** Cuts every connection without a closing handshake (a crashed feed or a dropped network path). */
  dropAll (): void {
    for (const ws of this.subscribers) ws.terminate()
    this.subscribers.clear()
  }

  async close (): Promise<void> {
    for (const ws of this.#wss?.clients ?? []) ws.terminate()
    this.#wss?.close()
    await new Promise<void>(resolve => this.#http ? this.#http.close(() => resolve()) : resolve())
  }
}

/**
 * Reads `topic` from the beginning until it holds `count` records (waiting at
 * most `timeoutMs` for them to arrive), in partition order.
 */
export async function readTopic (kafka: KafkaClient, topic: string, count: number, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  await eventually(async () => {
    const offsets = await kafka.topicOffsets(topic).catch(() => [])
    return offsets.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0) >= count
  }, timeoutMs, `${count} records in ${topic}`)
  const records: ConsumedRecord[] = []
  let consumer: ReturnType<KafkaClient['consumer']> | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${records.length} of ${count} records of ${topic}`)), timeoutMs)
      consumer = kafka.consumer({
        groupId: unique('ingest-reader'),
        topics: [topic],
        fromBeginning: true,
        async onBatch (batch) {
          records.push(...batch.records)
          if (records.length >= count) {
            clearTimeout(timer)
            resolve()
          }
        }
      })
      consumer.start().catch(reject)
    })
  } finally {
    await consumer?.stop()
  }
  return records
}

/** The `seq` field of each JSON record value, in the order read. */
export function seqs (records: ConsumedRecord[]): number[] {
  return records.map(r => (JSON.parse(r.value!.toString()) as { seq: number }).seq)
}

export interface RunningConnector {
  app: FastifyInstance
  feed (name: string): Feed
  /** every JSON log line so far, as written */
  logs (): string
  /** GET /metrics through the app */
  metrics (): Promise<string>
}

export interface ConnectorTestOptions {
  env?: Record<string, string>
  brokers?: string[]
  level?: string
  shutdownTimeoutMs?: number
  random?: () => number
}

/** The ingest app with these feeds, on the run's broker, its logs captured; closed at teardown. */
export async function startConnector (t: { teardown (fn: () => unknown): void }, feeds: Array<Record<string, unknown>>, options: ConnectorTestOptions = {}): Promise<RunningConnector> {
  const config = loadIngestConfig({
    env: options.env ?? {},
    base: {
      kafka: { brokers: options.brokers ?? kafkaBrokers(), clientId: unique('ingest-test') },
      log: { level: options.level ?? 'info' },
      server: { shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000 },
      feeds
    }
  })
  const lines: string[] = []
  const logStream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    }
  })
  const app = await buildApp(config, { logStream, defaultMetrics: false, random: options.random })
  t.teardown(() => app.close())
  await app.ready()
  return {
    app,
    feed (name) {
      const feed = app.ingest.feed(name)
      if (!feed) throw new Error(`no feed ${name}`)
      return feed
    },
    logs: () => lines.join(''),
    metrics: async () => (await app.inject({ method: 'GET', url: '/metrics' })).body
  }
}

/** One sample's value from Prometheus text, e.g. metric(text, 'sluice_ingest_dropped_total', { feed: 'a', reason: 'buffer_full' }). */
export function metric (text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = m[2]!.split(',')
    if (wanted.every(w => have.includes(w))) return Number(m[3])
  }
  return undefined
}
