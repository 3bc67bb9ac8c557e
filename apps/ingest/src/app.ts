// The ingest app's composition root: metrics → health → Kafka → the connector
// (every feed), registered explicitly. Building the app is separate from
// starting it (server.ts); the feeds connect when the app is ready and are
// flushed to Kafka when it closes.
import { readFileSync } from 'node:fs'
import type { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import health from '@sluice/health'
import metrics from '@sluice/metrics'
import kafka from '@sluice/kafka-plugin'
import { KafkaClient, securityFromConfig } from '@sluice/kafka'
import type { IngestConfig } from './config.ts'
import { Connector } from './connector.ts'
import { loggerOptions } from './logger.ts'
import { registerIngestMetrics } from './metrics.ts'

export type { IngestConfig, FeedConfig } from './config.ts'
export { Connector } from './connector.ts'
export { Feed } from './feed.ts'

declare module 'fastify' {
  interface FastifyInstance {
    ingest: Connector
  }
}

export interface BuildOptions {
  /** where the JSON log lines go (tests capture them); stdout otherwise */
  logStream?: Writable
  /** process metrics; off in tests that build many apps */
  defaultMetrics?: boolean
  /** the reconnect jitter's randomness */
  random?: () => number
}

/** Of the shutdown deadline, what the flush may use: the rest closes Kafka and the HTTP server. */
export function flushDeadlineMs (shutdownTimeoutMs: number): number {
  // 1 s closes kafkajs' connections and the server; a short deadline keeps four fifths for the flush
  return shutdownTimeoutMs - Math.min(1000, Math.floor(shutdownTimeoutMs / 5))
}

const INGEST_CLUSTER_RETRY = { retries: 1, initialRetryTime: 300, maxRetryTime: 1000 }

export async function buildApp (config: IngestConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = { ...loggerOptions(config.log.level), ...(options.logStream ? { stream: options.logStream } : {}) }
  const app: FastifyInstance = Fastify({ logger, return503OnClosing: true })

  await app.register(metrics, { defaultMetrics: options.defaultMetrics })
  await app.register(health)
  const client = new KafkaClient({
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId,
    connectionTimeoutMs: config.kafka.connectionTimeoutMs,
    requestTimeoutMs: config.kafka.requestTimeoutMs,
    // each feed retries its batch forever with its own backoff: a produce attempt need not wait
    // out kafkajs's nested connect retries (about 20 s with the broker down) to be seen failing
    clusterRetry: INGEST_CLUSTER_RETRY,
    security: securityFromConfig(config.kafka, readFileSync),
    logger: app.log.child({ component: 'kafka' })
  })
  await app.register(kafka, { client })

  const connector = new Connector({ feeds: config.feeds, kafka: client, logger: app.log.child({ component: 'ingest' }), random: options.random })
  app.decorate('ingest', connector)
  registerIngestMetrics(app.metrics, connector.feeds)
  app.readiness.add('feeds', () => connector.check())
  app.addHook('onReady', async () => {
    connector.start()
  })
  // preClose runs before the Kafka plugin's onClose: the buffers reach Kafka while it is still connected
  app.addHook('preClose', async () => {
    await connector.stop(flushDeadlineMs(config.server.shutdownTimeoutMs))
  })
  return app
}
