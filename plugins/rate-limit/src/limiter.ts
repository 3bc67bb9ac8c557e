// Fastify-free: every rate limit of a plan, as one node sees them. The
// buckets live in Redis (shared by every node) or, without Redis, in this
// process. When Redis is unreachable the configured failure mode applies
// within the decision timeout: fail-open serves from local buckets with the
// same limits, fail-closed refuses. Recovery needs nothing: the next decision
// after Redis is back is shared again, and this node's connection counts are
// written back to it at once.
//
// This file holds the stores, the mode and the decision; each kind of limit
// is a part of its own that decides through them (LimiterCore): connections.ts
// (concurrent connections and connects per minute), publish-limits.ts (the
// publish rate, leased) and delivery-limits.ts (delivery rates and the daily
// quota, leased).
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { gatewayDefaults } from '@sluice/config/gateway'
import type { PlanLimits } from '@sluice/policy'
import { MemoryLimitStore, type LimitStore } from './store.ts'
import { RedisLimitStore } from './script.ts'
import type { Bucket } from './token-bucket.ts'
import type { DeliveryLease } from './lease.ts'
import { counters, subjectId, UNAVAILABLE, type Decided, type FailureMode, type LimiterCore, type LimiterStats, type Mode, type PlanRef, type Refused } from './decision.ts'
import { ConnectionLimits, NOT_DECIDED, ticket, type ConnectionTicket, type Rider } from './connections.ts'
import { PublishLimits } from './publish-limits.ts'
import { DeliveryLeases } from './delivery-limits.ts'

export { MODES, LIMIT_NAMES, subjectId } from './decision.ts'
export type { FailureMode, Mode, LimitName, PlanRef, LimiterStats, Refused } from './decision.ts'
export type { ConnectionTicket } from './connections.ts'

export interface RateLimiterOptions {
  /** absent: one node, an in-process store */
  redis?: Redis
  failure?: FailureMode
  /** Redis key prefix */
  prefix?: string
  /** names this node in connection counts (made unique per instance) */
  nodeId?: string
  /** this node's clock: used only for local things (waits, back-off, the local store), never for a shared bucket */
  now?: () => number
  /** a decision waits at most this long for Redis before the failure mode applies */
  decisionTimeoutMs?: number
  /** after a Redis error, decisions stay local this long before Redis is tried again */
  probeIntervalMs?: number
  /** a delivery lease holds this much of the plan's per-second rates */
  leaseMs?: number
  /** a publish lease holds this much of the plan's publish rate (lease.ts says what it costs in accuracy across nodes) */
  publishLeaseMs?: number
  /** a node's connection count expires this long after its last refresh (it refreshes every third of it) */
  connectionTtlMs?: number
  /** a delivery lease's record in Redis expires this long after its last refill or renewal (renewed every third of it): a dead node's unused quota comes back then */
  leaseTtlMs?: number
  /** in a burst, the turns' Redis calls leave at most once this often (atTurnEnd); 0: every turn's at its end */
  burstCoalesceMs?: number
  onModeChange? (mode: Mode, previous: Mode, err?: Error): void
  onRedisError? (err: Error): void
}

// Defaults, each with its reason. Those that are config keys (rateLimit.decisionTimeoutMs, probeIntervalMs, leaseMs,
// connectionTtlMs) are the gateway's schema's, which gives their reasons (packages/config/src/gateway.ts)
const { decisionTimeoutMs: DEFAULT_DECISION_TIMEOUT_MS, probeIntervalMs: DEFAULT_PROBE_INTERVAL_MS, leaseMs: DEFAULT_LEASE_MS } = gatewayDefaults.rateLimit
// 100 ms of a plan's publish rate per node: N nodes can exceed the plan by N × 0.1 s of its rate in any window
// (lease.ts), and a node publishing at 20,000/s asks Redis about 20 times a second instead of 20,000. A plan
// under 10/s leases one token at a time: one Redis call per publish, as before leases, costs nothing at that rate
const DEFAULT_PUBLISH_LEASE_MS = 100
const DEFAULT_CONNECTION_TTL_MS = gatewayDefaults.rateLimit.connectionTtlMs
// a dead node's unused daily quota comes back within 30 s, as its connections do; live nodes renew every 10 s.
// A lease holds half a second of the plan's rate (DEFAULT_LEASE_MS), far less than a node delivers in 30 s
const DEFAULT_LEASE_TTL_MS = 30_000
// A deadline timer that fires this much after its time means the node's own event loop was blocked for as long:
// on an idle loop a timer is ~1 ms late. A timeout then says so, for the log line of the switch to local buckets
// ("Redis unreachable") names Redis where the node's own load may have kept its answer unread (a drain's burst of
// 5,000 resumes on a saturated 2-core node: 3-3,049 timeouts in 11 of 31 rounds, bench/README.md round 13)
const LATE_LOOP_MS = 50
// what ioredis rejects a command with when its commandTimeout passes (ioredis/built/Command.js; no error class)
const IOREDIS_COMMAND_TIMEOUT = 'Command timed out'
// In a burst of decisions (a flush less than this after the last one), the next flush waits until this long after
// the last: the decisions of the turns in between leave with it, in one write and full batches, where each turn's
// own flush was a write, a script call or more, and the reading of their answers. A decision waits at most this much
// longer, an upgrade twice (its address's count, then its connect); one after a quiet moment leaves in its own turn.
// In a drain of 5,000 resumes on one node (bench/drain-resume.ts --addresses 5000, cold and warm rounds, three runs
// each way alternated with this at 0, 2026-12-07 01:34-01:37 UTC): B's script calls 0.64-0.75 a resume at 0, 0.17-0.18
// at 5; its CPU from the drop to all live 1,900-2,260 ms at 0, 1,530-1,860 at 5; all live 2,046-2,452 ms at 0,
// 1,731-2,002 at 5. In earlier runs 1 ms kept 0.30 calls a resume, and 2, 5 and 10 ms did about as well as one another
export const BURST_COALESCE_MS = 5

interface Deadline {
  at: number
  reject (err: Error): void
  settled: boolean
}

export class RateLimiter {
  readonly stats: LimiterStats = { allowed: counters(), limited: counters(), redisErrors: 0, redisTimeouts: { onTime: 0, late: 0 } }
  readonly failure: FailureMode
  readonly node: string
  readonly now: () => number
  readonly #redis: Redis | undefined
  readonly #shared: RedisLimitStore | undefined
  readonly #local: MemoryLimitStore
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #probeMs: number
  readonly #options: RateLimiterOptions
  readonly #connections: ConnectionLimits
  readonly #publishes: PublishLimits
  readonly #deliveries: DeliveryLeases
  #downUntil = 0
  #mode: Mode
  /** this turn's flushes (atTurnEnd), in the order they were asked for */
  #turnFlushes: Array<() => void> = []
  readonly #coalesceMs: number
  /** when the last flushes ran (performance.now()) */
  #flushedAt = -Infinity
  /** decisions on Redis not yet answered, by deadline (decide()); those before the head are settled */
  #deadlines: Deadline[] = []
  #deadlineHead = 0
  #deadlineTimer: NodeJS.Timeout | undefined
  /** when the armed deadline timer is due (performance.now()) */
  #deadlineDue = 0
  readonly #onReady = () => {
    this.#downUntil = 0
    this.#checkMode()
  }

  readonly #onDown = () => this.#checkMode()

  constructor (options: RateLimiterOptions = {}) {
    this.#options = options
    this.failure = options.failure ?? gatewayDefaults.rateLimit.failure
    this.now = options.now ?? Date.now
    this.node = `${options.nodeId ?? 'node'}:${randomUUID().slice(0, 8)}`
    this.#redis = options.redis
    this.#shared = options.redis ? new RedisLimitStore(options.redis, flush => this.atTurnEnd(flush)) : undefined
    this.#local = new MemoryLimitStore(this.now)
    this.#prefix = options.prefix ?? gatewayDefaults.rateLimit.prefix
    this.#timeoutMs = options.decisionTimeoutMs ?? DEFAULT_DECISION_TIMEOUT_MS
    this.#probeMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS
    this.#coalesceMs = options.burstCoalesceMs ?? BURST_COALESCE_MS
    const core: LimiterCore = {
      stats: this.stats,
      failure: this.failure,
      node: this.node,
      now: this.now,
      shared: this.#shared,
      local: this.#local,
      key: (subject, plan, what) => this.key(subject, plan, what),
      exec: op => this.#exec(op),
      sharing: () => this.#currentMode() === 'shared',
      checkMode: () => this.#checkMode(),
      failed: err => this.failed(err),
      atTurnEnd: flush => this.atTurnEnd(flush)
    }
    this.#connections = new ConnectionLimits(core, options.connectionTtlMs ?? DEFAULT_CONNECTION_TTL_MS)
    this.#publishes = new PublishLimits(core, options.publishLeaseMs ?? DEFAULT_PUBLISH_LEASE_MS)
    this.#deliveries = new DeliveryLeases(core, {
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
      leaseTtlMs: options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
      probeMs: this.#probeMs
    })
    this.#mode = this.#currentMode()
    if (this.#redis) {
      this.#redis.on('ready', this.#onReady)
      this.#redis.on('close', this.#onDown)
      this.#redis.on('end', this.#onDown)
    }
  }

  /**
   * Runs `flush` in this turn's check phase (setImmediate, after the poll phase that read the
   * turn's requests), together with the other flushes asked for in the turn: the HTTP counts
   * (http-store.ts) and the connects (connections.ts). Each sends its script call synchronously,
   * and the Redis socket is corked around them, so the turn's calls leave in one write. A write
   * to Redis on this machine cost ~31 µs of the gateway's CPU (the receiver's TCP path and its
   * wake-up), and Redis calls were 12.6 % of gateway B's busy main thread while 5,000 clients
   * resumed on it (bench/drain-resume.ts --profile); most turns of that burst flush both kinds.
   * In a burst, turns come faster than that write is worth: a flush within BURST_COALESCE_MS of the
   * last one waits out the rest of it (a timer), and the turns in between add theirs to it.
   */
  atTurnEnd (flush: () => void): void {
    if (this.#turnFlushes.length === 0) {
      const wait = Math.ceil(this.#flushedAt + this.#coalesceMs - performance.now())
      if (wait >= 1) setTimeout(this.#runTurn, wait)
      else setImmediate(this.#runTurn)
    }
    this.#turnFlushes.push(flush)
  }

  readonly #runTurn = (): void => {
    this.#flushedAt = performance.now()
    const flushes = this.#turnFlushes
    this.#turnFlushes = []
    const stream = this.#redis?.status === 'ready' ? this.#redis.stream : undefined
    stream?.cork()
    try {
      for (const flush of flushes) flush()
    } finally {
      stream?.uncork()
    }
  }

  get mode (): Mode {
    this.#checkMode()
    return this.#mode
  }

  key (subject: string, plan: string, what: string): string {
    // the braces keep one subject's buckets in one Redis Cluster slot: a decision's keys are always together
    return `${this.#prefix}{${subjectId(subject)}:${plan}}:${what}`
  }

  #currentMode (): Mode {
    if (!this.#redis) return 'memory'
    if (this.#redis.status === 'ready' && this.now() >= this.#downUntil) return 'shared'
    return this.failure === 'fail-open' ? 'local' : 'closed'
  }

  #checkMode (err?: Error): void {
    const mode = this.#currentMode()
    if (mode === this.#mode) return
    const previous = this.#mode
    this.#mode = mode
    // the store that now decides learns this node's open connections at once
    if (mode === 'local') this.#connections.assert(this.#local)
    if (mode === 'shared') this.#connections.refresh()
    this.#options.onModeChange?.(mode, previous, err)
  }

  /** A Redis error or timeout: decide locally (or refuse) for a probe interval. */
  failed (err: Error): void {
    this.stats.redisErrors++
    this.#downUntil = this.now() + this.#probeMs
    this.#options.onRedisError?.(err)
    this.#checkMode(err)
  }

  /**
   * Runs a decision on Redis when it is usable, within the decision timeout;
   * otherwise (or when it fails) on the local store in fail-open mode, or
   * answers UNAVAILABLE in fail-closed mode. Never waits longer than the timeout.
   *
   * One promise a decision, settled by whichever comes first: Redis' answer, its error, or the deadline.
   * The timeout is the same for every decision, so deadlines come in the order decisions are asked: one
   * queue and one timer for all of them, where a timer and a race each cost two timer-list operations and
   * three promises a decision (8.5 MiB of what gateway B allocated in a drain of 5,000 resumes,
   * bench/drain-resume.ts --alloc-profile). An async decide() wrapping a promise that raced the deadline
   * allocated, with its closures, about 1.2 KB a decision more (a throwaway script: 5,000 connects and leases).
   */
  decide<T> (shared: () => Promise<T>, local: () => Promise<T>): Promise<Decided<T>> {
    if (!this.#redis || this.#currentMode() !== 'shared') {
      this.#checkMode()
      return this.#decideLocally(local)
    }
    return new Promise<Decided<T>>(resolve => {
      const entry: Deadline = {
        at: performance.now() + this.#timeoutMs,
        settled: false,
        reject: err => {
          try {
            this.failed(err)
            resolve(this.#decideLocally(local))
          } catch (thrown) {
            resolve(Promise.reject(thrown))
          }
        }
      }
      const onError = (err: Error): void => {
        if (entry.settled) return
        entry.settled = true
        // the Redis client's own command timeout (plugins/redis: a plain timer) is a timeout too. Its rejection
        // settles before the deadline's sweep (deferred to setImmediate) when both timers come due in one turn of
        // a late loop: how far past its own deadline the decision is now says how late the loop ran. Before its
        // deadline (a decision timeout above the client's), it is Redis's, and keeps the client's message
        if (err.message === IOREDIS_COMMAND_TIMEOUT) {
          const late = performance.now() - entry.at
          if (late >= LATE_LOOP_MS) err = this.#timedOut(late)
          else this.#countTimeout(late)
        }
        entry.reject(err)
      }
      let asked: Promise<T>
      try {
        asked = shared()
      } catch (err) {
        onError(err as Error)
        return
      }
      this.#deadlines.push(entry)
      if (this.#deadlineTimer === undefined) this.#armDeadline()
      asked.then(value => {
        if (entry.settled) return
        entry.settled = true
        resolve({ value, source: 'redis' })
      }, onError)
    })
  }

  /** What a decision is when Redis is not asked (or failed): UNAVAILABLE when failing closed, the local store's answer otherwise. */
  #decideLocally<T> (local: () => Promise<T>): Promise<Decided<T>> {
    if (this.#redis && this.failure === 'fail-closed') return Promise.resolve(UNAVAILABLE)
    try {
      return local().then(value => ({ value, source: 'local' as const }))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #armDeadline (): void {
    const queue = this.#deadlines
    let head = this.#deadlineHead
    while (head < queue.length && queue[head]!.settled) head++
    if (head === queue.length) {
      this.#deadlines = []
      this.#deadlineHead = 0
      this.#deadlineTimer = undefined
      return
    }
    if (head > 1024 && head * 2 > queue.length) {
      this.#deadlines = queue.slice(head)
      head = 0
    }
    this.#deadlineHead = head
    const now = performance.now()
    const wait = Math.max(1, Math.ceil(this.#deadlines[head]!.at - now))
    this.#deadlineDue = now + wait
    this.#deadlineTimer = setTimeout(this.#onDeadline, wait)
    // it stays armed until the head's deadline even when every decision was answered: it does not keep the
    // process alive for that (a decision waiting on Redis is kept alive by Redis's socket)
    this.#deadlineTimer.unref()
  }

  // timers run before the poll phase of the same turn of the event loop: on a busy loop (a burst of upgrades)
  // Redis' answer may be waiting in the socket when the timer fires. The timeout is declared after that poll
  // (setImmediate), so an answer that came in time is read first
  readonly #onDeadline = (): void => {
    // the timer also fires for decisions answered long ago (it stays armed): the error is made only for a timeout
    const late = performance.now() - this.#deadlineDue
    let error: Error | undefined
    setImmediate(() => {
      const now = performance.now()
      const queue = this.#deadlines
      let head = this.#deadlineHead
      for (; head < queue.length; head++) {
        const entry = queue[head]!
        if (entry.settled) continue
        if (entry.at > now) break
        entry.settled = true
        if (error) this.#countTimeout(late)
        error ??= this.#timedOut(late)
        entry.reject(error)
      }
      this.#deadlineHead = head
      this.#armDeadline()
    })
  }

  /** A decision Redis did not answer in time, the loop `lateMs` behind: counted, and the error it falls back on. */
  #timedOut (lateMs: number): Error {
    this.#countTimeout(lateMs)
    return new Error(lateMs >= LATE_LOOP_MS
      ? `Redis did not answer within ${this.#timeoutMs} ms, and this node's event loop ran ${Math.round(lateMs)} ms late: its own load may have kept the answer unread`
      : `Redis did not answer within ${this.#timeoutMs} ms`)
  }

  #countTimeout (lateMs: number): void {
    if (lateMs >= LATE_LOOP_MS) this.stats.redisTimeouts.late++
    else this.stats.redisTimeouts.onTime++
  }

  #exec<T> (op: (store: LimitStore) => Promise<T>): Promise<Decided<T>> {
    const shared = this.#shared
    return this.decide(() => op(shared!), () => op(this.#local))
  }

  // ---- the parts ------------------------------------------------------------------------

  /**
   * One new connection: a connect token and a slot, both or neither (connections.ts).
   *
   * `leaseLimits`: the connection will deliver (a WebSocket session asks the subject's delivery lease as it
   * starts), so the connection holds the lease from now until it is released, and a lease made now has its
   * first batch decided with the connect, in the same script call and after it: one decision a resume
   * where a new subject took two, a connect and then its session's first lease, each a Redis round trip.
   * In a drain of 5,000 resumes (bench/drain-resume.ts, 8 + 8 alternating rounds, 2026-12-06 16:04-16:08 UTC)
   * gateway B's CPU went from 1,970-2,860 ms (mean 2,543) to 2,290-2,710 (mean 2,440). A throwaway build
   * that granted the first batch locally, no decision at all, saved 13 %: what is left is the batch's own
   * arithmetic and its share of the call. A refused connect takes nothing from the lease's buckets.
   */
  async acquire (subject: string, plan: PlanRef, leaseLimits?: () => PlanLimits): Promise<ConnectionTicket | Refused> {
    if (!leaseLimits) return this.#connections.acquire(subject, plan)
    let rider: Rider | undefined
    const lease = this.#deliveries.lease(subject, plan.name, leaseLimits, lines => new Promise(resolve => { rider = { lines, settle: resolve } }))
    let decided: ConnectionTicket | Refused
    try {
      decided = await this.#connections.acquire(subject, plan, rider)
    } catch (err) {
      // a lease whose first refill waits on a rider nobody settles would never close
      rider?.settle(NOT_DECIDED)
      this.#deliveries.release(lease)
      throw err
    }
    if (!decided.ok) {
      this.#deliveries.release(lease)
      return decided
    }
    const connection = decided
    return ticket(() => {
      connection.release()
      this.#deliveries.release(lease)
    })
  }

  /** This node's open connections, per subject and plan (tests and admin read it). */
  connectionCount (subject: string, plan: string): number {
    return this.#connections.count(this.key(subject, plan, 'conn'))
  }

  /** One publish: a token of the plan's publish bucket, from this node's lease on it (publish-limits.ts). */
  publish (subject: string, plan: PlanRef): { ok: true } | Refused | Promise<{ ok: true } | Refused> {
    return this.#publishes.publish(subject, plan)
  }

  /** Subjects with a publish lease on this node (tests read it). */
  get publishLeases (): number {
    return this.#publishes.size
  }

  /** The node's delivery lease for a subject's plan, shared by its sockets on this node (delivery-limits.ts). */
  lease (subject: string, planName: string, limits: () => PlanLimits): DeliveryLease {
    return this.#deliveries.lease(subject, planName, limits)
  }

  /** A socket using the lease closed; the last one returns the lease's unused tokens. */
  releaseLease (lease: DeliveryLease): void {
    this.#deliveries.release(lease)
  }

  get leases (): number {
    return this.#deliveries.size
  }

  /** Stops the timers and gives every lease back (a clean shutdown): the unused tokens return at once, not when their records expire. */
  async close (): Promise<void> {
    this.#connections.stop()
    this.#publishes.stop()
    this.#deliveries.stop()
    await Promise.all([this.#publishes.close(), this.#deliveries.close()])
    if (this.#redis) {
      this.#redis.off('ready', this.#onReady)
      this.#redis.off('close', this.#onDown)
      this.#redis.off('end', this.#onDown)
    }
  }
}

export type { Bucket }
