// Fastify-free: every rate limit of a plan, as one node sees them. The
// buckets live in Redis (shared by every node) or, without Redis, in this
// process. When Redis is unreachable the configured failure mode applies
// within the decision timeout: fail-open serves from local buckets with the
// same limits, fail-closed refuses. Recovery needs nothing: the next decision
// after Redis is back is shared again, and this node's connection counts are
// written back to it at once.
import { createHash, randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { gatewayDefaults } from '@sluice/config/gateway'
import type { PlanLimits } from '@sluice/policy'
import { MemoryLimitStore, type LimitStore, type Line, type Put, type TakeResult } from './store.ts'
import { RedisLimitStore } from './script.ts'
import { NEVER, type Bucket, type DailyBucket, type DailyLease, type RateBucket, type SlotBucket } from './token-bucket.ts'
import { DeliveryLease, PublishLease, type DeliveryLimit, type LeaseBatch, type LeaseGrant, type PublishGrant, type PublishTake } from './lease.ts'

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
}

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
  onModeChange? (mode: Mode, previous: Mode, err?: Error): void
  onRedisError? (err: Error): void
}

export type Refused = { ok: false, limit: LimitName | 'unavailable', retryAfterMs: number }

export interface ConnectionTicket {
  ok: true
  /** the socket closed: its slot is freed (idempotent) */
  release (): void
}

// Defaults, each with its reason. Those that are config keys (rateLimit.decisionTimeoutMs, probeIntervalMs, leaseMs,
// connectionTtlMs) are the gateway's schema's, which gives their reasons (packages/config/src/gateway.ts)
const { decisionTimeoutMs: DEFAULT_DECISION_TIMEOUT_MS, probeIntervalMs: DEFAULT_PROBE_INTERVAL_MS, leaseMs: DEFAULT_LEASE_MS } = gatewayDefaults.rateLimit
// 100 ms of a plan's publish rate per node: N nodes can exceed the plan by N × 0.1 s of its rate in any window
// (lease.ts), and a node publishing at 20,000/s asks Redis about 20 times a second instead of 20,000. A plan
// under 10/s leases one token at a time: one Redis call per publish, as before leases, costs nothing at that rate
const DEFAULT_PUBLISH_LEASE_MS = 100
// a publish lease unused this long, or granted this long ago, goes back to Redis: a subject that stopped
// publishing holds nothing on this node after a second, and no token is spent more than ~2 s after Redis granted it
const PUBLISH_LEASE_RETURN_MS = 1000
const DEFAULT_CONNECTION_TTL_MS = gatewayDefaults.rateLimit.connectionTtlMs
// a dead node's unused daily quota comes back within 30 s, as its connections do; live nodes renew every 10 s.
// A lease holds half a second of the plan's rate (DEFAULT_LEASE_MS), far less than a node delivers in 30 s
const DEFAULT_LEASE_TTL_MS = 30_000
// a concurrent-connection refusal has no natural wait: 5 s is a polite reconnect back-off
const CONNECTION_RETRY_MS = 5000
// a limit of 0 never refills: ask again in a minute (a policy reload may have raised it)
const NEVER_RETRY_MS = 60_000

const UNAVAILABLE = Symbol('unavailable')
type Unavailable = typeof UNAVAILABLE

function counters (): Record<LimitName, number> {
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

function retryMs (result: TakeResult, unknown: number): number {
  if (result.retryAfterMs === NEVER) return NEVER_RETRY_MS
  return result.retryAfterMs > 0 ? result.retryAfterMs : unknown
}

/** Connects on one subject's plan waiting for the same script call (coalesced within one turn of the event loop). */
interface ConnectBatch {
  connects: RateBucket
  slots: SlotBucket
  waiters: Array<(decided: Decided<TakeResult>) => void>
}

type Decided<T> = { value: T, source: 'redis' | 'local' } | Unavailable

interface ConnectionCount {
  bucket: SlotBucket
  /** admitted and open */
  count: number
  /** being decided: counted in refreshes, so a refresh never undercounts */
  pending: number
}

export class RateLimiter {
  readonly stats: LimiterStats = { allowed: counters(), limited: counters(), redisErrors: 0 }
  readonly failure: FailureMode
  readonly node: string
  readonly now: () => number
  readonly #redis: Redis | undefined
  readonly #shared: RedisLimitStore | undefined
  readonly #local: MemoryLimitStore
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #probeMs: number
  readonly #leaseMs: number
  readonly #publishLeaseMs: number
  readonly #ttlMs: number
  readonly #leaseTtlMs: number
  readonly #renewEveryMs: number
  readonly #connections = new Map<string, ConnectionCount>()
  readonly #connectBatches = new Map<string, ConnectBatch>()
  /** this turn's batches, in the order they began (the map finds a subject's) */
  #connectQueue: ConnectBatch[] = []
  #connectsScheduled = false
  readonly #leases = new Map<string, { lease: DeliveryLease, users: number }>()
  readonly #leaseKeys = new WeakMap<DeliveryLease, string>()
  /** per subject and plan with publishes on this node lately: the lease, and the plan its last publish named */
  readonly #publishLeases = new Map<string, { lease: PublishLease, plan: PlanRef }>()
  #publishTimer: NodeJS.Timeout | undefined
  /** per lease, how to renew its record in Redis */
  readonly #renewals = new WeakMap<DeliveryLease, () => Put | undefined>()
  /** leases given back and not yet answered: close() waits for them */
  readonly #closing = new Set<Promise<void>>()
  #leaseSeq = 0
  #renewTimer: NodeJS.Timeout | undefined
  readonly #options: RateLimiterOptions
  #downUntil = 0
  #mode: Mode
  #refreshTimer: NodeJS.Timeout | undefined
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
    this.#shared = options.redis ? new RedisLimitStore(options.redis) : undefined
    this.#local = new MemoryLimitStore(this.now)
    this.#prefix = options.prefix ?? gatewayDefaults.rateLimit.prefix
    this.#timeoutMs = options.decisionTimeoutMs ?? DEFAULT_DECISION_TIMEOUT_MS
    this.#probeMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS
    this.#publishLeaseMs = options.publishLeaseMs ?? DEFAULT_PUBLISH_LEASE_MS
    this.#ttlMs = options.connectionTtlMs ?? DEFAULT_CONNECTION_TTL_MS
    this.#leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS
    // a record is renewed three times in its life: one lost or late renewal does not let it expire
    this.#renewEveryMs = Math.max(100, Math.floor(this.#leaseTtlMs / 3))
    this.#mode = this.#currentMode()
    if (this.#redis) {
      this.#redis.on('ready', this.#onReady)
      this.#redis.on('close', this.#onDown)
      this.#redis.on('end', this.#onDown)
    }
    this.#refreshTimer = setInterval(() => { this.#refreshConnections() }, Math.max(100, Math.floor(this.#ttlMs / 3)))
    this.#refreshTimer.unref()
    this.#renewTimer = setInterval(() => { this.#renewLeases() }, this.#renewEveryMs)
    this.#renewTimer.unref()
    this.#publishTimer = setInterval(() => { this.#returnPublishLeases(false) }, PUBLISH_LEASE_RETURN_MS)
    this.#publishTimer.unref()
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
    if (mode === 'local') this.#assertConnections(this.#local)
    if (mode === 'shared') this.#refreshConnections()
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
   */
  async decide<T> (shared: () => Promise<T>, local: () => Promise<T>): Promise<Decided<T>> {
    if (this.#redis && this.#currentMode() === 'shared') {
      let timer: NodeJS.Timeout | undefined
      try {
        const value = await Promise.race([
          shared(),
          new Promise<never>((_resolve, reject) => {
            // timers run before the poll phase of the same turn of the event loop: on a busy loop (a burst of
            // upgrades) Redis' answer may be waiting in the socket when the timer fires. The timeout is
            // declared after that poll (setImmediate), so an answer that came in time is read first
            timer = setTimeout(() => setImmediate(() => reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms`))), this.#timeoutMs)
          })
        ])
        return { value, source: 'redis' }
      } catch (err) {
        this.failed(err as Error)
      } finally {
        clearTimeout(timer)
      }
    } else {
      this.#checkMode()
    }
    if (this.#redis && this.failure === 'fail-closed') return UNAVAILABLE
    return { value: await local(), source: 'local' }
  }

  #exec<T> (op: (store: LimitStore) => Promise<T>): Promise<Decided<T>> {
    const shared = this.#shared
    return this.decide(() => op(shared!), () => op(this.#local))
  }

  // ---- connections: concurrent per subject and plan, and connects per minute ---------

  #connectBuckets (subject: string, plan: PlanRef): { connects: RateBucket, slots: SlotBucket } {
    return {
      connects: { kind: 'rate', key: this.key(subject, plan.name, 'connects'), capacity: plan.limits.connectsPerMinute, perSecond: plan.limits.connectsPerMinute / 60 },
      slots: { kind: 'slots', key: this.key(subject, plan.name, 'conn'), capacity: plan.limits.connections, node: this.node, ttlMs: this.#ttlMs }
    }
  }

  /** One new connection: a connect token and a slot, both or neither. */
  async acquire (subject: string, plan: PlanRef): Promise<ConnectionTicket | Refused> {
    const { connects, slots } = this.#connectBuckets(subject, plan)
    let entry = this.#connections.get(slots.key)
    if (!entry) {
      entry = { bucket: slots, count: 0, pending: 0 }
      this.#connections.set(slots.key, entry)
    }
    const counted = entry
    counted.pending++
    let decided
    try {
      decided = await this.#takeConnect(connects, slots)
    } finally {
      counted.pending--
    }
    if (decided === UNAVAILABLE) {
      this.#forget(counted)
      return { ok: false, limit: 'unavailable', retryAfterMs: CONNECTION_RETRY_MS }
    }
    const result = decided.value
    if (!result.ok) {
      this.#forget(counted)
      const limit = result.limitedBy?.kind === 'slots' ? 'connections' : 'connectsPerMinute'
      this.stats.limited[limit]++
      return { ok: false, limit, retryAfterMs: retryMs(result, CONNECTION_RETRY_MS) }
    }
    this.stats.allowed.connections++
    this.stats.allowed.connectsPerMinute++
    counted.count++
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        counted.count--
        this.#forget(counted)
        this.#exec(store => store.put([{ bucket: slots, amount: 1 }])).catch(() => {})
      }
    }
  }

  /**
   * One connect's decision, coalesced: the connects on one subject's plan that
   * arrive within one turn of the event loop go to Redis as one script call
   * that takes N (a burst of 1,000 upgrades from one client costs a handful of
   * calls, not 1,000); the first `granted` of them in arrival order are let
   * in, the others are refused with the limit and wait the call names. The
   * batches of every subject in that turn leave together, as one script call
   * (5,000 clients resuming at once are a few hundred calls, not 5,000).
   */
  #takeConnect (connects: RateBucket, slots: SlotBucket): Promise<Decided<TakeResult>> {
    let batch = this.#connectBatches.get(slots.key)
    if (!batch || batch.connects.key !== connects.key) {
      const fresh: ConnectBatch = { connects, slots, waiters: [] }
      batch = fresh
      this.#connectBatches.set(slots.key, fresh)
      this.#connectQueue.push(fresh)
      // after this turn's poll phase: every upgrade it read is in the batch
      if (!this.#connectsScheduled) {
        this.#connectsScheduled = true
        setImmediate(this.#flushAllConnects)
      }
    }
    const waiters = batch.waiters
    return new Promise(resolve => waiters.push(resolve))
  }

  /** Every subject's batch of this turn: their decisions leave Redis-bound together, as one script call (script.ts). */
  readonly #flushAllConnects = (): void => {
    this.#connectsScheduled = false
    const batches = this.#connectQueue
    this.#connectQueue = []
    this.#connectBatches.clear()
    // each flush queues its decision synchronously (decide() calls the store before its first await)
    this.#shared?.cork()
    for (const batch of batches) this.#flushConnects(batch).catch(() => {})
    this.#shared?.uncork()
  }

  async #flushConnects (batch: ConnectBatch): Promise<void> {
    const { connects, slots, waiters } = batch
    let decided: Decided<TakeResult>
    try {
      decided = await this.#exec(store => store.take([{ buckets: [connects, slots], want: waiters.length, min: 1 }]))
    } catch (err) {
      // the local store does not throw; should it, every connect of the batch is refused as unavailable
      this.failed(err as Error)
      decided = UNAVAILABLE
    }
    if (decided === UNAVAILABLE) {
      for (const resolve of waiters) resolve(UNAVAILABLE)
      return
    }
    const { value: result, source } = decided
    const granted = result.ok ? result.granted[0]! : 0
    const refused: TakeResult = { ok: false, granted: [0], retryAfterMs: result.retryAfterMs, limitedBy: result.limitedBy }
    waiters.forEach((resolve, i) => resolve({ value: i < granted ? { ok: true, granted: [1], retryAfterMs: 0 } : refused, source }))
  }

  #forget (entry: ConnectionCount): void {
    if (entry.count <= 0 && entry.pending <= 0 && this.#connections.get(entry.bucket.key) === entry) this.#connections.delete(entry.bucket.key)
  }

  /** This node's open connections, per subject and plan (tests and admin read it). */
  connectionCount (subject: string, plan: string): number {
    return this.#connections.get(this.key(subject, plan, 'conn'))?.count ?? 0
  }

  #assertConnections (store: MemoryLimitStore): void {
    store.putNow([...this.#connections.values()].map(e => ({ bucket: e.bucket, amount: e.count + e.pending, absolute: true })))
  }

  /** Writes this node's counts again (absolute), so that they outlive their TTL and survive a Redis restart. */
  #refreshConnections (): void {
    const entries = [...this.#connections.values()]
    if (entries.length === 0) return
    if (this.#shared && this.#currentMode() === 'shared') {
      const shared = this.#shared
      for (const e of entries) {
        shared.put([{ bucket: e.bucket, amount: e.count + e.pending, absolute: true }]).catch(err => this.failed(err as Error))
      }
    } else {
      this.#assertConnections(this.#local)
    }
  }

  // ---- publish --------------------------------------------------------------------------

  /**
   * One publish: one token of the plan's per-second publish bucket, from this
   * node's lease on it (lease.ts): at once while the lease holds tokens, else
   * after a refill shared with the other publishes waiting on this node.
   */
  publish (subject: string, plan: PlanRef): { ok: true } | Refused | Promise<{ ok: true } | Refused> {
    // failing closed refuses every publish while Redis is out, as before leases: tokens leased before do not outlive it
    if (this.#redis && this.failure === 'fail-closed' && this.#currentMode() !== 'shared') {
      this.#checkMode()
      return { ok: false, limit: 'unavailable', retryAfterMs: CONNECTION_RETRY_MS }
    }
    const key = this.key(subject, plan.name, 'pub')
    let held = this.#publishLeases.get(key)
    if (held) held.plan = plan
    else {
      held = { lease: this.#publishLease(key, plan), plan }
      this.#publishLeases.set(key, held)
    }
    const taken = held.lease.take()
    return taken instanceof Promise ? taken.then(t => this.#published(t)) : this.#published(taken)
  }

  #published (taken: PublishTake): { ok: true } | Refused {
    if (taken.ok) {
      this.stats.allowed.publishedPerSecond++
      return taken
    }
    if (taken.unavailable) return { ok: false, limit: 'unavailable', retryAfterMs: CONNECTION_RETRY_MS }
    this.stats.limited.publishedPerSecond++
    return { ok: false, limit: 'publishedPerSecond', retryAfterMs: taken.retryAfterMs }
  }

  #publishLease (key: string, first: PlanRef): PublishLease {
    const planOf = (): PlanRef => this.#publishLeases.get(key)?.plan ?? first
    const bucket = (): RateBucket => {
      const limits = planOf().limits
      return { kind: 'rate', key, capacity: limits.publishedPerSecond, perSecond: limits.publishedPerSecond }
    }
    return new PublishLease({
      now: this.now,
      slice: () => {
        const rate = planOf().limits.publishedPerSecond
        return Math.max(1, Math.min(rate, Math.ceil(rate * this.#publishLeaseMs / 1000)))
      },
      refill: async (tokens): Promise<PublishGrant> => {
        const decided = await this.#exec(store => store.take([{ buckets: [bucket()], want: tokens, min: 1 }]))
        if (decided === UNAVAILABLE) return { ok: false, unavailable: true, retryAfterMs: CONNECTION_RETRY_MS }
        const result = decided.value
        if (result.ok) return { ok: true, tokens: result.granted[0]!, source: decided.source, retryAfterMs: result.retryAfterMs > 0 ? result.retryAfterMs : 0 }
        return { ok: false, unavailable: false, retryAfterMs: retryMs(result, 1000) }
      },
      giveBack: async (tokens, source) => {
        const put: Put = { bucket: bucket(), amount: tokens }
        if (source === 'local') this.#local.putNow([put])
        else if (this.#shared && this.#currentMode() === 'shared') await this.#shared.put([put])
      }
    })
  }

  /** Publish leases idle or granted over PUBLISH_LEASE_RETURN_MS ago (all of them: `all`) give their tokens back. */
  #returnPublishLeases (all: boolean): void {
    const now = this.now()
    for (const [key, { lease }] of this.#publishLeases) {
      if (!all && (lease.refilling || lease.waiting > 0)) continue
      if (!all && now - lease.usedAt < PUBLISH_LEASE_RETURN_MS && now - lease.grantedAt < PUBLISH_LEASE_RETURN_MS) continue
      // out of the map first: the next publish of the subject starts a new lease, never takes from this one
      this.#publishLeases.delete(key)
      const closing = lease.close().catch(() => {}).finally(() => { this.#closing.delete(closing) })
      this.#closing.add(closing)
    }
  }

  /** Subjects with a publish lease on this node (tests read it). */
  get publishLeases (): number {
    return this.#publishLeases.size
  }

  // ---- delivery -------------------------------------------------------------------------

  /**
   * The node's lease for a subject's plan, shared by its sockets on this node.
   * `limits` is asked at every refill, so a policy reload applies to live sockets.
   */
  lease (subject: string, planName: string, limits: () => PlanLimits): DeliveryLease {
    const key = this.key(subject, planName, 'lease')
    const held = this.#leases.get(key)
    if (held) {
      held.users++
      return held.lease
    }
    // the lease's record in Redis: this node's, expiring unless renewed
    const id = `${this.node}:${++this.#leaseSeq}`
    // when Redis last heard what this lease holds (a refill renews its record as a renewal does)
    let reportedAt = 0
    const buckets = (held = 0): { messages: RateBucket, bytes: RateBucket, daily: DailyBucket } => {
      const l = limits()
      const lease: DailyLease = { id, ttlMs: this.#leaseTtlMs, held }
      return {
        messages: { kind: 'rate', key: this.key(subject, planName, 'msg'), capacity: l.deliveredPerSecond, perSecond: l.deliveredPerSecond },
        bytes: { kind: 'rate', key: this.key(subject, planName, 'bytes'), capacity: l.bytesPerSecond, perSecond: l.bytesPerSecond },
        daily: { kind: 'daily', key: this.key(subject, planName, 'day'), capacity: l.dailyQuota, lease }
      }
    }
    const batch = (): LeaseBatch => {
      const l = limits()
      const share = this.#leaseMs / 1000
      return {
        messages: Math.max(1, Math.min(l.deliveredPerSecond, Math.ceil(l.deliveredPerSecond * share))),
        bytes: Math.max(1, Math.min(l.bytesPerSecond, Math.ceil(l.bytesPerSecond * share)))
      }
    }
    const lease = new DeliveryLease({
      now: this.now,
      batch,
      refill: async (messages, bytes, held): Promise<LeaseGrant> => {
        const b = buckets(held)
        const lines: Line[] = [
          { buckets: [b.messages, b.daily], want: messages, min: 1 },
          { buckets: [b.bytes], want: bytes, min: 1 }
        ]
        const decided = await this.#exec(store => store.take(lines))
        if (decided === UNAVAILABLE) return { ok: false, limit: 'unavailable', retryAfterMs: this.#probeMs }
        if (decided.source === 'redis') reportedAt = this.now()
        const result = decided.value
        if (result.ok) return { ok: true, messages: result.granted[0]!, bytes: result.granted[1]!, source: decided.source }
        const limit: DeliveryLimit = result.limitedBy === b.daily ? 'dailyQuota' : result.limitedBy === b.bytes ? 'bytes' : 'delivered'
        return { ok: false, limit, retryAfterMs: retryMs(result, 1000) }
      },
      giveBack: async (messages, bytes, source) => {
        const b = buckets()
        // tokens go back only to the store that granted them; the lease's record in Redis ends in any case
        // (an earlier refill may have come from Redis): Redis credits back no more than the record holds
        const shared = this.#shared
        const fromRedis = source === 'redis'
        const puts: Put[] = [{ bucket: b.daily, amount: fromRedis ? messages : 0 }]
        if (fromRedis && messages > 0) puts.push({ bucket: b.messages, amount: messages })
        if (fromRedis && bytes > 0) puts.push({ bucket: b.bytes, amount: bytes })
        if (shared && this.#currentMode() === 'shared') await shared.put(puts).catch(() => {})
        if (source === 'local') this.#local.putNow([{ bucket: b.messages, amount: messages }, { bucket: b.daily, amount: messages }, { bucket: b.bytes, amount: bytes }])
      }
    })
    // renewed only while Redis granted its last refill, no refill is on its way (whose grant the count would
    // miss), and no refill reported to Redis within the renewal interval (a busy lease renews itself)
    this.#renewals.set(lease, () => lease.grantedBy === 'redis' && !lease.refilling && this.now() - reportedAt >= this.#renewEveryMs
      ? { bucket: buckets().daily, amount: Math.max(0, Math.floor(lease.messages)), absolute: true }
      : undefined)
    this.#leases.set(key, { lease, users: 1 })
    this.#leaseKeys.set(lease, key)
    // the first batch is asked for now: the socket subscribes next, and its first frames find tokens
    lease.primed = lease.refill().catch(() => {})
    return lease
  }

  /** A socket using the lease closed; the last one returns the lease's unused tokens. */
  releaseLease (lease: DeliveryLease): void {
    const key = this.#leaseKeys.get(lease)
    const held = key === undefined ? undefined : this.#leases.get(key)
    if (!held || held.lease !== lease) return
    if (--held.users > 0) return
    this.#leases.delete(key!)
    this.#closeLease(lease)
  }

  #closeLease (lease: DeliveryLease): void {
    const closing = lease.close().catch(() => {}).finally(() => { this.#closing.delete(closing) })
    this.#closing.add(closing)
  }

  /** Writes each held lease's count to its record in Redis, so that it outlives its TTL while this node lives. */
  #renewLeases (): void {
    const shared = this.#shared
    if (!shared || this.#currentMode() !== 'shared') return
    for (const { lease } of this.#leases.values()) {
      const put = this.#renewals.get(lease)?.()
      if (put) shared.put([put]).catch(err => this.failed(err as Error))
    }
  }

  get leases (): number {
    return this.#leases.size
  }

  /** Stops the timers and gives every lease back (a clean shutdown): the unused tokens return at once, not when their records expire. */
  async close (): Promise<void> {
    clearInterval(this.#refreshTimer)
    clearInterval(this.#renewTimer)
    clearInterval(this.#publishTimer)
    this.#returnPublishLeases(true)
    for (const { lease } of this.#leases.values()) this.#closeLease(lease)
    this.#leases.clear()
    await Promise.all([...this.#closing])
    if (this.#redis) {
      this.#redis.off('ready', this.#onReady)
      this.#redis.off('close', this.#onDown)
      this.#redis.off('end', this.#onDown)
    }
  }
}

export type { Bucket }
