// Fastify-free: the arithmetic of the three kinds of limit, shared by the
// in-process store (memory-store.ts) and mirrored line by line by the Lua
// script (script.ts), so that one node without Redis and many nodes with it
// count the same way.
//
//   rate   a token bucket: `capacity` tokens at most, refilled continuously at
//          `perSecond`; a full bucket is the same as no bucket (its key expires)
//   daily  a quota per UTC day: `capacity` units, all back at 00:00 UTC
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

export function dailyWaitMs (need: number, capacity: number, now: number): number {
  return need > capacity ? NEVER : msUntilNextDay(now)
}
