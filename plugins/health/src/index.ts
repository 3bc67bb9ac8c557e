import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Gauge, type Registry } from 'prom-client'
import { Readiness, DEFAULT_CHECK_TIMEOUT_MS } from './readiness.ts'

export { Readiness, DEFAULT_REUSE_MS } from './readiness.ts'
export type { ReadinessCheck, ReadinessReport } from './readiness.ts'

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

export interface HealthOptions {
  checkTimeoutMs?: number
}

async function health (fastify: FastifyInstance, opts: HealthOptions): Promise<void> {
  const readiness = new Readiness()
  const timeoutMs = opts.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS
  fastify.decorate('readiness', readiness)

  // Liveness says only that the event loop answers: a dependency being down is
  // not a reason for an orchestrator to restart this process.
  fastify.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))

  fastify.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const report = await readiness.report(timeoutMs)
    reply.code(report.ready ? 200 : 503)
    return { status: report.ready ? 'ready' : 'not ready', checks: report.checks }
  })

  // One gauge for every readiness check (kafka: a metadata request; redis: PING; policy: loaded),
  // asked when /metrics is scraped, with the same deadline as /readyz: an operator alerts on 0.
  const metrics = (fastify as unknown as { metrics?: Registry }).metrics
  if (metrics) {
    // eslint-disable-next-line no-new
    new Gauge({
      name: 'sluice_dependency_up',
      help: '1 when the dependency answered its readiness check at scrape time (kafka: metadata request, redis: PING, policy: loaded), else 0',
      labelNames: ['dependency'],
      registers: [metrics],
      async collect () {
        const report = await readiness.report(timeoutMs)
        this.reset()
        for (const [dependency, check] of Object.entries(report.checks)) {
          // the drain is this node's own state, not a dependency
          if (dependency !== 'drain') this.set({ dependency }, check.ok ? 1 : 0)
        }
      }
    })
  }

  fastify.addHook('preClose', async () => {
    readiness.drain('shutting down')
  })
}

export default fp(health, { fastify: '5.x', name: 'sluice-health' })
