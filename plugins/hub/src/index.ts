import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Gauge, Counter } from 'prom-client'
import { Hub, type HubOptions } from './hub.ts'

export { Hub } from './hub.ts'
export type { Outlet, StartPosition, SubscriptionTerms } from './outlet.ts'
export type { HubStats, TopicLag } from './stats.ts'
export type { TopicWatcher } from './topic-watch.ts'
export { parseCursor, formatCursor, formatPositions, isTopicName } from './cursor.ts'
export type { Cursor, Positions } from './cursor.ts'
export { nativeFormat, wireFrame, wireText, messageJson, encodeValue } from './frame.ts'
export { DEFAULT_WINDOW_BOUNDS, DEFAULT_NODE_WINDOW_BYTES } from './window.ts'
export type { WindowBounds } from './window.ts'
export type { FrameFormat } from './frame.ts'

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub
  }
}

export interface HubPluginOptions {
  nodeId: string
  graceMs?: number
  metadataMaxAgeMs?: number
  topicRefreshMs?: number
  /** each live feed's window of recent records, which resumes inside it are served from (HubOptions.window) */
  window?: HubOptions['window']
  /** HubOptions.backfillTimeoutMs (tests) */
  backfillTimeoutMs?: number
}

async function hubPlugin (fastify: FastifyInstance, opts: HubPluginOptions): Promise<void> {
  const hub = new Hub({ kafka: fastify.kafka, nodeId: opts.nodeId, graceMs: opts.graceMs, metadataMaxAgeMs: opts.metadataMaxAgeMs, topicRefreshMs: opts.topicRefreshMs, window: opts.window, backfillTimeoutMs: opts.backfillTimeoutMs, logger: fastify.log.child({ component: 'hub' }) })
  fastify.decorate('hub', hub)

  // Counters are read from the hub's plain numbers at scrape time: the hot path does no metric calls.
  const stats = hub.stats
  const counter = (name: string, help: string, read: () => number) => new Counter({
    name,
    help,
    registers: [fastify.metrics],
    collect () { this.reset(); this.inc(read()) }
  })
  counter('sluice_hub_deliveries_total', 'Frames written to sockets by the hub', () => stats.deliveries)
  counter('sluice_hub_drops_total', 'Records not delivered to a socket whose send queue was full or whose plan\'s delivery limit ran out, until it hears lagging or is evicted', () => stats.drops)
  counter('sluice_hub_evictions_total', 'Sockets closed with 4008 for being too slow', () => stats.evictions)
  counter('sluice_hub_lagging_total', 'lagging notices sent', () => stats.laggingNotices)
  counter('sluice_hub_catchups_total', 'Catch-up readers started (resume from a cursor or earliest)', () => stats.catchUps)
  counter('sluice_hub_records_gone_total', 'Records a resume asked for that Kafka no longer held (retention, DeleteRecords); each such gap is told to its client (a gap frame on /v1/stream)', () => stats.recordsGone)
  counter('sluice_hub_window_backfills_total', 'Topic feeds started by a resume that read its gap into the window first, so that the resumes behind it replay from memory', () => stats.backfills)
  counter('sluice_hub_window_backfills_cut_total', 'The same, where a partition was not read to its end within the time allowed, or its gap was larger than the window holds: its resumes read from Kafka', () => stats.backfillsCut)
  counter('sluice_hub_window_replays_total', 'Resumes and earliest served from a topic\'s window of recent records, with no Kafka reader (or with one only for what the window let go meanwhile)', () => stats.windowReplays)
  const gauge = (name: string, help: string, read: () => number) => new Gauge({
    name,
    help,
    registers: [fastify.metrics],
    collect () { this.set(read()) }
  })
  gauge('sluice_hub_consumers', 'Topics with a live Kafka consumer on this node', () => hub.consumers)
  gauge('sluice_hub_group_sessions', 'Sockets in consumer-group mode', () => stats.groupSessions)
  gauge('sluice_hub_window_bytes', 'Bytes held by the windows of recent records of every topic on this node (records and their frames), against its budget', () => hub.windows.bytes)

  // Labelled gauges are computed at scrape time from the live feeds: a topic's series goes away with its consumer.
  /* eslint-disable no-new */
  new Gauge({
    name: 'sluice_subscriptions',
    help: 'Topic subscriptions on this node, by product (a consumer-group socket counts once per topic of its group)',
    labelNames: ['product'],
    registers: [fastify.metrics],
    collect () {
      this.reset()
      for (const [product, n] of hub.subscriptionsByProduct()) this.set({ product }, n)
    }
  })
  new Gauge({
    name: 'sluice_hub_consumer_lag',
    help: 'Records in Kafka not yet read, per topic with a live consumer on this node (high watermark minus next offset, summed over partitions), by reader: live (the shared consumer), catchup (resumes and earliest, summed)',
    labelNames: ['topic', 'reader'],
    registers: [fastify.metrics],
    collect () {
      this.reset()
      for (const { topic, live, catchUp } of hub.lag()) {
        this.set({ topic, reader: 'live' }, live)
        this.set({ topic, reader: 'catchup' }, catchUp)
      }
    }
  })
  /* eslint-enable no-new */

  fastify.addHook('onClose', async () => {
    await hub.close()
  })
}

export default fp(hubPlugin, { fastify: '5.x', name: 'sluice-hub', dependencies: ['sluice-kafka', 'sluice-metrics'] })
