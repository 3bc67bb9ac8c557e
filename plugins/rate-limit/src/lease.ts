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

// ---- the publish direction ------------------------------------------------------------
//
// A Redis round trip per publish was half of the gateway's CPU per publish
// (bench/publish.ts: 53 against 27 µs with limits off, 20 sockets × 64 in
// flight). So a node leases a slice of the subject's plan's publish bucket as
// it does for deliveries, and spends it locally. Unlike a delivered frame a
// publish may wait: when the lease is empty, the publishes that find it so
// wait for one refill that asks for all of them at once (those read in the
// same turn of the event loop), and those it cannot cover are refused with
// the wait Redis names for one more token.
//
// How far nodes can exceed the plan: a token is spent only after Redis took it
// from the bucket, and a node holds at most one slice it has not spent (a
// refill tops it up to the slice; what waiting publishes ask for beyond it is
// spent the moment it arrives). In any window the publishes of all nodes are
// at most what one bucket allows (its capacity plus its rate for the window)
// plus what the nodes held unspent when the window began: N slices for N
// nodes. limiter.ts sizes a slice at 100 ms of the plan's rate, so two nodes
// can exceed the plan by 0.2 s of its rate at most (200 on a plan of 1,000/s
// over any window), never more over time: tokens given back or expired were
// never spent.

export type PublishGrant =
  | { ok: true, tokens: number, source: string, retryAfterMs: number }
  | { ok: false, unavailable: boolean, retryAfterMs: number }

export type PublishTake = { ok: true } | { ok: false, unavailable: boolean, retryAfterMs: number }

export interface PublishSource {
  /** asks for up to `tokens` (at least one); ok with fewer: `retryAfterMs` is when one more could be had */
  refill (tokens: number): Promise<PublishGrant>
  /** returns unused tokens to the store that granted them (`source`) */
  giveBack (tokens: number, source: string): Promise<void>
  /** the slice size now (a policy reload may change the plan) */
  slice (): number
  now (): number
}

const GRANTED: PublishTake = { ok: true }
// a refusal is answered locally for at most this long before the store is asked again: a limit of 0 says
// "never" (the limiter answers 60 s), and a policy reload may raise it meanwhile
const REFUSAL_KEPT_MS = 1000

function refusal (now: number, waitMs: number): { until: number, askAt: number } {
  return { until: now + waitMs, askAt: now + Math.min(waitMs, REFUSAL_KEPT_MS) }
}
// a publish waiting for tokens asks this many refills at most before it is refused (each may be cut
// short by other waiters of the same node, for whom it was also asked)
const MAX_REFILLS_PER_PUBLISH = 3

export class PublishLease {
  tokens = 0
  /** when it was last taken from, and last granted (this node's clock): the limiter returns idle and old leases */
  usedAt = 0
  grantedAt = 0
  readonly #source: PublishSource
  /** resolves with the refusal when the store was unavailable (not kept: the limiter's mode says when to ask again) */
  #refilling: Promise<PublishTake | undefined> | undefined
  #scheduled = false
  /** publishes waiting for a refill: the next refill asks for them too */
  #waiting = 0
  /** `until`: what the store said; `askAt`: when to ask it again anyway (a policy reload may have raised a limit of 0) */
  #refusal: { until: number, askAt: number } | undefined
  #grantedBy = ''

  constructor (source: PublishSource) {
    this.#source = source
  }

  get refilling (): boolean {
    return this.#refilling !== undefined || this.#scheduled
  }

  get waiting (): number {
    return this.#waiting
  }

  /** Per publish: a local token at once when the lease has one, else after a refill (or a refusal). */
  take (): PublishTake | Promise<PublishTake> {
    const now = this.#source.now()
    this.usedAt = now
    if (this.tokens >= 1) {
      this.tokens--
      // ahead of need: the next slice arrives before this one runs out (a slice of 1 is a plan too slow to gain from it)
      if (this.tokens * 2 < this.#source.slice() && this.tokens > 0) this.#refillAhead()
      return GRANTED
    }
    return this.#wait()
  }

  #refillAhead (): void {
    if (this.refilling || this.#refused()) return
    this.#startRefill()
  }

  async #wait (): Promise<PublishTake> {
    this.#waiting++
    try {
      for (let i = 0; i < MAX_REFILLS_PER_PUBLISH; i++) {
        const refused = this.#refused()
        if (refused) return refused
        const unavailable = await this.#refill()
        if (this.tokens >= 1) {
          this.tokens--
          return GRANTED
        }
        if (unavailable) return unavailable
      }
      return this.#refused() ?? { ok: false, unavailable: false, retryAfterMs: RETRY_ON_ERROR_MS }
    } finally {
      this.#waiting--
    }
  }

  #refused (): PublishTake | undefined {
    const refusal = this.#refusal
    if (!refusal) return undefined
    const now = this.#source.now()
    const left = refusal.until - now
    if (left <= 0 || now >= refusal.askAt) return undefined
    return { ok: false, unavailable: false, retryAfterMs: Math.ceil(left) }
  }

  // the publishes read in this turn of the event loop (one TCP chunk of a socket, several sockets' frames) wait for one refill
  #refill (): Promise<PublishTake | undefined> {
    if (this.#refilling) return this.#refilling
    this.#scheduled = true
    this.#refilling = new Promise<void>(resolve => setImmediate(resolve)).then(() => this.#ask())
    return this.#refilling
  }

  #startRefill (): void {
    this.#refilling = this.#ask()
  }

  async #ask (): Promise<PublishTake | undefined> {
    this.#scheduled = false
    try {
      const want = Math.max(1, Math.ceil(Math.max(this.#source.slice(), this.#waiting) - this.tokens))
      const grant = await this.#source.refill(want)
      const now = this.#source.now()
      if (grant.ok) {
        this.tokens += grant.tokens
        this.grantedAt = now
        this.#grantedBy = grant.source
        // fewer than asked: the bucket is empty now, and the publishes this grant leaves out wait what Redis says
        this.#refusal = grant.tokens < want && grant.retryAfterMs > 0 ? refusal(now, grant.retryAfterMs) : undefined
        return undefined
      }
      if (grant.unavailable) return { ok: false, unavailable: true, retryAfterMs: grant.retryAfterMs }
      this.#refusal = refusal(now, Math.max(1, grant.retryAfterMs))
      return undefined
    } catch {
      // a store error the limiter did not turn into a decision: publishes are refused for a moment, not failed
      this.#refusal = refusal(this.#source.now(), RETRY_ON_ERROR_MS)
      return undefined
    } finally {
      this.#refilling = undefined
    }
  }

  /** Idle or old: the unused tokens go back to the store that granted them; the lease is empty after. */
  async close (): Promise<void> {
    await this.#refilling
    const tokens = Math.max(0, Math.floor(this.tokens))
    this.tokens = 0
    if (tokens > 0 && this.#grantedBy !== '') await this.#source.giveBack(tokens, this.#grantedBy)
  }
}
