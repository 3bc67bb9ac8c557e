// Fastify-free: usage metering (issue 18). Per application (the identity's
// subject: an application key's owner is its application) and product, per
// period (an hour by default) and per UTC day: messages and bytes delivered,
// messages published, connection time, and refusals by reason.
//
// Counting costs no Redis round trip per message: a socket adds to plain
// numbers in memory (its SessionUsage), and every `flushMs` the node
// writes what it counted since the last flush to Redis in one script call
// (store.ts). A flush at each period's end attributes the period's counts to
// it. A node that dies without a flush loses what it counted since its last
// one (at most flushMs of the open period); a closed period was flushed as it
// closed.
import type { Identity } from '@sluice/protocol/identity'

/** What one socket adds to: plain fields, no call on the hot path. */
export class SessionUsage {
  delivered = 0
  deliveredBytes = 0
  published = 0
  /** refusals by reason (wire error code or HTTP error code) */
  readonly refused = new Map<string, number>()
  /** connection time is counted from here at the next flush */
  since: number

  constructor (since: number) {
    this.since = since
  }

  refuse (reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1)
  }
}

/** One line of a flush: what an application did with a product since the last flush. */
export interface UsageLine {
  application: string
  product: string
  /** metric (or `refused:<reason>`) → amount */
  amounts: Record<string, number>
}

/** A session as the meter sees it (plugins/sessions LiveSession). */
export interface MeteredSession {
  readonly identity: Identity
  readonly connectedAt: number
  /** the product of its first topic (set on its first subscribe or publish) */
  readonly product?: string
}

// The product of a subject whose credential names none (a JWT) and whose socket has used no topic yet
export const ANY_PRODUCT = '*'

/** The product usage counts under: an API key's own product, else the one of the socket's first topic. */
export function productOf (identity: Identity, product?: string): string {
  const claimed = identity.claims.product
  if (typeof claimed === 'string' && claimed.length > 0) return claimed
  return product ?? ANY_PRODUCT
}

export class UsageMeter {
  /** open sessions and what each counted since the last flush */
  readonly #open = new Map<MeteredSession, SessionUsage>()
  /** what closed sessions and refused upgrades left since the last flush, by application and product */
  readonly #pending = new Map<string, UsageLine>()
  readonly #now: () => number

  constructor (now: () => number = Date.now) {
    this.#now = now
  }

  /** A socket of `session` opened: it counts into what this returns; its connection time runs until ended(). */
  opened (session: MeteredSession): SessionUsage {
    const usage = new SessionUsage(Math.min(session.connectedAt, this.#now()))
    this.#open.set(session, usage)
    return usage
  }

  /** The session closed: what it counted, and its connection time up to now, wait for the next flush. */
  ended (session: MeteredSession): void {
    const usage = this.#open.get(session)
    if (!usage) return
    this.#open.delete(session)
    this.#fold(session, usage, this.#now())
  }

  /** A refusal before any session exists (an upgrade refused by a rate limit). */
  refused (identity: Identity, reason: string): void {
    this.#add(identity.subject, productOf(identity), `refused:${reason}`, 1)
  }

  /**
   * What was counted since the last call (synchronous: nothing is counted in between);
   * open sessions' counts are zeroed and their connection time accrued up to now.
   */
  take (): UsageLine[] {
    const now = this.#now()
    for (const [session, usage] of this.#open) this.#fold(session, usage, now)
    const lines = [...this.#pending.values()]
    this.#pending.clear()
    return lines
  }

  /** Gives back lines a flush could not write (Redis unreachable): they go with the next flush. */
  restore (lines: UsageLine[]): void {
    for (const line of lines) {
      for (const [metric, amount] of Object.entries(line.amounts)) this.#add(line.application, line.product, metric, amount)
    }
  }

  /** open sessions metered on this node */
  get size (): number {
    return this.#open.size
  }

  #fold (session: MeteredSession, usage: SessionUsage, now: number): void {
    const application = session.identity.subject
    const product = productOf(session.identity, session.product)
    if (usage.delivered > 0) this.#add(application, product, 'delivered', usage.delivered)
    if (usage.deliveredBytes > 0) this.#add(application, product, 'deliveredBytes', usage.deliveredBytes)
    if (usage.published > 0) this.#add(application, product, 'published', usage.published)
    if (now > usage.since) this.#add(application, product, 'connectionMs', now - usage.since)
    for (const [reason, n] of usage.refused) this.#add(application, product, `refused:${reason}`, n)
    usage.delivered = 0
    usage.deliveredBytes = 0
    usage.published = 0
    usage.refused.clear()
    usage.since = now
  }

  #add (application: string, product: string, metric: string, amount: number): void {
    const key = `${application}\u0000${product}`
    let line = this.#pending.get(key)
    if (!line) {
      line = { application, product, amounts: {} }
      this.#pending.set(key, line)
    }
    line.amounts[metric] = (line.amounts[metric] ?? 0) + amount
  }
}
