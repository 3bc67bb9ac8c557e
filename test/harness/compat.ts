// The /v2/broker/ suites run the real gateway (buildApp: auth, policy, hub,
// compat) with the dev token and a policy directory of their own, and drive
// it with a client written only from the kafka-websocket protocol as the
// issue states it: text frames {"topic","key"?,"message"}, binary frames
// [1 byte: topic length][topic UTF-8][payload], credentials in the query.
import { mkdirSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import type { Test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { kafkaBrokers, eventually } from '../helpers.ts'
import { startGateway } from './gateway.ts'
import { policyDir as freshPolicyDir } from './policy.ts'

export const DEV_TOKEN = 'compat-suite-dev-token-0123456789abcdef'
/** the shipped transforms, by absolute path (policies name them relative to their own directory) */
export const SHIPPED_TRANSFORMS = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'policies', 'transforms')

export interface Gateway {
  app: FastifyInstance
  /** ws://127.0.0.1:port */
  url: string
  kafka: KafkaClient
  policyDir: string
}

export interface GatewayOptions {
  /** policy.yaml (policyYaml() of harness/policy.ts writes one) */
  policy: string
  /** extra files in the policy directory, e.g. transforms/x.ts */
  files?: Record<string, string>
  config?: Record<string, unknown>
}

/** The harness gateway with the dev token, a policy directory of the suite's own polled every 200 ms, and consumers released 200 ms after their last socket. */
export async function gateway (t: Test, options: GatewayOptions): Promise<Gateway> {
  // the modules are ES modules: say so, as an admin's policy directory should, rather than leave Node to detect it
  const policyDir = freshPolicyDir(options.policy, { 'package.json': '{"type":"module"}\n', ...options.files })
  mkdirSync(join(policyDir, 'transforms'), { recursive: true })
  t.teardown(() => rmSync(policyDir, { recursive: true, force: true }))
  const gw = await startGateway({
    t,
    policyDir,
    config: {
      dev: { token: DEV_TOKEN },
      policy: { pollIntervalMs: 200 },
      stream: { consumerGraceMs: 200 },
      ...options.config
    }
  })
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'compat-suite' })
  t.teardown(() => kafka.close())
  return { app: gw.app, url: gw.wsUrl, kafka, policyDir }
}

/** Waits until `count` sockets of this node are subscribed to `topic` (the protocol has no subscribed frame). */
export async function subscribed (gw: Gateway, topic: string, count: number): Promise<void> {
  await eventually(() => gw.app.hub.subscribers(topic) >= count, 20_000, `${count} subscriber(s) to ${topic}`)
}

export interface Received {
  /** text: the parsed JSON; binary: the decoded frame */
  text?: Record<string, unknown>
  binary?: { topic: string, payload: Buffer }
}

/** A kafka-websocket client, as an old application would have written it. */
export class LegacyClient {
  readonly ws: WebSocket
  readonly received: Received[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<() => void> = []

  /** `query` is the whole query string after `?`; the credential goes in it, as old clients could only do */
  constructor (url: string, query: string, protocol?: 'kafka-text' | 'kafka-binary', credential = `access_token=${encodeURIComponent(DEV_TOKEN)}`) {
    this.ws = new WebSocket(`${url}/v2/broker/?${query}${query ? '&' : ''}${credential}`, protocol ? [protocol] : [], { perMessageDeflate: false })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
      this.ws.once('unexpected-response', (req, res) => {
        let body = ''
        res.on('data', chunk => { body += chunk })
        res.on('end', () => {
          // with a listener here, ws leaves the refused connection to us
          req.destroy()
          reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { statusCode: res.statusCode, body: JSON.parse(body || '{}') }))
        })
      })
    })
    this.closed = new Promise(resolve => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    this.ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) this.received.push({ binary: { topic: data.subarray(1, 1 + data[0]!).toString('utf8'), payload: data.subarray(1 + data[0]!) } })
      else this.received.push({ text: JSON.parse(data.toString('utf8')) as Record<string, unknown> })
      this.#wake()
    })
    this.ws.on('close', () => this.#wake())
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  /** kafka-text: {"topic":"t","message":"..."} or with a key */
  sendText (topic: string, message: string, key?: string): void {
    this.ws.send(JSON.stringify(key === undefined ? { topic, message } : { topic, key, message }))
  }

  /** kafka-binary: [topic length][topic][payload] */
  sendBinary (topic: string, payload: Buffer): void {
    const name = Buffer.from(topic, 'utf8')
    this.ws.send(Buffer.concat([Buffer.from([name.length]), name, payload]))
  }

  sendRaw (data: string | Buffer): void {
    this.ws.send(data)
  }

  /** the data frames: {"topic","message"} objects and binary frames, without error frames */
  messages (): Received[] {
    return this.received.filter(r => r.binary !== undefined || (r.text !== undefined && !('error' in r.text)))
  }

  errors (): Array<{ code: string, message: string, [field: string]: unknown }> {
    return this.received.flatMap(r => r.text && 'error' in r.text ? [r.text.error as { code: string, message: string }] : [])
  }

  async waitFor<T> (pick: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = pick()
      if (found !== undefined) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${what}; got ${this.#last()}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`not within ${timeoutMs} ms: ${what}; got ${this.#last()}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 1000))
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  #last (): string {
    return `${this.received.length} frames, the last: ` + this.received.slice(-3).map(r => r.text ? JSON.stringify(r.text).slice(0, 200) : `binary ${r.binary!.topic} ${r.binary!.payload.length} bytes`).join(' | ')
  }

  /** the next error frame after the `after`-th error */
  async nextError (after: number, timeoutMs = 10_000): Promise<{ code: string, message: string, [field: string]: unknown }> {
    return this.waitFor(() => this.errors()[after], timeoutMs, `error #${after + 1}`)
  }

  async waitMessages (count: number, timeoutMs = 30_000): Promise<Received[]> {
    return this.waitFor(() => this.messages().length >= count ? this.messages() : undefined, timeoutMs, `${count} messages`)
  }

  close (): void {
    this.ws.close()
  }
}
