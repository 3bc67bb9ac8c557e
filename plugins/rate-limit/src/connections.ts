// Fastify-free: a plan's connection limits on one node: concurrent
// connections per subject and plan (this node's count in a slot bucket shared
// by every node, refreshed so that a dead node's count expires) and connects
// per minute. A connect takes a token and a slot, both or neither.
import type { SlotBucket, RateBucket } from './token-bucket.ts'
import type { Line, MemoryLimitStore, TakeResult } from './store.ts'
import { CONNECTION_RETRY_MS, UNAVAILABLE, refreshInChunks, retryMs, type Decided, type LimiterCore, type PlanRef, type Refused } from './decision.ts'

export interface ConnectionTicket {
  ok: true
  /** the socket closed: its slot is freed (idempotent) */
  release (): void
}

/**
 * A take that rides on a connect's decision (a new delivery lease's first batch, limiter.ts acquire): decided
 * in the same script call, after the connect and only when it was granted. `settle` hears its result, or
 * NOT_DECIDED (the connect was refused or could not be decided).
 */
export interface Rider {
  lines: Line[]
  settle (decided: Decided<TakeResult> | typeof NOT_DECIDED): void
}

export const NOT_DECIDED = Symbol('not decided')

/** A granted connection whose `release` runs once, however often it is called. */
export function ticket (release: () => void): ConnectionTicket {
  let released = false
  return {
    ok: true,
    release: () => {
      if (released) return
      released = true
      release()
    }
  }
}

/** Connects on one subject's plan waiting for the same script call (coalesced within one turn of the event loop). */
interface ConnectBatch {
  connects: RateBucket
  slots: SlotBucket
  waiters: Array<(decided: Decided<TakeResult>) => void>
  /** at most one: a subject's lease is made once, by its first connect */
  rider?: Rider
}

interface ConnectionCount {
  bucket: SlotBucket
  /** admitted and open */
  count: number
  /** being decided: counted in refreshes, so a refresh never undercounts */
  pending: number
}

export class ConnectionLimits {
  readonly #core: LimiterCore
  /** a node's count expires this long after its last refresh */
  readonly #ttlMs: number
  readonly #connections = new Map<string, ConnectionCount>()
  readonly #connectBatches = new Map<string, ConnectBatch>()
  /** this turn's batches, in the order they began (the map finds a subject's) */
  #connectQueue: ConnectBatch[] = []
  #connectsScheduled = false
  readonly #refreshTimer: NodeJS.Timeout

  constructor (core: LimiterCore, ttlMs: number) {
    this.#core = core
    this.#ttlMs = ttlMs
    // every third of the TTL: one lost or late refresh does not let a live node's count expire
    this.#refreshTimer = setInterval(() => { this.refresh() }, Math.max(100, Math.floor(ttlMs / 3)))
    this.#refreshTimer.unref()
  }

  #connectBuckets (subject: string, plan: PlanRef): { connects: RateBucket, slots: SlotBucket } {
    const core = this.#core
    return {
      connects: { kind: 'rate', key: core.key(subject, plan.name, 'connects'), capacity: plan.limits.connectsPerMinute, perSecond: plan.limits.connectsPerMinute / 60 },
      slots: { kind: 'slots', key: core.key(subject, plan.name, 'conn'), capacity: plan.limits.connections, node: core.node, ttlMs: this.#ttlMs }
    }
  }

  /** One new connection: a connect token and a slot, both or neither; `rider` is decided with it (Rider). */
  async acquire (subject: string, plan: PlanRef, rider?: Rider): Promise<ConnectionTicket | Refused> {
    const stats = this.#core.stats
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
      decided = await this.#takeConnect(connects, slots, rider)
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
      stats.limited[limit]++
      return { ok: false, limit, retryAfterMs: retryMs(result, CONNECTION_RETRY_MS) }
    }
    stats.allowed.connections++
    stats.allowed.connectsPerMinute++
    counted.count++
    return ticket(() => {
      counted.count--
      this.#forget(counted)
      this.#core.exec(store => store.put([{ bucket: slots, amount: 1 }])).catch(() => {})
    })
  }

  /**
   * One connect's decision, coalesced: the connects on one subject's plan that
   * arrive within one turn of the event loop go to Redis as one script call
   * that takes N (a burst of 1,000 upgrades from one client costs a handful of
   * calls, not 1,000); the first `granted` of them in arrival order are let
   * in, the others are refused with the limit and wait the call names. The
   * batches of every subject in that turn leave together, as one script call
   * (MAX_BATCH decisions a call). How many that saves depends on how many
   * upgrades a turn reads. In a burst of 5,000 resumes on one node Redis
   * counted 1.8-2.0 script calls a resume with one listening socket and
   * 0.6-1.1 with two (the connect, the first delivery lease and the
   * address's HTTP count; bench/drain-resume.ts prints them).
   */
  #takeConnect (connects: RateBucket, slots: SlotBucket, rider: Rider | undefined): Promise<Decided<TakeResult>> {
    let batch = this.#connectBatches.get(slots.key)
    if (!batch || batch.connects.key !== connects.key) {
      const fresh: ConnectBatch = { connects, slots, waiters: [] }
      batch = fresh
      this.#connectBatches.set(slots.key, fresh)
      this.#connectQueue.push(fresh)
      // after this turn's poll phase: every upgrade it read is in the batch
      if (!this.#connectsScheduled) {
        this.#connectsScheduled = true
        this.#core.atTurnEnd(this.#flushAllConnects)
      }
    }
    if (rider) {
      // a second rider on one batch would be a second lease for one subject's plan, which lease() does not make
      // (it returns the one there is, with no ride). Should it come, its first refill fails and is asked again
      // on a frame 100 ms later (lease.ts RETRY_ON_ERROR_MS)
      if (batch.rider) rider.settle(NOT_DECIDED)
      else batch.rider = rider
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
    const shared = this.#core.shared
    shared?.cork()
    for (const batch of batches) this.#flushConnects(batch).catch(() => {})
    shared?.uncork()
  }

  async #flushConnects (batch: ConnectBatch): Promise<void> {
    const { connects, slots, waiters, rider } = batch
    const line: Line = { buckets: [connects, slots], want: waiters.length, min: 1 }
    let decided: Decided<TakeResult>
    let ridden: Decided<TakeResult> | typeof NOT_DECIDED = NOT_DECIDED
    try {
      if (rider) {
        const both = await this.#core.exec(store => store.takeThen([line], rider.lines))
        if (both === UNAVAILABLE) {
          decided = UNAVAILABLE
        } else {
          decided = { value: both.value[0], source: both.source }
          const then = both.value[1]
          if (then) ridden = { value: then, source: both.source }
        }
      } else {
        decided = await this.#core.exec(store => store.take([line]))
      }
    } catch (err) {
      // the local store does not throw; should it, every connect of the batch is refused as unavailable
      this.#core.failed(err as Error)
      decided = UNAVAILABLE
    }
    rider?.settle(ridden)
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

  /** This node's open connections on a slot bucket's key (0 when none). */
  count (key: string): number {
    return this.#connections.get(key)?.count ?? 0
  }

  /** Tells a store (the local one, which now decides) this node's counts. */
  assert (store: MemoryLimitStore): void {
    store.putNow([...this.#connections.values()].map(e => ({ bucket: e.bucket, amount: e.count + e.pending, absolute: true })))
  }

  /** Writes this node's counts again (absolute), so that they outlive their TTL and survive a Redis restart. */
  refresh (): void {
    const entries = [...this.#connections.values()]
    if (entries.length === 0) return
    const core = this.#core
    if (core.shared && core.sharing()) {
      refreshInChunks(core, core.shared, entries.map(e => ({ bucket: e.bucket, amount: e.count + e.pending, absolute: true })))
    } else {
      this.assert(core.local)
    }
  }

  stop (): void {
    clearInterval(this.#refreshTimer)
  }
}
