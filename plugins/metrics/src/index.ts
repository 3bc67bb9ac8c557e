import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { LoopDelaySampler, registerLoopDelay } from './loop-delay.ts'

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
  if (opts.defaultMetrics !== false) {
    const prefix = opts.prefix ?? 'sluice_'
    // prom-client's event-loop delay sampler wakes the loop 100 times a second, idle or not, and cannot be
    // left out of its defaults: it gets a period it never reaches (2^31 - 1 ms, 24.8 days), and its gauges
    // are replaced by ones of the same names fed by a sampler that slows down while the loop is idle
    // (loop-delay.ts)
    collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: 2 ** 31 - 1 })
    const sampler = new LoopDelaySampler()
    registerLoopDelay(registry, prefix, sampler)
    sampler.start()
    fastify.addHook('onClose', async () => sampler.stop())
    // prom-client counts open descriptors with a readdirSync of /proc/self/fd at every scrape: on the main
    // thread, in time with the number of sockets (11.9 ms of a 14.5-16 ms scrape at 10,000 descriptors,
    // 4.5 ms without it, Node 24 on 2 cores). The health plugin exports the same count as sluice_open_fds
    // from its own asynchronous read (plugins/health/src/resources.ts), so every socket's delivery does not
    // stall while a Prometheus server scrapes.
    registry.removeSingleMetric(`${prefix}process_open_fds`)
  }
  fastify.decorate('metrics', registry)
  fastify.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}

export default fp(metrics, { fastify: '5.x', name: 'sluice-metrics' })
