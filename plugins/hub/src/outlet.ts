// The hub's side of a socket: what it asks of one (Outlet), the terms of a
// subscription, where one starts, and how a reader that serves one socket
// alone (catch-up, window replay, group) waits for it instead of dropping.
import type { SlowClientPolicy, ValueEncoding } from '@sluice/policy/access'
import type { Positions } from './cursor.ts'
import type { FrameFormat } from './frame.ts'

/** One socket as the hub sees it. */
export interface Outlet {
  readonly id: string
  readonly format: FrameFormat
  /** the socket's send queue bound, in bytes: a frame is written when the queue holds at most this minus its size, or is empty */
  readonly maxQueueBytes: number
  readonly closed: boolean
  /** bytes accepted for this socket and not yet handed to the kernel */
  queuedBytes (): number
  write (frame: Buffer, onWritten?: (err?: Error | null) => void): void
  /** usage metering: `frames` messages of `bytes` were just written (once per write, not per message) */
  delivered? (frames: number, bytes: number): void
  /** resolves once the send queue is at most `bytes` (default: half the bound; 0: empty), or the socket closed; never sooner */
  drained (bytes?: number): Promise<void>
  /** the subscription to `topic` has ended after drops; tell the client where to resume */
  lagging (topic: string, dropped: number, resume: string): void
  /**
   * A replay found the records [from, to) of a partition gone from Kafka (retention, DeleteRecords)
   * and goes on at `to`; called before any record from `to` is written. A protocol with no way to
   * say so leaves it out (the hub counts and logs it).
   */
  gone? (topic: string, partition: number, from: bigint, to: bigint): void
  /** the product says evict: close the socket (4008) */
  evict (topic: string): void
  /**
   * The delivery rate limit, asked per frame and synchronously (a limiter
   * leases tokens in batches, never a round trip per message). false: over
   * the plan; the hub treats it as a full queue (drop and `lagging`, or evict).
   */
  admit? (bytes: number): boolean
  /**
   * Settles once `admit` holds its first tokens (or knows it gets none).
   * Subscriptions start after it: a lease still on its way from Redis is not
   * "over the plan", and reading it so dropped a new socket's first frames.
   */
  readonly admitReady?: Promise<unknown>
}

export interface SubscriptionTerms {
  encoding: ValueEncoding
  slowClient: SlowClientPolicy
  /** the API product the topic belongs to (metrics count subscriptions by it) */
  product?: string
}

export type StartPosition =
  | { kind: 'latest' }
  | { kind: 'earliest' }
  | { kind: 'cursor', positions: Positions }

// a reader of one socket's own (catch-up, group) over its plan waits for the lease to refill: 100 ms is a fifth of a lease
export const ADMIT_RETRY_MS = 100

/** what held a write to a socket that waits: the next frame's size, and whether its delivery budget (else its queue room) held it */
export interface Held { bytes: number, admit: boolean }

/**
 * For readers that serve one socket (catch-up, group): resolves once a frame
 * of `bytes` fits the send queue, that is once the queue holds at most
 * maxQueueBytes - bytes; for a frame larger than the bound (a 600 KB record
 * against 256 KiB), once the queue is empty. Each turn waits for the outlet to
 * drain to that threshold, an event that comes (the client reads, or the
 * socket closes); the check is made again only because the socket's other
 * subscriptions may have queued frames in the meantime. Waiting for half the
 * bound instead, as this did, resolved at once and re-checked the same
 * condition without end: a frame over the bound spun the process at 100 %.
 */
export async function roomFor (outlet: Outlet, bytes: number): Promise<void> {
  const threshold = Math.max(0, outlet.maxQueueBytes - bytes)
  while (outlet.queuedBytes() > threshold && !outlet.closed) await outlet.drained(threshold)
}

/**
 * The delivery limit for readers that serve one socket: instead of dropping,
 * they wait until the plan admits the frame (a daily quota that ran out stalls
 * them for the day). false once the socket closed.
 */
export async function admitted (outlet: Outlet, bytes: number): Promise<boolean> {
  while (!outlet.closed && outlet.admit !== undefined && !outlet.admit(bytes)) {
    await new Promise(resolve => setTimeout(resolve, ADMIT_RETRY_MS))
  }
  return !outlet.closed
}

/** Waits out what held a write: the plan's next lease, or room in the socket's queue. */
export async function waitFor (outlet: Outlet, held: Held): Promise<void> {
  if (held.admit) await new Promise(resolve => setTimeout(resolve, ADMIT_RETRY_MS))
  else await roomFor(outlet, held.bytes)
}
