// The node's live WebSocket sessions, whatever their route: the registry that
// auth (expiry, revocation), policy (a reload's withdrawals), admin (list,
// kick) and the drain act through, and what each route counts of its
// publishes. Registered right after health, before every plugin that reads
// it, so that they declare it as a dependency instead of probing for it.
// Beside it, what every route's socket shares: the session base class
// (SocketSession), the upgrade checks (TopicGate), keepalive, the release of
// the upgrade's request, and the codes clients and closers share.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import { SessionRegistry } from './registry.ts'
import { PublishCounts } from './publish-counts.ts'
// type-only: brings fastify.metrics into scope
import type {} from '@sluice/metrics'

export { SessionRegistry } from './registry.ts'
export type { LiveSession } from './registry.ts'
export { PublishCounts, RoutePublishes } from './publish-counts.ts'
export { CLOSE, WIRE_CODES } from '@sluice/protocol/codes'
export type { WireErrorCode } from '@sluice/protocol/codes'
export { DEFAULT_LIMITS, SETTLED, SocketSession } from './socket-session.ts'
export type { DeliveryBudget, SessionDeps, SessionLimits, SessionStart, StreamGuard } from './socket-session.ts'
export { isRefusal, MAX_TOPICS_PER_FRAME, TopicGate, topicList } from './topic-gate.ts'
export type { AllowedDecision, Refusal } from './topic-gate.ts'
export { closeAfterError, ERROR_CLOSE_DEADLINE_MS, releaseUpgradeRequest } from './release-upgrade.ts'
export { keepSessionsAlive } from './keepalive.ts'
export { acceptSession } from './accept.ts'
export { holdUpgrade, holdWrites, MAX_HOLD_MS, releaseWritesAfter } from './hold-writes.ts'

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionRegistry
    /** publish outcomes per WebSocket route, read by /metrics */
    publishCounts: PublishCounts
  }
}

async function sessionsPlugin (fastify: FastifyInstance): Promise<void> {
  const sessions = new SessionRegistry()
  const publishes = new PublishCounts()
  fastify.decorate('sessions', sessions)
  fastify.decorate('publishCounts', publishes)

  // Read at scrape time from the registry and the plain counts: the hot path does no metric calls.
  // Without the metrics plugin (a suite's small app) they are kept nowhere, as auth's and policy's.
  const registers = fastify.hasDecorator('metrics') ? [fastify.metrics] : []
  /* eslint-disable no-new */
  new Gauge({
    name: 'sluice_sessions',
    help: 'Open WebSocket sessions on this node',
    registers,
    collect () { this.set(sessions.size) }
  })
  // a series exists while its value is above zero
  new Gauge({
    name: 'sluice_connections',
    help: 'Open WebSocket connections on this node, by route and by product (of the first topic the socket subscribed or published to; "none" before that)',
    labelNames: ['route', 'product'],
    registers,
    collect () {
      this.reset()
      const counts = new Map<string, { route: string, product: string, n: number }>()
      for (const session of sessions.list()) {
        const product = session.product ?? 'none'
        const key = `${session.route}\n${product}`
        const entry = counts.get(key)
        if (entry) entry.n++
        else counts.set(key, { route: session.route, product, n: 1 })
      }
      for (const { route, product, n } of counts.values()) this.set({ route, product }, n)
    }
  })
  new Counter({
    name: 'sluice_publish_acks_total',
    help: 'Records published by clients and acknowledged by Kafka, by route',
    labelNames: ['route'],
    registers,
    collect () {
      this.reset()
      for (const [route, counts] of publishes.entries()) this.inc({ route }, counts.acks)
    }
  })
  new Counter({
    name: 'sluice_frame_failures_total',
    help: 'Client frames whose handling failed inside the per-frame boundary and were answered INTERNAL (each one is a bug in the gateway), by route',
    labelNames: ['route'],
    registers,
    collect () {
      this.reset()
      for (const [route, counts] of publishes.entries()) this.inc({ route }, counts.frameFailures)
    }
  })
  new Counter({
    name: 'sluice_publish_errors_total',
    help: 'Client publishes refused (by the gateway or by Kafka), by route and error code (docs/design.md\'s codes: FORBIDDEN, RATE_LIMITED, UNAVAILABLE, ...)',
    labelNames: ['route', 'code'],
    registers,
    collect () {
      this.reset()
      for (const [route, counts] of publishes.entries()) for (const [code, n] of counts.errors) this.inc({ route, code }, n)
    }
  })
  /* eslint-enable no-new */
}

export default fp(sessionsPlugin, { fastify: '5.x', name: 'sluice-sessions' })
