// Builds a gateway stack for the stream suites: the real Kafka plugin, hub,
// @fastify/websocket and /v1/stream, on a real port; and a WebSocket client
// that records every frame it receives.
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { WebSocket } from 'ws'
import health from '@sluice/health'
import sessions from '@sluice/sessions'
import metrics from '@sluice/metrics'
import kafkaPlugin from '@sluice/kafka-plugin'
import { KafkaClient } from '@sluice/kafka'
import hub from '@sluice/hub'
import stream, { selectProtocol } from '@sluice/stream'
import type { SessionLimits } from '@sluice/sessions'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl, TopicTerms } from '@sluice/policy/access'
import { kafkaBrokers } from './helpers.ts'

export const DEV_IDENTITY: Identity = { kind: 'dev', subject: 'dev', claims: { sub: 'dev' } }

/** Every topic allowed, with the given terms: for suites about streaming, not about policy. */
export function allowAll (terms: Partial<TopicTerms> = {}, deny: string[] = []): AccessControl {
  return {
    authorize (_identity, _action, topic) {
      if (deny.includes(topic)) return { allowed: false, reason: 'denied by the test policy' }
      return { allowed: true, product: 'test', plan: 'test', encoding: 'json', slowClient: 'lagging', ...terms }
    },
    onChange () { return () => {} }
  }
}

export interface StreamAppOptions {
  access?: AccessControl
  limits?: Partial<SessionLimits>
  nodeId?: string
  keepaliveMs?: number
  brokers?: string[]
  /** the identity every request carries (the auth plugin's job in the gateway) */
  identity?: Identity
}

export async function streamApp (options: StreamAppOptions = {}): Promise<{ app: FastifyInstance, url: string, kafka: KafkaClient }> {
  const app = Fastify({ logger: false })
  const kafka = new KafkaClient({ brokers: options.brokers ?? kafkaBrokers(), clientId: 'test-gateway' })
  await app.register(metrics, { defaultMetrics: false })
  await app.register(health)
  await app.register(sessions)
  await app.register(kafkaPlugin, { client: kafka })
  const identity = options.identity ?? DEV_IDENTITY
  app.addHook('onRequest', async request => { request.identity = identity })
  // metadata every 2 s: the new-partition suite waits for it
  // topic list every 300 ms: the pattern suite waits for new topics
  await app.register(hub, { nodeId: options.nodeId ?? 'test', graceMs: 200, metadataMaxAgeMs: 2000, topicRefreshMs: 300 })
  await app.register(websocket, { options: { maxPayload: 1024 * 1024, perMessageDeflate: false, handleProtocols: selectProtocol } })
  await app.register(stream, { access: options.access ?? allowAll(), limits: options.limits, keepaliveMs: options.keepaliveMs })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: address.replace('http', 'ws'), kafka }
}

export interface Frame {
  op: string
  [field: string]: unknown
}

export class Client {
  readonly ws: WebSocket
  readonly frames: Frame[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<() => void> = []

  constructor (url: string, options: { protocols?: string[], headers?: Record<string, string> } = {}) {
    this.ws = new WebSocket(url, options.protocols ?? ['sluice.v1'], { headers: options.headers, perMessageDeflate: false })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })))
    })
    this.closed = new Promise(resolve => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    this.ws.on('message', data => {
      this.frames.push(JSON.parse(data.toString()) as Frame)
      const waiters = this.#waiters
      this.#waiters = []
      for (const wake of waiters) wake()
    })
    this.ws.on('close', () => {
      const waiters = this.#waiters
      this.#waiters = []
      for (const wake of waiters) wake()
    })
  }

  send (frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  messages (topic?: string): Frame[] {
    return this.frames.filter(f => f.op === 'message' && (topic === undefined || f.topic === topic))
  }

  /** Resolves with the first frame (from `after` on) that matches; fails after `timeoutMs`. */
  async next (match: (frame: Frame) => boolean, timeoutMs = 10_000, after = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.frames.slice(after).find(match)
      if (found) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed (${JSON.stringify(await this.closed)}) before a matching frame; got ${JSON.stringify(this.frames.slice(-3))}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; last: ${JSON.stringify(this.frames.slice(-3))}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Waits until `count` message frames arrived (optionally of one topic). */
  async waitMessages (count: number, timeoutMs: number, topic?: string): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const got = this.messages(topic)
      if (got.length >= count) return got
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed after ${got.length} of ${count} messages`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${got.length} of ${count} messages within ${timeoutMs} ms`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 1000))
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  close (): void {
    this.ws.close()
  }
}
