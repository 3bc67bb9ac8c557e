// Fastify-free: what every part of the limiter shares (limiter.ts composes
// them): the names of modes and limits, a decision's outcome, how a subject
// becomes a key, and LimiterCore, what a part asks of the limiter that owns
// the stores and the failure mode.
import { createHash } from 'node:crypto'
import type { PlanLimits } from '@sluice/policy'
import type { MemoryLimitStore, LimitStore, Put, TakeResult } from './store.ts'
import type { RedisLimitStore } from './script.ts'
import { NEVER } from './token-bucket.ts'

export type FailureMode = 'fail-open' | 'fail-closed'
/** memory: no Redis configured; shared: Redis; local / closed: Redis unreachable, failing open / closed */
export type Mode = 'memory' | 'shared' | 'local' | 'closed'
export const MODES: readonly Mode[] = ['memory', 'shared', 'local', 'closed']

/** The limits counted in metrics (a plan's, plus `http` for @fastify/rate-limit's routes). */
export type LimitName = keyof PlanLimits | 'http'
export const LIMIT_NAMES: readonly LimitName[] = ['connections', 'connectsPerMinute', 'publishedPerSecond', 'deliveredPerSecond', 'bytesPerSecond', 'dailyQuota', 'http']

export interface PlanRef {
  name: string
  limits: PlanLimits
}

export interface LimiterStats {
  allowed: Record<LimitName, number>
  limited: Record<LimitName, number>
  redisErrors: number
  /**
   * Of those, the decisions Redis did not answer within the decision timeout, by whether the deadline's timer
   * fired on time or LATE_LOOP_MS or more late (limiter.ts): `late` timeouts are the node's own load as much as Redis
   */
  redisTimeouts: { onTime: number, late: number }
}

export type Refused = { ok: false, limit: LimitName | 'unavailable', retryAfterMs: number }

// A refresh writes this many records as one decision: the node's connection counts (connections.ts) and its
// idle leases' records (delivery-limits.ts). One put each was 5,000 decisions (625 script calls) every 10 s
// on a node holding 5,000 subjects, and a tick that fell inside a drain's burst of resumes added them to it
// (bench/drain-resume.ts: 4,440 refresh puts on node B against 5,000 connects). A put is a few HSETs in Lua,
// so 64 of them hold Redis for well under a millisecond; a failed one loses only its chunk's renewals until
// the next tick.
export const REFRESH_CHUNK = 64

/** Writes refresh records to Redis, REFRESH_CHUNK a decision; a failed chunk tells the limiter. */
export function refreshInChunks (core: LimiterCore, shared: RedisLimitStore, puts: readonly Put[]): void {
  for (let i = 0; i < puts.length; i += REFRESH_CHUNK) shared.put(puts.slice(i, i + REFRESH_CHUNK)).catch(err => core.failed(err as Error))
}

// a concurrent-connection refusal has no natural wait: 5 s is a polite reconnect back-off
export const CONNECTION_RETRY_MS = 5000
// a limit of 0 never refills: ask again in a minute (a policy reload may have raised it)
const NEVER_RETRY_MS = 60_000

export const UNAVAILABLE = Symbol('unavailable')
export type Unavailable = typeof UNAVAILABLE

export type Decided<T> = { value: T, source: 'redis' | 'local' } | Unavailable

export function counters (): Record<LimitName, number> {
  return Object.fromEntries(LIMIT_NAMES.map(n => [n, 0])) as Record<LimitName, number>
}

// hashes of recent subjects: a publish would otherwise hash its subject every time
const SUBJECT_IDS_MAX = 10_000
const subjectIds = new Map<string, string>()

/** Subjects are hashed into keys: any text, fixed length, nothing of it readable in Redis. */
export function subjectId (subject: string): string {
  let id = subjectIds.get(subject)
  if (id === undefined) {
    id = createHash('sha256').update(subject).digest('base64url').slice(0, 22)
    if (subjectIds.size >= SUBJECT_IDS_MAX) subjectIds.clear()
    subjectIds.set(subject, id)
  }
  return id
}

export function retryMs (result: TakeResult, unknown: number): number {
  if (result.retryAfterMs === NEVER) return NEVER_RETRY_MS
  return result.retryAfterMs > 0 ? result.retryAfterMs : unknown
}

/** What the limiter's parts (connections, publish, delivery) ask of the limiter that owns the stores. */
export interface LimiterCore {
  readonly stats: LimiterStats
  readonly failure: FailureMode
  readonly node: string
  readonly now: () => number
  /** the Redis store, when Redis is configured (used or not) */
  readonly shared: RedisLimitStore | undefined
  /** the in-process store: no Redis, or Redis unreachable in fail-open mode */
  readonly local: MemoryLimitStore
  key (subject: string, plan: string, what: string): string
  /** a decision on the store in use, within the decision timeout (RateLimiter.decide) */
  exec<T> (op: (store: LimitStore) => Promise<T>): Promise<Decided<T>>
  /** Redis is configured and usable now (mode 'shared') */
  sharing (): boolean
  /** notices a change of mode (and does what it entails) */
  checkMode (): void
  failed (err: Error): void
  /** runs `flush` in this turn's check phase with the turn's other flushes, their Redis calls in one write (RateLimiter.atTurnEnd) */
  atTurnEnd (flush: () => void): void
}
