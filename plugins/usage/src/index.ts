// The usage plugin (issue 18): meters what each application does with each
// product (meter.ts), aggregates it in Redis per period and per UTC day
// (store.ts), and writes each closed period as CloudEvents to Kafka (emit.ts).
// Sessions count into it through the registry's meter hook; the rate-limit
// plugin counts the upgrades it refuses; the apps plugin serves the totals
// (GET /v1/developer/applications/:id/usage, GET /admin/usage).
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import type { Redis } from 'ioredis'
import type { KafkaClient } from '@sluice/kafka'
import type { Identity } from '@sluice/protocol/identity'
import { gatewayDefaults } from '@sluice/config/gateway'
import type {} from '@sluice/sessions'
import type {} from '@sluice/metrics'
// type-only: request.identity (auth) and request.ws (@fastify/websocket)
import type {} from '@sluice/auth'
import type {} from '@fastify/websocket'
import { UsageMeter, type MeteredSession } from './meter.ts'
import { UsageStore, periodOf, type Period } from './store.ts'
import { UsageEmitter } from './emit.ts'

export { UsageMeter, SessionUsage, productOf, ANY_PRODUCT } from './meter.ts'
export type { UsageLine } from './meter.ts'
export { UsageStore, periodOf, dayOf, DAY_TTL_S, PERIOD_TTL_S } from './store.ts'
export type { UsageTotals } from './store.ts'
export { UsageEmitter, eventId, EVENT_TYPE, EVENT_SOURCE } from './emit.ts'
export type { UsageEvent, UsageEventData } from './emit.ts'

export interface UsagePluginOptions {
  redis: Redis
  kafka: Pick<KafkaClient, 'produceBatch' | 'ensureTopics'>
  /** this node's name (the emit lock's holder) */
  nodeId: string
  /** the Kafka topic of usage events (default sluice.usage) */
  topic?: string
  /** a period's length in seconds (divides a day); default an hour */
  periodSeconds?: number
  /** how often a node writes its counts to Redis */
  flushMs?: number
  /** a closed period is emitted this long after its end */
  graceMs?: number
  prefix?: string
  now?: () => number
}

export interface Usage {
  readonly meter: UsageMeter
  readonly store: UsageStore
  readonly emitter: UsageEmitter
  readonly periodMs: number
  /** a refusal counted by code, for an identity with no session (an upgrade refused) */
  refused (identity: Identity, reason: string): void
  /** writes what this node counted to Redis now (and what a failed flush left) */
  flush (): Promise<void>
  /** emits every closed period due now; returns how many */
  check (): Promise<number>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** usage metering, when it is on (it needs Redis) */
    usage: Usage | undefined
  }
}

const defaults = gatewayDefaults.usage
// one attempt to emit a period holds it this long: produce requests time out well before (kafka.requestTimeoutMs).
// A node that dies while it emits holds its period this long: another node emits it after that
export const EMIT_LOCK_MS = 60_000
// a refusal's body is a short JSON error; a code is one of the catalogues' (SLUICE_<AREA>_<WHAT>, or a wire code)
const MAX_REFUSAL_BODY = 4096
const CODE = /^[A-Z][A-Z0-9_]{0,63}$/

async function usagePlugin (fastify: FastifyInstance, opts: UsagePluginOptions): Promise<void> {
  const now = opts.now ?? Date.now
  const periodMs = (opts.periodSeconds ?? defaults.periodSeconds) * 1000
  if (86_400_000 % periodMs !== 0) throw new Error(`usage.periodSeconds must divide a day (86400), not ${periodMs / 1000}`)
  const flushMs = opts.flushMs ?? defaults.flushMs
  const topic = opts.topic ?? defaults.topic
  const meter = new UsageMeter(now)
  const store = new UsageStore(opts.redis, opts.prefix ?? defaults.prefix)
  const log = fastify.log.child({ component: 'usage' })
  const emitter = new UsageEmitter({
    store,
    kafka: opts.kafka,
    topic,
    periodMs,
    graceMs: opts.graceMs ?? defaults.graceMs,
    lockMs: EMIT_LOCK_MS,
    node: opts.nodeId,
    log
  })

  // counts since the last flush belong to the period the last flush was in (flushes fall on period ends)
  let since = now()
  let failures = 0
  let flushing: Promise<void> = Promise.resolve()
  const flushNow = async (): Promise<void> => {
    const at = now()
    const period: Period = periodOf(since, periodMs)
    const lines = meter.take()
    since = at
    try {
      await store.flush(lines, period, periodOf(at, periodMs))
    } catch (err) {
      // kept for the next flush: a Redis outage delays the counts, loses none (they may land in a later period)
      meter.restore(lines)
      failures++
      log.warn({ err }, 'usage not written to Redis; kept for the next flush')
    }
  }
  const flush = (): Promise<void> => {
    flushing = flushing.then(flushNow)
    return flushing
  }
  let checking = false
  const check = async (): Promise<number> => {
    if (checking) return 0
    checking = true
    try {
      return await emitter.check(now())
    } catch (err) {
      log.warn({ err }, 'usage periods not checked')
      return 0
    } finally {
      checking = false
    }
  }

  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const schedule = (): void => {
    if (stopped) return
    const at = now()
    // at the next flush interval or the period's end, whichever is first: a period's counts are written as it closes
    const next = Math.min(at + flushMs, periodOf(at, periodMs).end)
    timer = setTimeout(() => {
      flush().then(() => check()).finally(schedule)
    }, Math.max(1, next - at))
    timer.unref()
  }

  const usage: Usage = {
    meter,
    store,
    emitter,
    periodMs,
    refused: (identity, reason) => meter.refused(identity, reason),
    flush,
    check
  }
  fastify.decorate('usage', usage)
  fastify.sessions.meter = {
    opened: session => meter.opened(session as MeteredSession),
    ended: session => meter.ended(session as MeteredSession),
    refused: (identity, reason) => meter.refused(identity, reason)
  }

  // every upgrade refused once its credential was known (the policy's 403, the rate limits' 429, 503s), by its code:
  // read off the error body every route answers with, so that no refusing plugin needs to know of metering
  fastify.addHook('onSend', async (request, reply, payload) => {
    if (!request.ws || request.identity === undefined || reply.statusCode < 400) return payload
    let code = `HTTP_${reply.statusCode}`
    if (typeof payload === 'string' && payload.length <= MAX_REFUSAL_BODY) {
      try {
        const named = (JSON.parse(payload) as { error?: { code?: unknown } }).error?.code
        if (typeof named === 'string' && CODE.test(named)) code = named
      } catch {}
    }
    meter.refused(request.identity, code)
    return payload
  })

  fastify.addHook('onReady', async () => {
    since = now()
    schedule()
  })
  // before Redis closes (registered earlier, closed later): what this node counted is written
  fastify.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
    fastify.sessions.meter = undefined
    await flush()
  })

  const registers = fastify.hasDecorator('metrics') ? [fastify.metrics] : []
  /* eslint-disable no-new */
  new Counter({
    name: 'sluice_usage_events_total',
    help: 'Usage events this node wrote to the usage topic (one per application, product and period)',
    registers,
    collect () { this.reset(); this.inc(emitter.events) }
  })
  new Counter({
    name: 'sluice_usage_flush_failures_total',
    help: 'Flushes of usage counts to Redis that failed (their counts went with a later flush)',
    registers,
    collect () { this.reset(); this.inc(failures) }
  })
  new Gauge({
    name: 'sluice_usage_sessions',
    help: 'Open sessions metered on this node',
    registers,
    collect () { this.set(meter.size) }
  })
  /* eslint-enable no-new */
}

export default fp(usagePlugin, { fastify: '5.x', name: 'sluice-usage', dependencies: ['sluice-sessions'] })
