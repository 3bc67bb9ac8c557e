// Fastify-free: the delivery direction's local lease. The hub asks per frame,
// synchronously; a Redis round trip per message is out of the question, so a
// node takes tokens for a subject's plan in batches (one Lua call fetches N
// messages from the per-second bucket and the daily quota, and M bytes from
// the bytes bucket), spends them locally, and asks for the next batch before
// this one runs out. A node never spends tokens Redis did not grant it; what
// is left when the last socket closes goes back. Each refill tells the store
// what the node still holds, so the store's record of the lease (renewed
// while it is held, limiter.ts) credits back no more than that if the node dies.

/** Which limit refused a refill. `unavailable`: Redis is unreachable and the gateway fails closed. */
export type DeliveryLimit = 'delivered' | 'bytes' | 'dailyQuota' | 'unavailable'

export type LeaseGrant =
  | { ok: true, messages: number, bytes: number, source: string }
  | { ok: false, limit: DeliveryLimit, retryAfterMs: number }

export interface LeaseBatch {
  messages: number
  bytes: number
}

export interface LeaseSource {
  /** asks for up to `messages` and `bytes` (at least one of each); `held`: the messages the lease holds now */
  refill (messages: number, bytes: number, held: number): Promise<LeaseGrant>
  /** returns unused tokens (maybe none) to the store that granted them (`source`), if it is still the one in use, and ends the lease there */
  giveBack (messages: number, bytes: number, source: string): Promise<void>
  /** the batch size now (a policy reload may change the plan) */
  batch (): LeaseBatch
  now (): number
}

export interface Refusal {
  limit: DeliveryLimit
  /** when asking again can help, on this node's clock */
  until: number
  retryAfterMs: number
}

export interface LeaseHolder {
  /** the lease is empty and cannot be refilled now; said once per refusal */
  refused (refusal: Refusal): void
}

// a refill that failed for no stated reason (a store error in fail-open mode) is tried again this soon
const RETRY_ON_ERROR_MS = 100

export class DeliveryLease {
  messages = 0
  /** may go below zero: a frame larger than what is left is let through and paid from the next batch */
  bytes = 0
  /** frames admitted and refused since creation (read by metrics) */
  admitted = 0
  refusedFrames = 0
  refusal: Refusal | undefined
  readonly holders = new Set<LeaseHolder>()
  /** settles when the first refill did (granted, refused or failed): until then an empty lease is not a limit */
  primed: Promise<void> = Promise.resolve()
  readonly #source: LeaseSource
  #refilling: Promise<void> | undefined
  #retryAt = 0
  #grantedBy = ''
  #told = new WeakSet<LeaseHolder>()

  constructor (source: LeaseSource) {
    this.#source = source
  }

  /** a refill is on its way: what the lease holds is about to change */
  get refilling (): boolean {
    return this.#refilling !== undefined
  }

  /** the store that granted the last refill ('' before any) */
  get grantedBy (): string {
    return this.#grantedBy
  }

  /** Per frame, synchronous: spends a local token, never waits. */
  take (bytes: number): boolean {
    if (this.messages >= 1 && this.bytes > 0) {
      this.messages--
      this.bytes -= bytes
      this.admitted++
      const batch = this.#source.batch()
      // ask for the next batch at half of this one: it arrives before this one runs out
      if (this.messages * 2 < batch.messages || this.bytes * 2 < batch.bytes) this.refill()
      return true
    }
    this.refusedFrames++
    this.refill()
    return false
  }

  /** The holder was refused a frame: if the lease knows why, tell it (once per refusal). */
  explain (holder: LeaseHolder): void {
    const refusal = this.refusal
    if (!refusal || this.#told.has(holder)) return
    this.#told.add(holder)
    holder.refused(refusal)
  }

  refill (): Promise<void> {
    if (this.#refilling) return this.#refilling
    if (this.#source.now() < this.#retryAt) return Promise.resolve()
    const batch = this.#source.batch()
    const messages = Math.max(1, Math.ceil(batch.messages - this.messages))
    const bytes = Math.max(1, Math.ceil(batch.bytes - this.bytes))
    this.#refilling = this.#source.refill(messages, bytes, Math.max(0, Math.floor(this.messages))).then(grant => {
      if (grant.ok) {
        this.messages += grant.messages
        this.bytes += grant.bytes
        this.#grantedBy = grant.source
        this.refusal = undefined
        this.#told = new WeakSet()
        return
      }
      const now = this.#source.now()
      const wait = grant.retryAfterMs > 0 ? grant.retryAfterMs : RETRY_ON_ERROR_MS
      this.#retryAt = now + wait
      this.refusal = { limit: grant.limit, until: now + wait, retryAfterMs: wait }
      // holders already refused a frame hear why now; the others when they are
      if (this.messages < 1 || this.bytes <= 0) for (const holder of this.holders) this.explain(holder)
    }, () => {
      this.#retryAt = this.#source.now() + RETRY_ON_ERROR_MS
    }).finally(() => {
      this.#refilling = undefined
    })
    return this.#refilling
  }

  /** The last holder left: unused tokens go back, and the store's record of the lease ends even when none are left. */
  async close (): Promise<void> {
    await this.#refilling
    const messages = Math.max(0, Math.floor(this.messages))
    const bytes = Math.floor(Math.max(0, this.bytes))
    this.messages = 0
    this.bytes = 0
    if (this.#grantedBy !== '') await this.#source.giveBack(messages, bytes, this.#grantedBy)
  }
}
