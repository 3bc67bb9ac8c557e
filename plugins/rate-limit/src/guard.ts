// The stream's rate limits (StreamGuard): a plan's publish bucket before each
// publish, and a delivery budget per socket backed by the node's lease for
// the subject's plan. Which plan: the publish decision's plan for a publish
// (the topic's product decides it); for connections and delivery, the
// subject's plan (plugins/policy plans.ts: an API key's plan, or the most
// generous plan of the rules that match the subject).
import type { Identity } from '@sluice/protocol/identity'
import type { PlanLimits } from '@sluice/policy'
import { CLOSE, type DeliveryBudget, type StreamGuard } from '@sluice/sessions'
import type { LeaseHolder, Refusal } from './lease.ts'
import type { LimitName, PlanRef, RateLimiter } from './limiter.ts'

/** What the guard needs of a session: /v1/stream's StreamSession, or the compat endpoint's. */
export interface GuardedSession {
  readonly identity: Identity
  close (code: number, reason: string): void
  /** sends a server frame (the daily-quota notice); a session without it is only refused */
  notify? (frame: Record<string, unknown>): void
}

export interface PlanSource {
  /** the plan for connection and delivery limits; undefined: no rule grants the subject anything */
  subjectPlan (identity: Identity): PlanRef | undefined
  /** a plan's limits as the policy in force says (publish decisions name the plan) */
  plan (name: string): PlanLimits | undefined
}

export interface AbuseOptions {
  /** publishes sent while told to wait that are forgiven (a pipeline in flight when the error was sent) */
  burst: number
  /** how fast that allowance comes back, per second */
  leakPerSecond: number
}

export interface RateGuardOptions {
  /** limits for a subject no rule grants anything (it can open a socket and be told no, little else) */
  unplanned: PlanLimits
  abuse: AbuseOptions
}

// the name under which subjects without a plan are counted
export const UNPLANNED = '_unplanned'

interface PublishState {
  /** told to wait until then (this node's clock: only durations matter) */
  blockedUntil: number
  strikes: number
  strikesAt: number
}

export class RateGuard implements StreamGuard {
  readonly #limiter: RateLimiter
  readonly #plans: PlanSource
  readonly #options: RateGuardOptions
  readonly #publishers = new WeakMap<GuardedSession, PublishState>()

  constructor (limiter: RateLimiter, plans: PlanSource, options: RateGuardOptions) {
    this.#limiter = limiter
    this.#plans = plans
    this.#options = options
  }

  /** The plan a subject's connections and deliveries count against. */
  planFor (identity: Identity): PlanRef {
    return this.#plans.subjectPlan(identity) ?? { name: UNPLANNED, limits: this.#options.unplanned }
  }

  /**
   * Before each publish. A client that waits `retryAfterMs` after a refusal
   * is never struck; publishes sent while told to wait are refused here
   * without asking Redis, and once more of them than `abuse.burst` pile up
   * (less what leaks back per second) the socket is closed with 4029.
   */
  async publish (session: GuardedSession, terms?: { plan: string }): Promise<{ retryAfterMs: number, close?: boolean } | undefined> {
    const now = this.#limiter.now()
    let state = this.#publishers.get(session)
    if (state && now < state.blockedUntil) {
      const abuse = this.#options.abuse
      state.strikes = Math.max(0, state.strikes - (now - state.strikesAt) * abuse.leakPerSecond / 1000) + 1
      state.strikesAt = now
      this.#limiter.stats.limited.publishedPerSecond++
      return { retryAfterMs: Math.ceil(state.blockedUntil - now), close: state.strikes > abuse.burst }
    }
    const plan = this.#publishPlan(session.identity, terms)
    const decided = await this.#limiter.publish(session.identity.subject, plan)
    if (decided.ok) return undefined
    if (decided.limit === 'unavailable') {
      // fail-closed after the upgrade: 1013, try again later
      session.close(CLOSE.TRY_LATER, 'rate limits unavailable')
      return { retryAfterMs: decided.retryAfterMs }
    }
    if (!state) {
      state = { blockedUntil: 0, strikes: 0, strikesAt: now }
      this.#publishers.set(session, state)
    }
    state.blockedUntil = now + decided.retryAfterMs
    return { retryAfterMs: decided.retryAfterMs }
  }

  #publishPlan (identity: Identity, terms: { plan: string } | undefined): PlanRef {
    if (terms) {
      const limits = this.#plans.plan(terms.plan)
      if (limits) return { name: terms.plan, limits }
    }
    return this.planFor(identity)
  }

  /** A plan's limits for its delivery leases, as the policy in force says at each refill (a reload applies to live sockets). */
  leaseLimits (plan: PlanRef): () => PlanLimits {
    return () => this.#plans.plan(plan.name) ?? plan.limits
  }

  /** The socket's delivery budget: the node's lease for the subject's plan. */
  delivery (session: GuardedSession): DeliveryBudget | undefined {
    const plan = this.planFor(session.identity)
    const stats = this.#limiter.stats
    const lease = this.#limiter.lease(session.identity.subject, plan.name, this.leaseLimits(plan))
    const holder: LeaseHolder = {
      refused: (refusal: Refusal) => {
        // never inside the hub's dispatch loop: after it
        queueMicrotask(() => this.#refused(session, plan, refusal))
      }
    }
    lease.holders.add(holder)
    const limitOf = (): LimitName => {
      const limit = lease.refusal?.limit
      return limit === 'dailyQuota' ? 'dailyQuota' : limit === 'bytes' ? 'bytesPerSecond' : 'deliveredPerSecond'
    }
    let released = false
    return {
      ready: lease.primed,
      take (bytes: number): boolean {
        if (lease.take(bytes)) {
          stats.allowed.deliveredPerSecond++
          return true
        }
        stats.limited[limitOf()]++
        lease.explain(holder)
        return false
      },
      release: () => {
        if (released) return
        released = true
        lease.holders.delete(holder)
        this.#limiter.releaseLease(lease)
      }
    }
  }

  #refused (session: GuardedSession, plan: PlanRef, refusal: Refusal): void {
    if (refusal.limit === 'unavailable') {
      session.close(CLOSE.TRY_LATER, 'rate limits unavailable')
      return
    }
    if (refusal.limit !== 'dailyQuota') return
    const quota = this.#plans.plan(plan.name)?.dailyQuota ?? plan.limits.dailyQuota
    session.notify?.({
      op: 'error',
      code: 'RATE_LIMITED',
      limit: 'dailyQuota',
      message: `daily quota reached: ${quota} messages per UTC day on plan "${plan.name}"; delivery resumes at 00:00 UTC`,
      retryAfterMs: Math.max(0, Math.ceil(refusal.until - this.#limiter.now()))
    })
  }
}
