// Reconnect delays: exponential from `baseMs`, capped at `maxMs`, with jitter
// so that many connectors dropped by one feed outage do not return in step.

export interface BackoffOptions {
  baseMs: number
  maxMs: number
  /** the share of the delay that is random, 0..1 */
  jitter: number
}

/**
 * The delay before reconnect attempt `attempt` (1 for the first).
 *
 * The Kafka Connect WebSocket connector computes min(base·2^(n-1), max) and
 * adds 0–25 % of it at random; the sum can exceed its own "maximum". Here the
 * random part is taken off instead, so `maxMs` is a true upper bound and the
 * delay lies in [(1 - jitter)·d, d] for d = min(base·2^(n-1), max).
 */
export function backoffDelay (attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  // 2^52 already exceeds any maxMs; capping the exponent keeps the arithmetic finite
  const exponent = Math.min(Math.max(attempt, 1) - 1, 52)
  const capped = Math.min(options.baseMs * 2 ** exponent, options.maxMs)
  return Math.round(capped - capped * options.jitter * random())
}
