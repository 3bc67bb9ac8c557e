// Fastify-free: the arithmetic of the three kinds of limit, shared by the
// in-process store (memory-store.ts) and mirrored line by line by the Lua
// script (script.ts), so that one node without Redis and many nodes with it
// count the same way.
//
//   rate   a token bucket: `capacity` tokens at most, refilled continuously at
//          `perSecond`; a full bucket is the same as no bucket (its key expires)
//   daily  a quota per UTC day: `capacity` units, all back at 00:00 UTC; a
//          node's delivery lease on it is recorded beside it with a deadline,
//          so that what a dead node held comes back when the deadline passes
//   slots  concurrent holders (connections): each node keeps its own count,
//          which expires unless the node refreshes it, so a dead node's
//          connections free themselves

export const DAY_MS = 86_400_000
/** a wait the limit cannot end (a limit of 0, or more asked than it holds) */
export const NEVER = -1
// a key outlives the moment it would be full by this much: a read in that second still finds it
export const RATE_TTL_MARGIN_MS = 1000
// a daily quota outlives its day by an hour: a node whose day already turned still reads it right
export const DAILY_TTL_MARGIN_MS = 3_600_000

export interface RateBucket {
  kind: 'rate'
  key: string
  capacity: number
  perSecond: number
}

export interface DailyBucket {
  kind: 'daily'
  key: string
  capacity: number
  /** the delivery lease a take or put is for: recorded in the shared store, so that it can expire */
  lease?: DailyLease
}

/**
 * A node's delivery lease on a daily quota. The shared store keeps, per
 * lease, the tokens it granted and the node has not reported spent, with a
 * deadline: the node renews it while it holds the lease and ends it when it
 * gives the rest back; past the deadline (the node died) the store credits
 * the tokens back to the quota before its next decision.
 */
export interface DailyLease {
  id: string
  /** the record expires this long after its last grant or renewal */
  ttlMs: number
  /** take: what the node holds of this lease now (the record is set to that plus the grant, never above what it held) */
  held: number
}

export interface SlotBucket {
  kind: 'slots'
  key: string
  capacity: number
  /** this gateway instance: its count lives under this name */
  node: string
  /** a node's count is forgotten this long after its last refresh */
  ttlMs: number
}

export type Bucket = RateBucket | DailyBucket | SlotBucket

/** Tokens in a rate bucket at `now`, given what it held at `at`. */
export function rateLevel (tokens: number | undefined, at: number | undefined, now: number, capacity: number, perSecond: number): number {
  if (tokens === undefined || at === undefined) return capacity
  // a clock that went backwards (a Redis failover) refills nothing and takes nothing
  const refilled = now > at ? tokens + (now - at) * perSecond / 1000 : tokens
  return Math.min(capacity, refilled)
}

/** How long until a rate bucket at `level` holds `need` tokens. */
export function rateWaitMs (level: number, need: number, capacity: number, perSecond: number): number {
  if (need > capacity || perSecond <= 0) return NEVER
  return Math.max(0, Math.ceil((need - level) * 1000 / perSecond))
}

/** How long a rate bucket's key must live: until it is full again, then it is the same as absent. */
export function rateTtlMs (level: number, capacity: number, perSecond: number): number {
  if (perSecond <= 0) return RATE_TTL_MARGIN_MS
  return Math.ceil(Math.max(0, capacity - level) * 1000 / perSecond) + RATE_TTL_MARGIN_MS
}

export function dayOf (now: number): number {
  return Math.floor(now / DAY_MS)
}

export function msUntilNextDay (now: number): number {
  return (dayOf(now) + 1) * DAY_MS - now
}

/** What a daily quota has left today, given the day and count stored. */
export function dailyLevel (day: number | undefined, used: number | undefined, now: number, capacity: number): number {
  if (day !== dayOf(now)) return capacity
  return capacity - (used ?? 0)
}

// A lease takes at most a quarter of what the quota has left: with three
// nodes (the cluster suites' count) the leases hold at most 1 - (3/4)^3 = 58 %
// of it and a fourth still gets a quarter of the rest, so leases alone never
// leave a node refused while undelivered quota remains. Smaller shares cost
// more Redis calls near the end of the quota: a node spending a whole quota Q
// alone refills about log(Q) / log(4/3) times (64 for 100 million), plus a
// few one-token leases for its last 8 tokens.
export const DAILY_LEASE_SHARE = 4

/** What a lease may take of a daily quota at `level`: a share of it, and at least the last token. */
export function dailyLeaseLevel (level: number): number {
  if (level < 1) return level
  return Math.max(1, Math.floor(level / DAILY_LEASE_SHARE))
}

export function dailyWaitMs (need: number, capacity: number, now: number): number {
  return need > capacity ? NEVER : msUntilNextDay(now)
}
