// The auth, policy and admin suites' preset (not a test file): a gateway from
// harness/gateway.ts (the real auth and policy plugins) plus a small
// WebSocket route of our own that registers real sockets in the app's
// SessionRegistry, the way /v1/stream does, so revocation, expiry and policy
// withdrawal can be shown on live sockets.
import { randomUUID } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import { WebSocket } from 'ws'
import type { LiveSession, SessionRegistry } from '@sluice/sessions'
import type { Identity } from '@sluice/protocol/identity'
import { Client, type ClientOptions } from './client.ts'
import { deepMerge, startGateway, type Gateway } from './gateway.ts'
import { policyDir as freshPolicyDir } from './policy.ts'

export const LIVE_PATH = '/test/live'
/** a plain HTTP route with config.auth: app.inject() drives the hook without sockets */
export const WHOAMI_PATH = '/test/whoami'

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

export interface TestGateway extends Gateway {
  /** sockets the test route accepted: a rejected upgrade must never count here */
  opened: () => number
  sessions: SessionRegistry
  /** a client of the test route; it offers no subprotocol unless told */
  ws (query?: string, options?: ClientOptions): Client
  /** Where a browser's `sluice.v1, bearer.<jwt>` subprotocols are negotiated: /v1/stream (its handleProtocols selects sluice.v1 only) */
  protocolPath: string
  wsAt (path: string, query?: string, options?: ClientOptions): Client
}

export interface LiveGatewayOptions {
  /** merged over the suite defaults (kafka, silent logs, the policy directory polled every 500 ms) */
  config?: Record<string, unknown>
  policyDir?: string
  captureLogs?: boolean
}

export async function liveGateway (options: LiveGatewayOptions = {}): Promise<TestGateway> {
  let opened = 0
  const gw = await startGateway({
    policyDir: options.policyDir ?? freshPolicyDir(),
    captureLogs: options.captureLogs,
    config: deepMerge({ policy: { pollIntervalMs: 500 } }, options.config ?? {}),
    routes: app => {
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
        app.sessions.add(session)
        socket.on('close', () => app.sessions.delete(session))
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
    }
  })
  return {
    ...gw,
    opened: () => opened,
    sessions: gw.app.sessions,
    ws: (query = '', options = {}) => new Client(`${gw.wsUrl}${LIVE_PATH}${query}`, { ...options, protocols: options.protocols ?? [] }),
    protocolPath: gw.app.hasRoute({ method: 'GET', url: '/v1/stream' }) ? '/v1/stream' : LIVE_PATH,
    wsAt: (path, query = '', options = {}) => new Client(`${gw.wsUrl}${path}${query}`, { ...options, protocols: options.protocols ?? [] })
  }
}
