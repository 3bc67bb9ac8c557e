import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Registry, collectDefaultMetrics } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    /** the app's Prometheus registry: plugins register their metrics here, never in prom-client's global one */
    metrics: Registry
  }
}

export interface MetricsOptions {
  /** process metrics (memory, event-loop delay, handles); off in tests that build many apps */
  defaultMetrics?: boolean
  prefix?: string
}

async function metrics (fastify: FastifyInstance, opts: MetricsOptions): Promise<void> {
  // one registry per app, so that two apps in one process (tests) never collide
  const registry = new Registry()
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: opts.prefix ?? 'sluice_' })
  fastify.decorate('metrics', registry)
  fastify.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}

export default fp(metrics, { fastify: '5.x', name: 'sluice-metrics' })
