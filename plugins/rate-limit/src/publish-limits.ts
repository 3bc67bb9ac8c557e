// Fastify-free: the publish rate limit of a plan on one node: a publish takes
// one token of the plan's per-second publish bucket from this node's lease on
// it (lease.ts PublishLease), so that a node publishing at 20,000/s asks Redis
// about 20 times a second instead of 20,000.
import type { Put } from './store.ts'
import type { RateBucket } from './token-bucket.ts'
import { PublishLease, type PublishGrant, type PublishTake } from './lease.ts'
import { CONNECTION_RETRY_MS, UNAVAILABLE, retryMs, type LimiterCore, type PlanRef, type Refused } from './decision.ts'

// a publish lease unused this long, or granted this long ago, goes back to Redis: a subject that stopped
// publishing holds nothing on this node after a second, and no token is spent more than ~2 s after Redis granted it
const PUBLISH_LEASE_RETURN_MS = 1000

export class PublishLimits {
  readonly #core: LimiterCore
  /** a lease holds this much of the plan's publish rate */
  readonly #leaseMs: number
  /** per subject and plan with publishes on this node lately: the lease, and the plan its last publish named */
  readonly #publishLeases = new Map<string, { lease: PublishLease, plan: PlanRef, subject: string }>()
  /**
   * Per subject and plan name, the key of its lease (while it has one): built once instead of a
   * template string per publish, whose lookup then hashed a new string each time (the publish
   * path's cost is counted per publish: bench/publish.ts)
   */
  readonly #keys = new Map<string, Map<string, string>>()
  /** leases given back and not yet answered: close() waits for them */
  readonly #closing = new Set<Promise<void>>()
  readonly #timer: NodeJS.Timeout

  constructor (core: LimiterCore, leaseMs: number) {
    this.#core = core
    this.#leaseMs = leaseMs
    this.#timer = setInterval(() => { this.#returnLeases(false) }, PUBLISH_LEASE_RETURN_MS)
    this.#timer.unref()
  }

  /**
   * One publish: one token of the plan's per-second publish bucket, from this
   * node's lease on it (lease.ts): at once while the lease holds tokens, else
   * after a refill shared with the other publishes waiting on this node.
   */
  publish (subject: string, plan: PlanRef): { ok: true } | Refused | Promise<{ ok: true } | Refused> {
    const core = this.#core
    // failing closed refuses every publish while Redis is out, as before leases: tokens leased before do not outlive it
    if (core.shared && core.failure === 'fail-closed' && !core.sharing()) {
      core.checkMode()
      return { ok: false, limit: 'unavailable', retryAfterMs: CONNECTION_RETRY_MS }
    }
    let keys = this.#keys.get(subject)
    if (!keys) {
      keys = new Map()
      this.#keys.set(subject, keys)
    }
    let key = keys.get(plan.name)
    if (key === undefined) {
      key = core.key(subject, plan.name, 'pub')
      keys.set(plan.name, key)
    }
    let held = this.#publishLeases.get(key)
    if (held) held.plan = plan
    else {
      held = { lease: this.#publishLease(key, plan), plan, subject }
      this.#publishLeases.set(key, held)
    }
    const taken = held.lease.take()
    return taken instanceof Promise ? taken.then(t => this.#published(t)) : this.#published(taken)
  }

  #published (taken: PublishTake): { ok: true } | Refused {
    const stats = this.#core.stats
    if (taken.ok) {
      stats.allowed.publishedPerSecond++
      return taken
    }
    if (taken.unavailable) return { ok: false, limit: 'unavailable', retryAfterMs: CONNECTION_RETRY_MS }
    stats.limited.publishedPerSecond++
    return { ok: false, limit: 'publishedPerSecond', retryAfterMs: taken.retryAfterMs }
  }

  #publishLease (key: string, first: PlanRef): PublishLease {
    const core = this.#core
    const planOf = (): PlanRef => this.#publishLeases.get(key)?.plan ?? first
    const bucket = (): RateBucket => {
      const limits = planOf().limits
      return { kind: 'rate', key, capacity: limits.publishedPerSecond, perSecond: limits.publishedPerSecond }
    }
    return new PublishLease({
      now: core.now,
      slice: () => {
        const rate = planOf().limits.publishedPerSecond
        return Math.max(1, Math.min(rate, Math.ceil(rate * this.#leaseMs / 1000)))
      },
      refill: async (tokens): Promise<PublishGrant> => {
        const decided = await core.exec(store => store.take([{ buckets: [bucket()], want: tokens, min: 1 }]))
        if (decided === UNAVAILABLE) return { ok: false, unavailable: true, retryAfterMs: CONNECTION_RETRY_MS }
        const result = decided.value
        if (result.ok) return { ok: true, tokens: result.granted[0]!, source: decided.source, retryAfterMs: result.retryAfterMs > 0 ? result.retryAfterMs : 0 }
        return { ok: false, unavailable: false, retryAfterMs: retryMs(result, 1000) }
      },
      giveBack: async (tokens, source) => {
        const put: Put = { bucket: bucket(), amount: tokens }
        if (source === 'local') core.local.putNow([put])
        else if (core.shared && core.sharing()) await core.shared.put([put])
      }
    })
  }

  /** Publish leases idle or granted over PUBLISH_LEASE_RETURN_MS ago (all of them: `all`) give their tokens back. */
  #returnLeases (all: boolean): void {
    const now = this.#core.now()
    for (const [key, { lease, plan, subject }] of this.#publishLeases) {
      if (!all && (lease.refilling || lease.waiting > 0)) continue
      if (!all && now - lease.usedAt < PUBLISH_LEASE_RETURN_MS && now - lease.grantedAt < PUBLISH_LEASE_RETURN_MS) continue
      // out of the map first: the next publish of the subject starts a new lease, never takes from this one
      this.#publishLeases.delete(key)
      const keys = this.#keys.get(subject)
      keys?.delete(plan.name)
      if (keys?.size === 0) this.#keys.delete(subject)
      const closing = lease.close().catch(() => {}).finally(() => { this.#closing.delete(closing) })
      this.#closing.add(closing)
    }
  }

  /** Subjects with a publish lease on this node. */
  get size (): number {
    return this.#publishLeases.size
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  /** Every lease gives its unused tokens back (a clean shutdown); resolves when the store has them. */
  async close (): Promise<void> {
    this.stop()
    this.#returnLeases(true)
    await Promise.all([...this.#closing])
  }
}
