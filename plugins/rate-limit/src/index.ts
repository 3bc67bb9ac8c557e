// The rate-limit plugin: a plan's limits for every subject, in Redis token
// buckets shared by every node (limiter.ts), applied where docs/design.md's
// request path says:
//   - before the upgrade, after auth and the route's own checks: concurrent
//     connections and connects per minute of the subject's plan (429 with
//     Retry-After, or 503 when Redis is unreachable and the gateway fails closed);
//   - per publish and per delivered frame: the StreamGuard the WebSocket
//     routes take (`fastify.streamGuard`);
//   - HTTP routes (admin API, upgrade requests): @fastify/rate-limit per client
//     address, with its Redis store.
import fp from 'fastify-plugin'
import fastifyRateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import { gatewayDefaults } from '@sluice/config/gateway'
import type { Policy, PlanLimits } from '@sluice/policy'
import { subjectPlan } from '@sluice/policy/plans'
import type {} from '@sluice/protocol/identity'
import { RateLimiter, LIMIT_NAMES, MODES, type Mode, type RateLimiterOptions } from './limiter.ts'
import { RateGuard, type AbuseOptions } from './guard.ts'
import { httpStore } from './http-store.ts'
import { RateConnectsPerMinuteError, RateHttpLimitedError, RateTooManyConnectionsError, RateUnavailableError } from './errors.ts'

export { RateLimiter, subjectId, LIMIT_NAMES, MODES } from './limiter.ts'
export type { FailureMode, Mode, LimitName, PlanRef, RateLimiterOptions, ConnectionTicket, Refused } from './limiter.ts'
export { RateGuard, UNPLANNED } from './guard.ts'
export type { GuardedSession, PlanSource, AbuseOptions, RateGuardOptions } from './guard.ts'
export { DeliveryLease } from './lease.ts'
export { MemoryLimitStore } from './store.ts'
export type { LimitStore, Line, Put, TakeResult } from './store.ts'
export { RedisLimitStore, LIMIT_SCRIPT, defineLimitCommand } from './script.ts'
export * as errors from './errors.ts'

export interface HttpLimit {
  /** requests per window per client address */
  max: number
  timeWindowMs: number
}

/** The limiter's own options (documented on RateLimiterOptions), plus what the plugin wires. */
export interface RateLimitPluginOptions extends Pick<RateLimiterOptions, 'redis' | 'failure' | 'prefix' | 'nodeId' | 'now' | 'decisionTimeoutMs' | 'probeIntervalMs' | 'leaseMs' | 'publishLeaseMs' | 'connectionTtlMs' | 'leaseTtlMs'> {
  /** where plans come from: the live policy */
  policy: { readonly current: Policy | undefined, plan (name: string): PlanLimits | undefined }
  /** limits of a subject no rule grants anything */
  unplanned?: PlanLimits
  abuse?: Partial<AbuseOptions>
  /**
   * @fastify/rate-limit per client address: on upgrade requests, the admin API, and
   * every other route but the probes and /metrics (`public`, default on); false: off
   */
  http?: false | { upgrade: HttpLimit, admin: HttpLimit, public?: HttpLimit }
}

declare module 'fastify' {
  interface FastifyInstance {
    rateLimiter: RateLimiter
    /** what the WebSocket routes take as `guard` */
    streamGuard: RateGuard
  }
}

// The defaults of a plugin used without config: the gateway's schema's (rateLimit.*, packages/config/src/gateway.ts,
// which gives their reasons). A subject the policy grants nothing can open one socket (to be told what it may not
// do), and do nothing with it: no delivery, publish, bytes or daily quota (not config keys).
export const UNPLANNED_LIMITS: PlanLimits = { ...gatewayDefaults.rateLimit.unplanned, deliveredPerSecond: 0, publishedPerSecond: 0, bytesPerSecond: 0, dailyQuota: 0 }
export const DEFAULT_ABUSE: AbuseOptions = gatewayDefaults.rateLimit.abuse
const { upgrade, admin, public: publicRoutes } = gatewayDefaults.rateLimit.http
export const DEFAULT_HTTP = { upgrade, admin, public: publicRoutes }
// Asked by orchestrators and Prometheus, and needed most while a dependency is down: never limited
const UNLIMITED_ROUTES = new Set(['/healthz', '/readyz', '/metrics'])

function retryAfterSeconds (ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)))
}

function isWebSocketRoute (route: RouteOptions): boolean {
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  return (route as { websocket?: boolean }).websocket === true && !methods.every(m => m === 'HEAD')
}

async function rateLimitPlugin (fastify: FastifyInstance, opts: RateLimitPluginOptions): Promise<void> {
  const prefix = opts.prefix ?? gatewayDefaults.rateLimit.prefix
  const limiter = new RateLimiter({
    redis: opts.redis,
    failure: opts.failure,
    prefix,
    nodeId: opts.nodeId,
    now: opts.now,
    decisionTimeoutMs: opts.decisionTimeoutMs,
    probeIntervalMs: opts.probeIntervalMs,
    leaseMs: opts.leaseMs,
    publishLeaseMs: opts.publishLeaseMs,
    connectionTtlMs: opts.connectionTtlMs,
    leaseTtlMs: opts.leaseTtlMs,
    onModeChange (mode: Mode, previous: Mode, err?: Error) {
      if (mode === 'shared') fastify.log.info({ previous }, 'rate limits shared through Redis again')
      else fastify.log.warn({ mode, previous, err }, mode === 'local' ? 'Redis unreachable: rate limits fail open on local buckets' : 'Redis unreachable: rate limits fail closed')
    }
  })
  const guard = new RateGuard(limiter, {
    subjectPlan: identity => subjectPlan(opts.policy.current, identity),
    plan: name => opts.policy.plan(name)
  }, {
    unplanned: opts.unplanned ?? UNPLANNED_LIMITS,
    abuse: { ...DEFAULT_ABUSE, ...opts.abuse }
  })
  fastify.decorate('rateLimiter', limiter)
  fastify.decorate('streamGuard', guard)

  // ---- metrics: read from plain numbers at scrape time, the hot path makes no metric calls ----
  const registers = fastify.hasDecorator('metrics') ? [fastify.metrics] : []
  const stats = limiter.stats
  /* eslint-disable no-new */
  new Counter({
    name: 'sluice_rate_limit_allowed_total',
    help: 'Decisions that let a connection, publish, delivered frame or HTTP request through, by limit',
    labelNames: ['limit'],
    registers,
    collect () { this.reset(); for (const limit of LIMIT_NAMES) this.inc({ limit }, stats.allowed[limit]) }
  })
  new Counter({
    name: 'sluice_rate_limit_limited_total',
    help: 'Connections, publishes, delivered frames and HTTP requests refused by a limit, by limit',
    labelNames: ['limit'],
    registers,
    collect () { this.reset(); for (const limit of LIMIT_NAMES) this.inc({ limit }, stats.limited[limit]) }
  })
  new Counter({
    name: 'sluice_rate_limit_redis_errors_total',
    help: 'Redis errors and timeouts met by rate-limit decisions',
    registers,
    collect () { this.reset(); this.inc(stats.redisErrors) }
  })
  new Counter({
    name: 'sluice_rate_limit_redis_timeouts_total',
    help: 'Of the Redis errors, decisions Redis did not answer within rateLimit.decisionTimeoutMs, by whether this node\'s event loop was on time (on_time) or 50 ms or more late (late: its own load may have kept the answer unread)',
    labelNames: ['loop'],
    registers,
    collect () {
      this.reset()
      this.inc({ loop: 'on_time' }, stats.redisTimeouts.onTime)
      this.inc({ loop: 'late' }, stats.redisTimeouts.late)
    }
  })
  new Gauge({
    name: 'sluice_rate_limit_mode',
    help: '1 for the mode rate limits are in: memory (no Redis), shared (Redis), local (Redis unreachable, failing open), closed (failing closed)',
    labelNames: ['mode'],
    registers,
    collect () {
      const now = limiter.mode
      for (const mode of MODES) this.set({ mode }, mode === now ? 1 : 0)
    }
  })
  new Gauge({
    name: 'sluice_rate_limit_leases',
    help: 'Delivery leases (one per subject and plan with sockets on this node)',
    registers,
    collect () { this.set(limiter.leases) }
  })
  /* eslint-enable no-new */

  // ---- connection limits, before the upgrade ---------------------------------------------
  async function connectionLimit (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const identity = request.identity
    if (!request.ws || !identity) return undefined
    const plan = guard.planFor(identity)
    // the session it opens delivers: its subject's delivery lease is held from now, its first batch decided with the connect
    const decided = await limiter.acquire(identity.subject, plan, guard.leaseLimits(plan))
    if (!decided.ok) {
      const err = decided.limit === 'unavailable'
        ? new RateUnavailableError()
        : decided.limit === 'connections' ? new RateTooManyConnectionsError(plan.name) : new RateConnectsPerMinuteError(plan.name)
      request.log.info({ code: err.code, plan: plan.name }, 'connection refused by a rate limit')
      return reply.code(err.statusCode!).header('retry-after', retryAfterSeconds(decided.retryAfterMs)).header('cache-control', 'no-store')
        .send({ error: { code: err.code, message: err.message } })
    }
    // the slot is held while the connection lives: upgraded, until the socket closes; refused later, until the server closes it
    const socket = request.raw.socket as typeof request.raw.socket | undefined
    if (!socket || socket.destroyed) decided.release()
    else socket.once('close', () => decided.release())
    return undefined
  }

  const http = opts.http === undefined ? DEFAULT_HTTP : opts.http
  fastify.addHook('onRoute', route => {
    const config = (route.config ?? {}) as Record<string, unknown>
    if (isWebSocketRoute(route) && config.auth === true) {
      // after the route's own checks (the policy's 403 comes before a 429)
      const own = route.preValidation
      route.preValidation = [...(own === undefined ? [] : Array.isArray(own) ? own : [own]), connectionLimit]
    }
    if (http === false || config.rateLimit !== undefined) return
    const limit = isWebSocketRoute(route)
      ? http.upgrade
      : route.url.startsWith('/admin') ? http.admin : UNLIMITED_ROUTES.has(route.url) ? undefined : http.public ?? DEFAULT_HTTP.public
    if (limit) route.config = { ...config, rateLimit: { max: limit.max, timeWindow: limit.timeWindowMs } } as typeof route.config
  })

  if (http !== false) {
    await fastify.register(fastifyRateLimit, {
      global: false,
      store: httpStore(limiter, opts.redis, `${prefix}http:`),
      errorResponseBuilder: (_request, context) => new RateHttpLimitedError(context.after),
      onExceeding: () => { stats.allowed.http++ },
      onExceeded: () => { stats.limited.http++ }
    })
  }

  // before the Redis plugin's onClose (registered earlier, closed later) disconnects: the leases' unused tokens go back now
  fastify.addHook('onClose', async () => {
    await limiter.close()
  })
}

export default fp(rateLimitPlugin, { fastify: '5.x', name: 'sluice-rate-limit' })
