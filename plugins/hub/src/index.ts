import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Gauge, Counter } from 'prom-client'
import { Hub } from './hub.ts'
import { SessionRegistry } from './sessions.ts'

export { Hub } from './hub.ts'
export type { Outlet, StartPosition, SubscriptionTerms, HubStats } from './hub.ts'
export { SessionRegistry } from './sessions.ts'
export type { LiveSession } from './sessions.ts'
export { parseCursor, formatCursor, formatPositions, isTopicName } from './cursor.ts'
export type { Cursor, Positions } from './cursor.ts'
export { nativeFormat, wireFrame, wireText, messageJson, encodeValue } from './frame.ts'
export type { FrameFormat } from './frame.ts'

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub
    sessions: SessionRegistry
  }
}

export interface HubPluginOptions {
  nodeId: string
  graceMs?: number
  metadataMaxAgeMs?: number
}

async function hubPlugin (fastify: FastifyInstance, opts: HubPluginOptions): Promise<void> {
  const hub = new Hub({ kafka: fastify.kafka, nodeId: opts.nodeId, graceMs: opts.graceMs, metadataMaxAgeMs: opts.metadataMaxAgeMs, logger: fastify.log.child({ component: 'hub' }) })
  const sessions = new SessionRegistry()
  fastify.decorate('hub', hub)
  fastify.decorate('sessions', sessions)

  // Counters are read from the hub's plain numbers at scrape time: the hot path does no metric calls.
  const stats = hub.stats
  const counter = (name: string, help: string, read: () => number) => new Counter({
    name,
    help,
    registers: [fastify.metrics],
    collect () { this.reset(); this.inc(read()) }
  })
  counter('sluice_hub_deliveries_total', 'Frames written to sockets by the hub', () => stats.deliveries)
  counter('sluice_hub_drops_total', 'Records not delivered to a socket whose send queue was full', () => stats.drops)
  counter('sluice_hub_evictions_total', 'Sockets closed with 4008 for being too slow', () => stats.evictions)
  counter('sluice_hub_lagging_total', 'lagging notices sent', () => stats.laggingNotices)
  counter('sluice_hub_catchups_total', 'Catch-up readers started (resume from a cursor or earliest)', () => stats.catchUps)
  const gauge = (name: string, help: string, read: () => number) => new Gauge({
    name,
    help,
    registers: [fastify.metrics],
    collect () { this.set(read()) }
  })
  gauge('sluice_hub_consumers', 'Topics with a live Kafka consumer on this node', () => hub.consumers)
  gauge('sluice_hub_group_sessions', 'Sockets in consumer-group mode', () => stats.groupSessions)
  gauge('sluice_sessions', 'Open WebSocket sessions on this node', () => sessions.size)

  fastify.addHook('onClose', async () => {
    await hub.close()
  })
}

export default fp(hubPlugin, { fastify: '5.x', name: 'sluice-hub', dependencies: ['sluice-kafka', 'sluice-metrics'] })
