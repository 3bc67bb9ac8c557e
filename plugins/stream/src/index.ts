// GET /v1/stream: the native WebSocket API (docs/design.md). Everything that can
// reject a client runs in a preValidation hook, before the upgrade: a
// rejected client gets an HTTP status and a JSON body and never holds a socket.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
// type-only: brings @fastify/websocket's route options and request.ws into scope
import type {} from '@fastify/websocket'
import { gatewayDefaults } from '@sluice/config/gateway'
import { groupIdFor, type Identity } from '@sluice/protocol/identity'
import type { AccessControl, AccessDecision } from '@sluice/policy/access'
import { parseCursor, type Cursor } from '@sluice/hub'
import {
  acceptSession, CLOSE, DEFAULT_LIMITS, holdUpgrade, isRefusal, keepSessionsAlive, MAX_TOPICS_PER_FRAME, releaseWritesAfter, TopicGate, topicList, WIRE_CODES,
  type SessionLimits, type StreamGuard, type WireErrorCode
} from '@sluice/sessions'
import { MAX_PATTERNS, StreamSession } from './session.ts'
import { compileClientPattern, isTopicPattern } from './protocol.ts'

export { StreamSession } from './session.ts'
export { wireCode } from './errors.ts'
export { parseClientFrame } from './protocol.ts'

export const NATIVE_PROTOCOL = 'sluice.v1'

export interface StreamPluginOptions {
  access: AccessControl
  limits?: Partial<SessionLimits>
  /** ping period; a peer that misses one ping is closed. 30 s keeps NAT and proxies from dropping idle sockets */
  keepaliveMs?: number
  renew?: (current: Identity, token: string) => Promise<Identity>
  /** rate limits per frame and per delivered message */
  guard?: StreamGuard
}

interface UpgradePlan {
  identity: Identity
  topics: string[]
  from: string | undefined
  /** `from` parsed, when it is a cursor */
  cursor: Cursor | undefined
  /** the connection, corked from the last hook until the session's open settles */
  held?: Duplex
  groupId: string | undefined
  decisions: Map<string, AccessDecision>
}

const GROUP_ID = /^[a-zA-Z0-9._-]{1,128}$/

/** Subprotocol selection for every WebSocket route: never echo a credential. */
export function selectProtocol (protocols: Set<string>, request: IncomingMessage): string | false {
  const path = (request.url ?? '').split('?')[0]
  if (path === '/v1/stream') return protocols.has(NATIVE_PROTOCOL) ? NATIVE_PROTOCOL : false
  for (const p of ['kafka-text', 'kafka-binary']) if (protocols.has(p)) return p
  return false
}

// one rule for every route's consumer groups (compat and the tests import it from here)
export { groupIdFor }

function reject (reply: FastifyReply, status: number, code: WireErrorCode, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } })
}

function single (value: unknown): string | undefined | null {
  if (value === undefined) return undefined
  return typeof value === 'string' ? value : null
}

async function stream (fastify: FastifyInstance, opts: StreamPluginOptions): Promise<void> {
  const limits: SessionLimits = { ...DEFAULT_LIMITS, ...opts.limits }
  const plans = new WeakMap<FastifyRequest, UpgradePlan>()
  const gate = new TopicGate(fastify.kafka, opts.access)

  async function checkUpgrade (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (!request.ws) {
      reply.header('upgrade', 'websocket')
      return reject(reply, 426, 'BAD_REQUEST', 'this endpoint speaks WebSocket only')
    }
    const identity = request.identity
    if (!identity) return reject(reply, 401, 'UNAUTHORIZED', 'credentials required')
    const query = request.query as Record<string, unknown>
    const topicsParam = single(query.topics)
    const from = single(query.from)
    const group = single(query.group)
    if (topicsParam === null || from === null || group === null) return reject(reply, 400, 'BAD_REQUEST', 'topics, from and group may each appear once')
    // names are checked before the upgrade (ACL 403, existence 404); patterns only for their syntax:
    // what they reach is authorized topic by topic once subscribed, as in a subscribe frame
    const named = topicsParam ? topicsParam.split(',') : []
    const patterns = [...new Set(named.filter(isTopicPattern))]
    for (const pattern of patterns) {
      const compiled = compileClientPattern(pattern)
      if (typeof compiled === 'string') return reject(reply, 400, 'BAD_REQUEST', compiled)
    }
    if (patterns.length > MAX_PATTERNS) return reject(reply, 400, 'BAD_REQUEST', `at most ${MAX_PATTERNS} topic patterns`)
    if (patterns.length > 0 && group !== undefined) return reject(reply, 400, 'BAD_REQUEST', 'group mode takes topic names, not patterns')
    const names = topicList(named.filter(t => !isTopicPattern(t)))
    if (isRefusal(names)) return reject(reply, names.status, names.code, names.message)
    if (names.length + patterns.length > MAX_TOPICS_PER_FRAME) return reject(reply, 400, 'BAD_REQUEST', `at most ${MAX_TOPICS_PER_FRAME} topics`)
    const topics = [...names, ...patterns]
    let cursor: Cursor | undefined
    if (from !== undefined && from !== 'latest' && from !== 'earliest') {
      try {
        cursor = parseCursor(from)
      } catch (err) {
        return reject(reply, 400, 'BAD_REQUEST', (err as Error).message)
      }
    }
    if (group !== undefined && (!GROUP_ID.test(group) || topics.length === 0)) {
      return reject(reply, 400, 'BAD_REQUEST', 'group must be 1 to 128 of [a-zA-Z0-9._-] and comes with topics')
    }
    // a group resumes from the offsets it committed; from says only where it starts on a partition it has none for
    if (group !== undefined && cursor !== undefined) {
      return reject(reply, 400, 'BAD_REQUEST', 'a group resumes from its committed offsets: with group, from is latest or earliest (where it starts on a partition it has not committed on), not a cursor')
    }
    const decisions = await gate.check(identity, names)
    if (isRefusal(decisions)) {
      if (decisions.retryAfter !== undefined) reply.header('retry-after', String(decisions.retryAfter))
      return reject(reply, decisions.status, decisions.code, decisions.message)
    }
    plans.set(request, { identity, topics, from, cursor, groupId: group === undefined ? undefined : groupIdFor(identity, group), decisions })
    return undefined
  }

  const deps = {
    hub: fastify.hub,
    kafka: fastify.kafka,
    access: opts.access,
    sessions: fastify.sessions,
    log: fastify.log.child({ component: 'stream' }),
    limits,
    renew: opts.renew,
    guard: opts.guard,
    publishes: fastify.publishCounts.route('/v1/stream', WIRE_CODES)
  }

  fastify.get('/v1/stream', {
    websocket: true,
    config: { auth: true },
    preValidation: checkUpgrade,
    // the last hook before the upgrade: the 101 waits for the subscribed frame and the replay of a
    // resume named in the query, and the three leave in one write (hold-writes.ts). The handler lets
    // go once the session's open settled, 100 ms at most; an upgrade ws refuses ends the socket, which
    // uncorks it
    preHandler: (request, _reply, done) => {
      const raw = request.raw.socket as typeof request.raw.socket | undefined
      const plan = plans.get(request)
      if (raw && !raw.destroyed && plan) {
        holdUpgrade(raw)
        plan.held = raw
      }
      done()
    }
  }, (socket: WebSocket, request: FastifyRequest) => {
    const plan = plans.get(request)
    if (!plan) {
      socket.close(CLOSE.INTERNAL, 'no upgrade plan')
      return
    }
    const held = plan.held
    plan.held = undefined
    acceptSession(socket, request, deps.log, raw => new StreamSession({
      socket,
      raw,
      identity: plan.identity,
      remoteAddress: request.ip,
      route: '/v1/stream',
      groupId: plan.groupId
    }, deps), session => {
      const opened = session.open(plan.topics, plan.from, plan.decisions, plan.cursor)
      if (held) releaseWritesAfter(held, opened)
      return opened
    })
  })

  keepSessionsAlive(fastify, opts.keepaliveMs ?? gatewayDefaults.stream.keepaliveMs)
}

export default fp(stream, { fastify: '5.x', name: 'sluice-stream', dependencies: ['sluice-sessions', 'sluice-hub', '@fastify/websocket'] })
