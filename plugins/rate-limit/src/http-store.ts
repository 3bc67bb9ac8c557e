// @fastify/rate-limit's store for the gateway's HTTP routes (admin API,
// upgrade requests): a counter in Redis (one Lua script, shared by every
// node; the key and the counting are the plugin's own RedisStore's) while
// Redis is usable, a counter in this process while it is not and the gateway
// fails open, and SLUICE_RATE_UNAVAILABLE (503) when it fails closed. The
// same failure mode and the same 500 ms bound as every other limit. On an
// upgrade request a fail-closed store lets the request on instead: the
// connection check that follows answers 503 with Retry-After in the upgrade's
// own format, which an error thrown from here could not.
//
// Counts on one key (a client address on a route) that arrive within one turn
// of the event loop go to Redis as one INCRBY of N: a burst of 1,000 upgrades
// from one address costs a handful of calls, not 1,000, each of which had to
// be answered within the decision timeout on a loop busy with the burst.
// And the keys of one turn go together, up to MAX_KEYS_PER_CALL in one script
// call: clients on the internet come from many addresses, and one call per
// address was 0.6 more script calls a resume in a 5,000-client drain from
// 5,000 addresses (bench/drain-resume.ts --addresses), on top of the limiter's
// own 1.0. The counter and its key are RedisStore's own, so nodes that count
// one at a time (an older version in a rolling deploy) count in the same key. The
// plugin's stores are not in its public entry point (only private files of
// the package), so both counters are written here; the plugin's
// continueExceeding and exponentialBackoff are not used by the gateway and
// are refused rather than half supported.
import type { ClientContext, Redis, Result } from 'ioredis'
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import { RateUnavailableError } from './errors.ts'
import type { RateLimiter } from './limiter.ts'

type Counted = { current: number, ttl: number }
type Callback = (error: Error | null, result?: Counted) => void

// RedisStore's script with INCRBY n, for each key in turn: the window starts with the key's first count.
// ARGV: per key its window (ms) and its count; the answer: per key its count after and the window's time left
const COUNT_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local n = tonumber(ARGV[2 * i])
  local current = redis.call('INCRBY', KEYS[i], n)
  local ttl
  if current == n then
    ttl = tonumber(ARGV[2 * i - 1])
    redis.call('PEXPIRE', KEYS[i], ttl)
  else
    ttl = redis.call('PTTL', KEYS[i])
  end
  out[2 * i - 1] = current
  out[2 * i] = ttl
end
return out
`
const COUNT_COMMAND = 'sluiceHttpCounts'

// A key costs Redis an INCRBY and a PEXPIRE or PTTL (a few µs); 64 keep a call well inside the decision
// timeout while a burst from 5,000 addresses is 80 calls, not 5,000. A call is one decision: the keys
// that time out together fall back together
export const MAX_KEYS_PER_CALL = 64

declare module 'ioredis' {
  interface RedisCommander<Context extends ClientContext = { type: 'default' }> {
    sluiceHttpCounts (numberOfKeys: number, ...keysThenWindowsAndCounts: Array<string | number>): Result<number[], Context>
  }
}

// The plugin's LocalStore keeps 5,000 keys (client addresses on a route) and forgets the least
// recently counted beyond: the same bound while Redis is down, so a scan of many addresses
// cannot grow the process
const LOCAL_KEYS = 5000

/** Fixed windows in this process, as the plugin's LocalStore counts: the first count of a key starts its window. */
class LocalCounter {
  readonly #windows = new Map<string, { current: number, startedAt: number }>()

  count (key: string, timeWindow: number, now = Date.now()): Counted {
    let window = this.#windows.get(key)
    if (window && window.startedAt + timeWindow > now) {
      window.current++
      // most recently counted last: the oldest is the first key of the map
      this.#windows.delete(key)
    } else {
      window = { current: 1, startedAt: now }
    }
    this.#windows.set(key, window)
    if (this.#windows.size > LOCAL_KEYS) this.#windows.delete(this.#windows.keys().next().value!)
    return { current: window.current, ttl: window.startedAt + timeWindow - now }
  }
}

/** Requests on one key waiting for the same INCRBY. */
interface Batch {
  key: string
  timeWindow: number
  upgrade: boolean
  callbacks: Callback[]
}

type Params = { continueExceeding?: boolean, exponentialBackoff?: boolean, routeInfo?: { websocket?: boolean, method?: string, url?: string } }

export function httpStore (limiter: RateLimiter, redis: Redis | undefined, prefix: string): FastifyRateLimitStoreCtor {
  if (redis && typeof (redis as unknown as Record<string, unknown>)[COUNT_COMMAND] !== 'function') {
    redis.defineCommand(COUNT_COMMAND, { lua: COUNT_SCRIPT })
  }
  // this turn's keys, in the order they were first counted
  let batches = new Map<string, Batch>()
  // one counter for every route: its keys carry the route, as Redis's do
  const local = new LocalCounter()

  /** Counts of each batch's requests, in order: the window after the n counts, each request its own place in it. */
  function spread (batch: Batch, current: number, ttl: number): Counted[] {
    const n = batch.callbacks.length
    return batch.callbacks.map((_cb, i) => ({ current: current - n + 1 + i, ttl }))
  }

  function flush (): void {
    const turn = [...batches.values()]
    batches = new Map()
    for (let i = 0; i < turn.length; i += MAX_KEYS_PER_CALL) decide(turn.slice(i, i + MAX_KEYS_PER_CALL))
  }

  function decide (call: Batch[]): void {
    const args: Array<string | number> = call.map(b => b.key)
    for (const b of call) args.push(b.timeWindow, b.callbacks.length)
    limiter.decide(
      async () => {
        const reply = await redis!.sluiceHttpCounts(call.length, ...args)
        return call.map((b, i) => spread(b, Number(reply[2 * i]), Number(reply[2 * i + 1])))
      },
      async () => call.map(b => b.callbacks.map(() => local.count(b.key, b.timeWindow)))
    ).then(decided => {
      call.forEach((batch, k) => {
        batch.callbacks.forEach((callback, i) => {
          if (typeof decided === 'symbol') {
            if (batch.upgrade) callback(null, { current: 0, ttl: batch.timeWindow })
            else callback(new RateUnavailableError())
          } else callback(null, decided.value[k]![i])
        })
      })
    }, err => { for (const batch of call) for (const callback of batch.callbacks) callback(err as Error) })
  }

  class HttpStore implements FastifyRateLimitStore {
    readonly #upgrade: boolean
    /** RedisStore's key for this route: counts coalesce under it */
    readonly #key: string

    constructor (params: Params, key = prefix) {
      if (params.continueExceeding === true || params.exponentialBackoff === true) {
        throw new Error('the gateway\'s HTTP rate-limit store counts fixed windows: continueExceeding and exponentialBackoff are not supported')
      }
      this.#upgrade = params.routeInfo?.websocket === true
      this.#key = key
    }

    incr (key: string, callback: Callback, timeWindow: number): void {
      const full = this.#key + key
      if (!redis) {
        callback(null, local.count(full, timeWindow))
        return
      }
      // after this turn's poll phase: every request it read is in the call, which leaves with the turn's connects
      if (batches.size === 0) limiter.atTurnEnd(flush)
      let batch = batches.get(full)
      if (!batch) {
        batch = { key: full, timeWindow, upgrade: this.#upgrade, callbacks: [] }
        batches.set(full, batch)
      } else if (batch.timeWindow !== timeWindow) {
        // a route's window is its config's: one key meets two windows only if the config changed
        // under it. The earlier counts go now, alone; this one starts the turn's batch of the key
        batches.delete(full)
        decide([batch])
        batch = { key: full, timeWindow, upgrade: this.#upgrade, callbacks: [] }
        batches.set(full, batch)
      }
      batch.callbacks.push(callback)
    }

    child (routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      const params = routeOptions as Params
      const route = params.routeInfo ?? {}
      // RedisStore.child's key, so that nodes of an older version count in the same key
      return new HttpStore(params, `${this.#key}${route.method}${route.url}-`)
    }
  }
  return HttpStore as unknown as FastifyRateLimitStoreCtor
}
