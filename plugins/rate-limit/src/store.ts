// Fastify-free: what a limit store does, and the in-process store that
// serves a single node without Redis (dev mode) and every node while Redis is
// unreachable in fail-open mode. The Redis store (script.ts) has the same
// contract, computed by one Lua script on Redis time. It keeps no lease
// records: it lives and dies with the node that holds the leases, so a lease
// here cannot outlive its holder; it takes the same share of a daily quota.
import {
  dailyLeaseLevel, dailyLevel, dailyWaitMs, dayOf, msUntilNextDay, NEVER, rateLevel, rateTtlMs, rateWaitMs,
  DAILY_TTL_MARGIN_MS, type Bucket
} from './token-bucket.ts'

/**
 * Buckets that give the same amount: a delivery lease takes N messages from
 * the per-second bucket and N from the daily quota; a connection takes one
 * connect token and one slot. `min` is the least worth having: a line that
 * cannot give it fails, and then the whole take fails and nothing is taken.
 */
export interface Line {
  buckets: readonly Bucket[]
  want: number
  min: number
}

export interface TakeResult {
  ok: boolean
  /** per line, what was taken (all 0 when not ok) */
  granted: number[]
  /**
   * not ok: when asking again can succeed; NEVER (-1) when waiting cannot help; 0 when unknown (slots).
   * ok with a line granted less than its `want`: when one more unit can be had
   */
  retryAfterMs: number
  /** not ok: the bucket that said no (the longest wait among those that did); ok: the one that cut a line short */
  limitedBy?: Bucket
}

/** Gives back: tokens to a rate bucket, units to a daily quota, or changes this node's slot count. */
export interface Put {
  bucket: Bucket
  amount: number
  /**
   * slots: `amount` is this node's count (a refresh), not a change; a daily
   * bucket's lease: `amount` is what the node still holds of it (a renewal)
   */
  absolute?: boolean
}

export interface LimitStore {
  take (lines: readonly Line[]): Promise<TakeResult>
  /**
   * Two takes as one decision: `then` is decided only when `first` was granted, and on its own (its
   * refusal does not undo `first`): a connection and its delivery lease's first batch (limiter.ts acquire).
   * Answers `first`'s result, and `then`'s or undefined when it was not decided.
   */
  takeThen (first: readonly Line[], then: readonly Line[]): Promise<[TakeResult, TakeResult | undefined]>
  put (puts: readonly Put[]): Promise<void>
}

type Entry =
  | { kind: 'rate', tokens: number, at: number, expiresAt: number }
  | { kind: 'daily', day: number, used: number, expiresAt: number }
  | { kind: 'slots', nodes: Map<string, { count: number, expiresAt: number }>, expiresAt: number }

// expired entries are swept at most this often: the map never holds much more than the live buckets
const SWEEP_INTERVAL_MS = 10_000

export class MemoryLimitStore implements LimitStore {
  readonly #entries = new Map<string, Entry>()
  readonly #now: () => number
  #sweptAt = 0

  /** `now`: this node's clock; only a store without Redis uses it */
  constructor (now: () => number = Date.now) {
    this.#now = now
  }

  get size (): number {
    return this.#entries.size
  }

  take (lines: readonly Line[]): Promise<TakeResult> {
    return Promise.resolve(this.takeNow(lines))
  }

  takeThen (first: readonly Line[], then: readonly Line[]): Promise<[TakeResult, TakeResult | undefined]> {
    const result = this.takeNow(first)
    return Promise.resolve([result, result.ok ? this.takeNow(then) : undefined])
  }

  put (puts: readonly Put[]): Promise<void> {
    this.putNow(puts)
    return Promise.resolve()
  }

  takeNow (lines: readonly Line[]): TakeResult {
    const now = this.#now()
    this.#sweep(now)
    const levels = lines.map(line => line.buckets.map(b => this.#level(b, now)))
    // a lease takes a share of what a daily quota has left
    const avail = lines.map((line, l) => line.buckets.map((b, i) => b.kind === 'daily' && b.lease ? dailyLeaseLevel(levels[l]![i]!) : levels[l]![i]!))
    const granted: number[] = []
    let ok = true
    let retryAfterMs = 0
    let limitedBy: Bucket | undefined
    lines.forEach((line, l) => {
      let grant = line.want
      for (const level of avail[l]!) grant = Math.min(grant, Math.floor(level))
      grant = Math.max(0, grant)
      granted.push(grant)
      if (grant >= line.min) return
      ok = false
      line.buckets.forEach((b, i) => {
        if (Math.floor(avail[l]![i]!) >= line.min) return
        const wait = this.#wait(b, levels[l]![i]!, line.min, now)
        if (limitedBy === undefined || wait === NEVER || (retryAfterMs !== NEVER && wait > retryAfterMs)) {
          retryAfterMs = wait
          limitedBy = b
        }
      })
    })
    if (!ok) return { ok, granted: lines.map(() => 0), retryAfterMs, limitedBy }
    // granted less than wanted (coalesced decisions): which bucket, and when one more
    lines.forEach((line, l) => {
      if (granted[l]! >= line.want) return
      line.buckets.forEach((b, i) => {
        if (Math.floor(avail[l]![i]!) > granted[l]!) return
        const wait = this.#wait(b, levels[l]![i]! - granted[l]!, 1, now)
        if (limitedBy === undefined || wait === NEVER || (retryAfterMs !== NEVER && wait > retryAfterMs)) {
          retryAfterMs = wait
          limitedBy = b
        }
      })
    })
    lines.forEach((line, l) => {
      line.buckets.forEach((b, i) => this.#store(b, levels[l]![i]!, granted[l]!, now))
    })
    return { ok, granted, retryAfterMs, limitedBy }
  }

  putNow (puts: readonly Put[]): void {
    const now = this.#now()
    for (const { bucket, amount, absolute } of puts) {
      if (bucket.kind === 'slots' && absolute) {
        this.#setSlots(bucket, amount, now)
        continue
      }
      // a lease renewal: nothing to renew where no lease is recorded
      if (absolute) continue
      this.#store(bucket, this.#level(bucket, now), -amount, now)
    }
  }

  #level (b: Bucket, now: number): number {
    const entry = this.#entries.get(b.key)
    if (entry !== undefined && entry.expiresAt <= now) {
      this.#entries.delete(b.key)
      return this.#level(b, now)
    }
    if (b.kind === 'rate') {
      return entry?.kind === 'rate' ? rateLevel(entry.tokens, entry.at, now, b.capacity, b.perSecond) : b.capacity
    }
    if (b.kind === 'daily') {
      return entry?.kind === 'daily' ? dailyLevel(entry.day, entry.used, now, b.capacity) : b.capacity
    }
    let held = 0
    if (entry?.kind === 'slots') {
      for (const [node, slot] of entry.nodes) {
        if (slot.expiresAt > now) held += slot.count
        else entry.nodes.delete(node)
      }
    }
    return b.capacity - held
  }

  #wait (b: Bucket, level: number, need: number, now: number): number {
    if (b.kind === 'rate') return rateWaitMs(level, need, b.capacity, b.perSecond)
    if (b.kind === 'daily') return dailyWaitMs(need, b.capacity, now)
    return need > b.capacity ? NEVER : 0
  }

  /** Writes a bucket after `taken` units left it (negative: given back). */
  #store (b: Bucket, level: number, taken: number, now: number): void {
    if (b.kind === 'rate') {
      if (b.perSecond <= 0) return
      const tokens = Math.min(b.capacity, level - taken)
      this.#entries.set(b.key, { kind: 'rate', tokens, at: now, expiresAt: now + rateTtlMs(tokens, b.capacity, b.perSecond) })
      return
    }
    if (b.kind === 'daily') {
      const used = Math.max(0, b.capacity - level + taken)
      this.#entries.set(b.key, { kind: 'daily', day: dayOf(now), used, expiresAt: now + msUntilNextDay(now) + DAILY_TTL_MARGIN_MS })
      return
    }
    const entry = this.#entries.get(b.key)
    const mine = entry?.kind === 'slots' ? entry.nodes.get(b.node) : undefined
    const current = mine !== undefined && mine.expiresAt > now ? mine.count : 0
    this.#setSlots(b, current + taken, now)
  }

  #setSlots (b: Bucket & { kind: 'slots' }, count: number, now: number): void {
    let entry = this.#entries.get(b.key)
    if (entry?.kind !== 'slots') {
      if (count <= 0) return
      entry = { kind: 'slots', nodes: new Map(), expiresAt: 0 }
      this.#entries.set(b.key, entry)
    }
    if (count > 0) entry.nodes.set(b.node, { count, expiresAt: now + b.ttlMs })
    else entry.nodes.delete(b.node)
    if (entry.nodes.size === 0) this.#entries.delete(b.key)
    else entry.expiresAt = Math.max(entry.expiresAt, now + b.ttlMs)
  }

  #sweep (now: number): void {
    if (now - this.#sweptAt < SWEEP_INTERVAL_MS) return
    this.#sweptAt = now
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key)
  }
}
