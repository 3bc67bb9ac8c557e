// GET /v2/broker/: the drop-in for clients of the Java kafka-websocket server
// (docs/design.md, "kafka-websocket compatibility"). Same credentials, ACL and rate
// limits as /v1/stream: the auth plugin's hook and the shared upgrade checks
// run before the upgrade, so a refused client never holds a socket.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
// type-only: brings @fastify/websocket's route options and request.ws into scope
import type {} from '@fastify/websocket'
import { Counter, Gauge } from 'prom-client'
import { gatewayDefaults } from '@sluice/config/gateway'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl } from '@sluice/policy/access'
import {
  acceptSession, CLOSE, DEFAULT_LIMITS, isRefusal, keepSessionsAlive, TopicGate, WIRE_CODES,
  type AllowedDecision, type Refusal, type SessionLimits, type StreamGuard
} from '@sluice/sessions'
import { KafkaUnknownTopicError } from '@sluice/kafka/errors'
import { groupIdFor } from '@sluice/stream'
import type { Subprotocol } from './codec.ts'
import { brokerQuery } from './query.ts'
import { CompatSession } from './session.ts'
import { BadQueryError, ForbiddenError, InternalError, UnauthorizedError, UnavailableError, WebSocketOnlyError } from './errors.ts'
import { DEFAULT_TRANSFORM_LIMITS, TransformRunners, type TransformLimits } from './transform-runner.ts'

export { CompatSession } from './session.ts'
export { parseTextFrame, parseBinaryFrame, textMessage, binaryMessage, MAX_BINARY_TOPIC_BYTES } from './codec.ts'
export type { Subprotocol, ProduceRequest } from './codec.ts'
export { brokerQuery } from './query.ts'
export { TransformRunner, TransformRunners, DEFAULT_TRANSFORM_LIMITS } from './transform-runner.ts'
export type { TransformLimits } from './transform-runner.ts'
export * as errors from './errors.ts'

export const BROKER_PATH = '/v2/broker/'

export interface CompatPluginOptions {
  access: AccessControl
  /** the socket limits; /v1/stream's defaults and configuration apply to both routes */
  limits?: Partial<SessionLimits>
  /** ping period; a peer that misses one ping is closed */
  keepaliveMs?: number
  /** rate limits per publish and per delivered message, as on /v1/stream */
  guard?: StreamGuard
  transforms?: Partial<TransformLimits>
}

interface UpgradePlan {
  identity: Identity
  topics: string[]
  decisions: Map<string, AllowedDecision>
  groupId?: string
}

/** A refusal of the shared upgrade checks, in this route's catalogue. */
function refusal (r: Refusal): Error & { code: string, statusCode: number } {
  switch (r.code) {
    case 'BAD_REQUEST': return new BadQueryError(r.message)
    case 'FORBIDDEN': return new ForbiddenError(r.message)
    // the code a publish to a missing topic gets too: one code per meaning
    case 'UNKNOWN_TOPIC': return new KafkaUnknownTopicError(r.topic ?? '?')
    case 'UNAVAILABLE': return new UnavailableError(r.message)
    default: return new InternalError()
  }
}

function refuse (reply: FastifyReply, err: Error & { code: string, statusCode: number }): FastifyReply {
  return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message } })
}

/** The subprotocol ws selected (selectProtocol in @sluice/stream); none asked for is kafka-text, as in the Java server. */
function subprotocolOf (socket: WebSocket): Subprotocol {
  return socket.protocol === 'kafka-binary' ? 'kafka-binary' : 'kafka-text'
}

async function compat (fastify: FastifyInstance, opts: CompatPluginOptions): Promise<void> {
  const limits: SessionLimits = { ...DEFAULT_LIMITS, ...opts.limits }
  const log = fastify.log.child({ component: 'compat' })
  const gate = new TopicGate(fastify.kafka, opts.access)
  const plans = new WeakMap<FastifyRequest, UpgradePlan>()

  const registers = fastify.hasDecorator('metrics') ? [fastify.metrics] : []
  const invalidFrames = new Counter({ name: 'sluice_compat_invalid_frames_total', help: 'kafka-text / kafka-binary frames refused as unreadable, by code', labelNames: ['code'], registers })
  const transformFailures = new Counter({ name: 'sluice_compat_transform_failures_total', help: 'Messages skipped because a transform threw, returned no message, ran over its time budget or was disabled', labelNames: ['direction', 'reason'], registers })
  const transformDiscards = new Counter({ name: 'sluice_compat_transform_discards_total', help: 'Messages a transform discarded on purpose (returned null)', labelNames: ['direction'], registers })
  const unframeable = new Counter({ name: 'sluice_compat_unframeable_total', help: 'Records kafka-binary clients got an error for: the topic does not fit the length byte', registers })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'sluice_compat_sessions',
    help: 'Open /v2/broker/ sockets on this node, by subprotocol',
    labelNames: ['subprotocol'],
    registers,
    collect () {
      const counts = { 'kafka-text': 0, 'kafka-binary': 0 }
      for (const session of fastify.sessions.list()) if (session instanceof CompatSession) counts[session.subprotocol]++
      for (const [subprotocol, n] of Object.entries(counts)) this.set({ subprotocol }, n)
    }
  })

  const runners = new TransformRunners({ ...DEFAULT_TRANSFORM_LIMITS, ...opts.transforms }, log, {
    failure: (direction, reason) => transformFailures.inc({ direction, reason }),
    discard: direction => transformDiscards.inc({ direction })
  })

  async function checkUpgrade (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (!request.ws) {
      reply.header('upgrade', 'websocket')
      return refuse(reply, new WebSocketOnlyError())
    }
    const identity = request.identity
    if (!identity) return refuse(reply, new UnauthorizedError())
    const query = brokerQuery(request.query as Record<string, unknown>)
    if (isRefusal(query)) return refuse(reply, refusal(query))
    const decisions = await gate.check(identity, query.topics)
    if (isRefusal(decisions)) {
      if (decisions.retryAfter !== undefined) reply.header('retry-after', String(decisions.retryAfter))
      return refuse(reply, refusal(decisions))
    }
    plans.set(request, {
      identity,
      topics: query.topics,
      decisions,
      // namespaced per subject, as on /v1/stream: a client shares a group with its own sockets only
      groupId: query.group === undefined ? undefined : groupIdFor(identity, query.group)
    })
    return undefined
  }

  const deps = {
    hub: fastify.hub,
    kafka: fastify.kafka,
    access: opts.access,
    sessions: fastify.sessions,
    log,
    limits,
    guard: opts.guard,
    publishes: fastify.publishCounts.route(BROKER_PATH, WIRE_CODES),
    runners,
    invalidFrame: (code: string) => invalidFrames.inc({ code }),
    unframeable: () => unframeable.inc()
  }

  const handler = (socket: WebSocket, request: FastifyRequest) => {
    const plan = plans.get(request)
    if (!plan) {
      socket.close(CLOSE.INTERNAL, 'no upgrade plan')
      return
    }
    acceptSession(socket, request, log, raw => new CompatSession({
      socket,
      raw,
      identity: plan.identity,
      remoteAddress: request.ip,
      route: BROKER_PATH,
      subprotocol: subprotocolOf(socket),
      topics: plan.topics,
      decisions: plan.decisions,
      groupId: plan.groupId
    }, deps), session => session.open())
  }
  const route = { websocket: true, config: { auth: true }, preValidation: checkUpgrade } as const
  fastify.get(BROKER_PATH, route, handler)
  // the Java server answered on /v2/broker/ only; the path without its slash is the same endpoint here
  fastify.get('/v2/broker', route, handler)

  keepSessionsAlive(fastify, opts.keepaliveMs ?? gatewayDefaults.stream.keepaliveMs)
}

export default fp(compat, { fastify: '5.x', name: 'sluice-compat', dependencies: ['sluice-sessions', 'sluice-hub', '@fastify/websocket'] })
