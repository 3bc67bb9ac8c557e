// Fastify-free: the delivery limits of a plan on one node: one lease per
// subject and plan (lease.ts DeliveryLease), shared by the subject's sockets
// on this node, taking messages from the per-second bucket and the daily
// quota and bytes from the bytes bucket in batches. Each lease has a record in
// Redis beside the quota, renewed while it is held, so that a dead node's
// unused quota comes back when the record expires.
import type { PlanLimits } from '@sluice/policy'
import type { Line, Put, TakeResult } from './store.ts'
import type { DailyBucket, DailyLease, RateBucket } from './token-bucket.ts'
import { DeliveryLease, type DeliveryLimit, type LeaseBatch, type LeaseGrant } from './lease.ts'
import { UNAVAILABLE, refreshInChunks, retryMs, type Decided, type LimiterCore } from './decision.ts'
import { NOT_DECIDED } from './connections.ts'

/** How a new lease's first batch is decided instead of on its own: with a connect (limiter.ts acquire). */
export type Ride = (lines: Line[]) => Promise<Decided<TakeResult> | typeof NOT_DECIDED>

export interface DeliveryTimes {
  /** a lease holds this much of the plan's per-second rates */
  leaseMs: number
  /** a lease's record in Redis expires this long after its last refill or renewal */
  leaseTtlMs: number
  /** a refused refill without a wait (the store unavailable) is asked again this soon */
  probeMs: number
}

export class DeliveryLeases {
  readonly #core: LimiterCore
  readonly #times: DeliveryTimes
  readonly #renewEveryMs: number
  readonly #leases = new Map<string, { lease: DeliveryLease, users: number }>()
  readonly #leaseKeys = new WeakMap<DeliveryLease, string>()
  /** per lease, how to renew its record in Redis */
  readonly #renewals = new WeakMap<DeliveryLease, () => Put | undefined>()
  /** leases given back and not yet answered: close() waits for them */
  readonly #closing = new Set<Promise<void>>()
  #leaseSeq = 0
  readonly #renewTimer: NodeJS.Timeout

  constructor (core: LimiterCore, times: DeliveryTimes) {
    this.#core = core
    this.#times = times
    // a record is renewed three times in its life: one lost or late renewal does not let it expire
    this.#renewEveryMs = Math.max(100, Math.floor(times.leaseTtlMs / 3))
    this.#renewTimer = setInterval(() => { this.#renew() }, this.#renewEveryMs)
    this.#renewTimer.unref()
  }

  /**
   * The node's lease for a subject's plan, shared by its sockets on this node.
   * `limits` is asked at every refill, so a policy reload applies to live sockets.
   * `ride`: a lease made now has its first batch decided that way (not when the lease exists already).
   */
  lease (subject: string, planName: string, limits: () => PlanLimits, ride?: Ride): DeliveryLease {
    const core = this.#core
    const key = core.key(subject, planName, 'lease')
    const held = this.#leases.get(key)
    if (held) {
      held.users++
      return held.lease
    }
    // the lease's record in Redis: this node's, expiring unless renewed
    const id = `${core.node}:${++this.#leaseSeq}`
    // when Redis last heard what this lease holds (a refill renews its record as a renewal does)
    let reportedAt = 0
    const buckets = (held = 0): { messages: RateBucket, bytes: RateBucket, daily: DailyBucket } => {
      const l = limits()
      const lease: DailyLease = { id, ttlMs: this.#times.leaseTtlMs, held }
      return {
        messages: { kind: 'rate', key: core.key(subject, planName, 'msg'), capacity: l.deliveredPerSecond, perSecond: l.deliveredPerSecond },
        bytes: { kind: 'rate', key: core.key(subject, planName, 'bytes'), capacity: l.bytesPerSecond, perSecond: l.bytesPerSecond },
        daily: { kind: 'daily', key: core.key(subject, planName, 'day'), capacity: l.dailyQuota, lease }
      }
    }
    const batch = (): LeaseBatch => {
      const l = limits()
      const share = this.#times.leaseMs / 1000
      return {
        messages: Math.max(1, Math.min(l.deliveredPerSecond, Math.ceil(l.deliveredPerSecond * share))),
        bytes: Math.max(1, Math.min(l.bytesPerSecond, Math.ceil(l.bytesPerSecond * share)))
      }
    }
    let riding = ride
    const lease = new DeliveryLease({
      now: core.now,
      batch,
      refill: async (messages, bytes, held): Promise<LeaseGrant> => {
        const b = buckets(held)
        const lines: Line[] = [
          { buckets: [b.messages, b.daily], want: messages, min: 1 },
          { buckets: [b.bytes], want: bytes, min: 1 }
        ]
        const first = riding
        riding = undefined
        const decided = first ? await first(lines) : await core.exec(store => store.take(lines))
        // the connect it rode with was refused: nothing was taken, and no refusal of this lease's to tell
        // (the lease goes with the connection's reservation; one that another socket holds refills on its next frame)
        if (decided === NOT_DECIDED) throw new Error('the connect this lease rode with was not granted')
        if (decided === UNAVAILABLE) return { ok: false, limit: 'unavailable', retryAfterMs: this.#times.probeMs }
        if (decided.source === 'redis') reportedAt = core.now()
        const result = decided.value
        if (result.ok) return { ok: true, messages: result.granted[0]!, bytes: result.granted[1]!, source: decided.source }
        const limit: DeliveryLimit = result.limitedBy === b.daily ? 'dailyQuota' : result.limitedBy === b.bytes ? 'bytes' : 'delivered'
        return { ok: false, limit, retryAfterMs: retryMs(result, 1000) }
      },
      giveBack: async (messages, bytes, source) => {
        const b = buckets()
        // tokens go back only to the store that granted them; the lease's record in Redis ends in any case
        // (an earlier refill may have come from Redis): Redis credits back no more than the record holds
        const shared = core.shared
        const fromRedis = source === 'redis'
        const puts: Put[] = [{ bucket: b.daily, amount: fromRedis ? messages : 0 }]
        if (fromRedis && messages > 0) puts.push({ bucket: b.messages, amount: messages })
        if (fromRedis && bytes > 0) puts.push({ bucket: b.bytes, amount: bytes })
        if (shared && core.sharing()) await shared.put(puts).catch(() => {})
        if (source === 'local') core.local.putNow([{ bucket: b.messages, amount: messages }, { bucket: b.daily, amount: messages }, { bucket: b.bytes, amount: bytes }])
      }
    })
    // renewed only while Redis granted its last refill, no refill is on its way (whose grant the count would
    // miss), and no refill reported to Redis within the renewal interval (a busy lease renews itself)
    this.#renewals.set(lease, () => lease.grantedBy === 'redis' && !lease.refilling && core.now() - reportedAt >= this.#renewEveryMs
      ? { bucket: buckets().daily, amount: Math.max(0, Math.floor(lease.messages)), absolute: true }
      : undefined)
    this.#leases.set(key, { lease, users: 1 })
    this.#leaseKeys.set(lease, key)
    // the first batch is asked for now: the socket subscribes next, and its first frames find tokens
    lease.primed = lease.refill().catch(() => {})
    return lease
  }

  /** A socket using the lease closed; the last one returns the lease's unused tokens. */
  release (lease: DeliveryLease): void {
    const key = this.#leaseKeys.get(lease)
    const held = key === undefined ? undefined : this.#leases.get(key)
    if (!held || held.lease !== lease) return
    if (--held.users > 0) return
    this.#leases.delete(key!)
    this.#close(lease)
  }

  #close (lease: DeliveryLease): void {
    const closing = lease.close().catch(() => {}).finally(() => { this.#closing.delete(closing) })
    this.#closing.add(closing)
  }

  /** Writes each held lease's count to its record in Redis, so that it outlives its TTL while this node lives. */
  #renew (): void {
    const core = this.#core
    const shared = core.shared
    if (!shared || !core.sharing()) return
    const puts: Put[] = []
    for (const { lease } of this.#leases.values()) {
      const put = this.#renewals.get(lease)?.()
      if (put) puts.push(put)
    }
    refreshInChunks(core, shared, puts)
  }

  get size (): number {
    return this.#leases.size
  }

  stop (): void {
    clearInterval(this.#renewTimer)
  }

  /** Every lease gives its unused tokens back (a clean shutdown); resolves when the store has them. */
  async close (): Promise<void> {
    this.stop()
    for (const { lease } of this.#leases.values()) this.#close(lease)
    this.#leases.clear()
    await Promise.all([...this.#closing])
  }
}
