import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, type Registry } from 'prom-client'
// type-only: brings fastify.metrics into scope (optional: a suite's small app has no /metrics)
import type {} from '@sluice/metrics'
import { Readiness, DEFAULT_CHECK_TIMEOUT_MS } from './readiness.ts'
import { ResourceWatch, describe, type Resource, type ResourceReader, type ResourceState } from './resources.ts'

export { Readiness, DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_REUSE_MS } from './readiness.ts'
export type { ReadinessCheck, ReadinessReport } from './readiness.ts'
export { ResourceWatch, DEFAULT_NOT_READY_RATIO, DEFAULT_READY_RATIO } from './resources.ts'
export type { Resource, ResourceReader, ResourceState } from './resources.ts'

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

export interface HealthOptions {
  checkTimeoutMs?: number
  /** the node's own file descriptors and heap: not ready near their limits (false: not watched) */
  resources?: false | {
    /** how often they are read when nobody asks /readyz or /metrics, so an episode is logged and counted */
    intervalMs?: number
    notReadyRatio?: number
    readyRatio?: number
    reader?: ResourceReader
  }
}

// Between probes the watch reads the numbers once a second: an exhaustion is
// logged within a second of it, and the read costs 19 ms of a libuv pool thread
// at 19,000 descriptors (measured), well under 2 % of one.
const DEFAULT_RESOURCE_INTERVAL_MS = 1000
// /readyz, the timer and a scrape at the same moment share one read
const RESOURCE_REUSE_MS = 100
// the node's own state, shown in /readyz but not a dependency in sluice_dependency_up
const NODE_STATES = new Set(['drain', 'fds', 'heap'])

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
  const metrics = fastify.hasDecorator('metrics') ? fastify.metrics : undefined
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
          // the drain, descriptors and heap are this node's own state, not dependencies
          if (!NODE_STATES.has(dependency)) this.set({ dependency }, check.ok ? 1 : 0)
        }
      }
    })
  }

  if (opts.resources !== false) watchResources(fastify, readiness, metrics, opts.resources ?? {})

  fastify.addHook('preClose', async () => {
    readiness.drain('shutting down')
  })
}

function watchResources (fastify: FastifyInstance, readiness: Readiness, metrics: Registry | undefined, opts: Exclude<HealthOptions['resources'], false | undefined>): void {
  const log = fastify.log.child({ component: 'health' })
  const exhaustions = metrics
    ? new Counter({
      name: 'sluice_resource_exhaustions_total',
      help: 'Times a resource of this node reached its not-ready ratio of its limit (fds: open file descriptors against the soft RLIMIT_NOFILE; heap: V8 heap used against its limit)',
      labelNames: ['resource'],
      registers: [metrics]
    })
    : undefined
  const watch = new ResourceWatch({
    reader: opts.reader,
    notReadyRatio: opts.notReadyRatio,
    readyRatio: opts.readyRatio,
    // once per episode: the sample that crosses the line logs, the ones after it do not
    onExhausted (state) {
      exhaustions?.inc({ resource: state.resource })
      log.warn({ resource: state.resource, used: state.used, limit: state.limit }, `not ready: ${describe(state, watch.readyRatio)}`)
    },
    onRecovered (state) {
      log.info({ resource: state.resource, used: state.used, limit: state.limit }, `${state.resource} below ${Math.round(watch.readyRatio * 100)} % of its limit again: ready`)
    }
  })
  readiness.add('fds', () => watch.check('fds', RESOURCE_REUSE_MS))
  readiness.add('heap', () => watch.check('heap', RESOURCE_REUSE_MS))

  const timer = setInterval(() => {
    watch.sample(RESOURCE_REUSE_MS).catch(err => log.error({ err }, 'reading the open file descriptors failed'))
  }, opts.intervalMs ?? DEFAULT_RESOURCE_INTERVAL_MS)
  timer.unref()
  fastify.addHook('onClose', async () => clearInterval(timer))

  if (!metrics) return
  const gauge = (name: string, help: string, value: (states: Partial<Record<Resource, ResourceState>>) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [metrics],
      async collect () {
        const v = value(await watch.sample(RESOURCE_REUSE_MS))
        if (v === undefined) this.reset()
        else this.set(v)
      }
    })
  gauge('sluice_open_fds', 'File descriptors this process has open (entries of /proc/self/fd)', s => s.fds?.used)
  gauge('sluice_fd_limit', 'The soft limit on open file descriptors (RLIMIT_NOFILE, "Max open files" of /proc/self/limits)', s => s.fds?.limit)
  gauge('sluice_heap_used_bytes', 'V8 heap in use (v8.getHeapStatistics().used_heap_size)', s => s.heap?.used)
  gauge('sluice_heap_limit_bytes', 'The V8 heap limit (v8.getHeapStatistics().heap_size_limit)', s => s.heap?.limit)
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'sluice_resource_exhausted',
    help: '1 while the resource is above its not-ready ratio of its limit and not yet back below its ready ratio (then /readyz answers 503)',
    labelNames: ['resource'],
    registers: [metrics],
    async collect () {
      const states = await watch.sample(RESOURCE_REUSE_MS)
      this.reset()
      for (const state of Object.values(states)) this.set({ resource: state.resource }, state.exhausted ? 1 : 0)
    }
  })
}

export default fp(health, { fastify: '5.x', name: 'sluice-health' })
