// Test support for the auth, policy and admin suites: the real gateway app
// (buildApp with the real auth and policy plugins) plus a small WebSocket
// route of our own that registers real sockets in the app's SessionRegistry,
// the way /v1/stream does, so revocation, expiry and policy withdrawal can be
// shown on live sockets. Not a test file itself (no .test.ts).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import type {} from '@fastify/websocket'
import { WebSocket } from 'ws'
import { pino } from 'pino'
import type { LiveSession, SessionRegistry } from '@sluice/sessions'
import type { Identity } from '@sluice/protocol/identity'
import { buildApp } from '../../../apps/gateway/src/app.ts'
import { loadGatewayConfig } from '../../../apps/gateway/src/config.ts'
import { loggerOptions } from '../../../apps/gateway/src/logger.ts'
import { eventually, kafkaBrokers } from '../../../test/helpers.ts'
import { Client } from '../../../test/harness/client.ts'

export { Client, refusal, type Frame } from '../../../test/harness/client.ts'

export const LIVE_PATH = '/test/live'
/** a plain HTTP route with config.auth: app.inject() drives the hook without sockets */
export const WHOAMI_PATH = '/test/whoami'

/** A policy for the suites: prices.* for everyone (basic), orders.{sub} per tenant (gold). */
export const TEST_POLICY = `
version: 1
plans:
  basic:
    limits: { connections: 5, connectsPerMinute: 60, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 }
  gold:
    limits: { connections: 50, connectsPerMinute: 600, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 }
products:
  market:
    plans: [basic, gold]
    topics:
      - pattern: prices.*
        encoding: json
      - pattern: orders.*
        encoding: json
        slowClient: evict
rules:
  - name: prices
    product: market
    plan: basic
    subscribe: ['prices.*']
  - name: tenant-orders
    product: market
    plan: gold
    subscribe: ['orders.{sub}']
    publish: ['orders.{sub}']
`

export function policyDir (yaml = TEST_POLICY): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-policy-'))
  writeFileSync(join(dir, 'policy.yaml'), yaml)
  return dir
}

/** A socket of the test route, as the stream's sessions are: registered, closable, unsubscribable. */
class TestSession implements LiveSession {
  readonly id = randomUUID()
  readonly route = LIVE_PATH
  readonly remoteAddress: string
  readonly connectedAt = Date.now()
  readonly #socket: WebSocket
  #identity: Identity
  readonly #topics: Set<string>

  constructor (socket: WebSocket, identity: Identity, remoteAddress: string, topics: string[]) {
    this.#socket = socket
    this.#identity = identity
    this.remoteAddress = remoteAddress
    this.#topics = new Set(topics)
  }

  get identity (): Identity {
    return this.#identity
  }

  set identity (fresh: Identity) {
    this.#identity = fresh
  }

  topics (): string[] {
    return [...this.#topics]
  }

  subscribe (topics: string[]): void {
    for (const t of topics) this.#topics.add(t)
  }

  unsubscribe (topics: string[], code: string, message: string): void {
    for (const t of topics) this.#topics.delete(t)
    this.send({ op: 'unsubscribed', topics, code, message })
  }

  close (code: number, reason: string): void {
    this.#socket.close(code, reason)
  }

  send (frame: unknown): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(frame))
  }
}

export interface TestGateway {
  app: FastifyInstance
  /** http://127.0.0.1:port */
  url: string
  policyDir: string
  /** log lines (JSON) when `captureLogs` was asked */
  logs: string[]
  /** sockets the test route accepted: a rejected upgrade must never count here */
  opened: () => number
  sessions: SessionRegistry
  ws (query?: string, options?: { protocols?: string[], headers?: Record<string, string> }): Client
  /**
   * Where a browser's `sluice.v1, bearer.<jwt>` subprotocols are negotiated:
   * /v1/stream once buildApp registers it (its handleProtocols selects
   * sluice.v1 there only), else the test route with the suites' own.
   */
  protocolPath: string
  wsAt (path: string, query?: string, options?: { protocols?: string[], headers?: Record<string, string> }): Client
}

export interface GatewayOptions {
  /** merged over the suite defaults (kafka, silent logs, the policy directory) */
  config?: Record<string, unknown>
  policyDir?: string
  captureLogs?: boolean
}

export async function startGateway (options: GatewayOptions = {}): Promise<TestGateway> {
  const dir = options.policyDir ?? policyDir()
  const logs: string[] = []
  const config = loadGatewayConfig({
    base: deepMerge({ kafka: { brokers: kafkaBrokers() }, log: { level: 'silent' }, policy: { dir, pollIntervalMs: 500 } }, options.config ?? {})
  })
  const logger = options.captureLogs
    ? pino(loggerOptions('trace'), new Writable({ write (chunk, _enc, done) { logs.push(...String(chunk).split('\n').filter(Boolean)); done() } }))
    : undefined
  const app = await buildApp(config, { logger })

  // until /v1/stream is registered by buildApp, the suites bring what it would
  if (!app.hasDecorator('websocketServer')) {
    await app.register(websocket, {
      // select sluice.v1, never the bearer.<jwt> credential
      options: { handleProtocols: (protocols: Set<string>) => protocols.has('sluice.v1') ? 'sluice.v1' : false }
    })
  }
  const sessions = app.sessions
  let opened = 0

  const checkTopics = async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = (request.query as Record<string, unknown>).topics
    const topics = typeof raw === 'string' ? raw.split(',').filter(Boolean) : []
    for (const topic of topics) {
      const decision = app.policy.authorize(request.identity!, 'subscribe', topic)
      if (!decision.allowed) return reply.code(403).send({ error: { code: 'FORBIDDEN', message: decision.reason } })
    }
    return undefined
  }

  app.get(LIVE_PATH, { websocket: true, config: { auth: true }, preValidation: checkTopics }, (socket: WebSocket, request: FastifyRequest) => {
    opened++
    const raw = (request.query as Record<string, unknown>).topics
    const session = new TestSession(socket, request.identity!, request.ip, typeof raw === 'string' ? raw.split(',').filter(Boolean) : [])
    sessions.add(session)
    socket.on('close', () => sessions.delete(session))
    session.send({ op: 'welcome', session: session.id, subject: session.identity.subject })
    socket.on('message', async data => {
      let frame: { op?: string, id?: string, topics?: string[], topic?: string, token?: string }
      try {
        frame = JSON.parse(String(data))
      } catch {
        return session.send({ op: 'error', code: 'BAD_REQUEST' })
      }
      // every frame is checked again: the upgrade's decision is not a licence
      if (frame.op === 'subscribe') {
        const denied = (frame.topics ?? []).filter(t => !app.policy.authorize(session.identity, 'subscribe', t).allowed)
        if (denied.length > 0) return session.send({ op: 'error', id: frame.id, code: 'FORBIDDEN', topics: denied })
        session.subscribe(frame.topics ?? [])
        return session.send({ op: 'subscribed', id: frame.id, topics: frame.topics })
      }
      if (frame.op === 'publish') {
        const decision = app.policy.authorize(session.identity, 'publish', String(frame.topic))
        if (!decision.allowed) return session.send({ op: 'error', id: frame.id, code: 'FORBIDDEN' })
        return session.send({ op: 'ack', id: frame.id, topic: frame.topic, plan: decision.plan })
      }
      if (frame.op === 'auth') {
        try {
          session.identity = await app.credentials.renew(session.identity, String(frame.token))
          return session.send({ op: 'authenticated', id: frame.id, expiresAt: session.identity.expiresAt })
        } catch (err) {
          return session.send({ op: 'error', id: frame.id, code: 'UNAUTHORIZED', reason: (err as { code?: string }).code })
        }
      }
      return session.send({ op: 'error', id: frame.id, code: 'BAD_REQUEST' })
    })
  })

  app.get(WHOAMI_PATH, { config: { auth: true } }, async request => ({ subject: request.identity!.subject, kind: request.identity!.kind }))

  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  // Redis commands fail fast while it connects (no offline queue); the suites wait for it
  if (app.hasDecorator('redis')) await eventually(() => app.redis.status === 'ready', 5000, 'Redis connected')
  return {
    app,
    url,
    policyDir: dir,
    logs,
    opened: () => opened,
    sessions,
    ws: (query = '', options = {}) => new Client(`${url.replace('http', 'ws')}${LIVE_PATH}${query}`, { ...options, protocols: options.protocols ?? [] }),
    protocolPath: app.hasRoute({ method: 'GET', url: '/v1/stream' }) ? '/v1/stream' : LIVE_PATH,
    wsAt: (path, query = '', options = {}) => new Client(`${url.replace('http', 'ws')}${path}${query}`, { ...options, protocols: options.protocols ?? [] })
  }
}

function deepMerge (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key]
    const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
    out[key] = plain(prior) && plain(value) ? deepMerge(prior, value) : value
  }
  return out
}
