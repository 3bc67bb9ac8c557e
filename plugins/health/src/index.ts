import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Readiness, DEFAULT_CHECK_TIMEOUT_MS } from './readiness.ts'

export { Readiness } from './readiness.ts'
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

  fastify.addHook('preClose', async () => {
    readiness.drain('shutting down')
  })
}

export default fp(health, { fastify: '5.x', name: 'sluice-health' })
