// @fastify/rate-limit's store for the gateway's HTTP routes (admin API,
// upgrade requests): its own RedisStore (one Lua script, shared by every
// node) while Redis is usable, its LocalStore while it is not and the gateway
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
// The counter and its key are RedisStore's own, so nodes that count one at a
// time (an older version in a rolling deploy) count in the same key.
import { createRequire } from 'node:module'
import type { ClientContext, Redis, Result } from 'ioredis'
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import { RateUnavailableError } from './errors.ts'
import type { RateLimiter } from './limiter.ts'

type Counted = { current: number, ttl: number }
type Callback = (error: Error | null, result?: Counted) => void
interface InnerStore {
  incr (key: string, callback: Callback, timeWindow: number, max: number): void
  child (routeOptions: unknown): InnerStore
}
type InnerCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, ...rest: unknown[]) => InnerStore

// the plugin's own stores are not in its public entry point; they are plain CommonJS files of the package
const require = createRequire(import.meta.url)
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as InnerCtor
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as InnerCtor

// RedisStore's script with INCRBY n: the window starts with the key's first count
const COUNT_SCRIPT = `
local n = tonumber(ARGV[2])
local current = redis.call('INCRBY', KEYS[1], n)
local ttl
if current == n then
  ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  ttl = redis.call('PTTL', KEYS[1])
end
return { current, ttl }
`
const COUNT_COMMAND = 'sluiceHttpCount'

declare module 'ioredis' {
  interface RedisCommander<Context extends ClientContext = { type: 'default' }> {
    sluiceHttpCount (numberOfKeys: number, key: string, timeWindow: number, n: number): Result<[number, number], Context>
  }
}

/** Requests on one key waiting for the same INCRBY. */
interface Batch {
  key: string
  timeWindow: number
  max: number
  local: InnerStore
  upgrade: boolean
  callbacks: Callback[]
}

type Params = { continueExceeding?: boolean, exponentialBackoff?: boolean, routeInfo?: { websocket?: boolean, method?: string, url?: string } }

export function httpStore (limiter: RateLimiter, redis: Redis | undefined, prefix: string): FastifyRateLimitStoreCtor {
  if (redis && typeof (redis as unknown as Record<string, unknown>)[COUNT_COMMAND] !== 'function') {
    redis.defineCommand(COUNT_COMMAND, { lua: COUNT_SCRIPT })
  }
  const batches = new Map<string, Batch>()

  function flush (batch: Batch): void {
    if (batches.get(batch.key) === batch) batches.delete(batch.key)
    const { key, timeWindow, max, local, upgrade, callbacks } = batch
    const n = callbacks.length
    limiter.decide(
      async () => {
        const [current, ttl] = await redis!.sluiceHttpCount(1, key, timeWindow, n)
        return callbacks.map((_cb, i) => ({ current: Number(current) - n + 1 + i, ttl: Number(ttl) }))
      },
      () => Promise.all(callbacks.map(() => new Promise<Counted>((resolve, reject) => {
        local.incr(key, (err, result) => err ? reject(err) : resolve(result!), timeWindow, max)
      })))
    ).then(decided => {
      callbacks.forEach((callback, i) => {
        if (typeof decided === 'symbol') {
          if (upgrade) callback(null, { current: 0, ttl: timeWindow })
          else callback(new RateUnavailableError())
        } else callback(null, decided.value[i])
      })
    }, err => { for (const callback of callbacks) callback(err as Error) })
  }

  class HttpStore implements FastifyRateLimitStore {
    readonly #shared: InnerStore | undefined
    readonly #local: InnerStore
    readonly #upgrade: boolean
    /** RedisStore's key for this route: counts coalesce under it */
    readonly #key: string
    /** RedisStore's plain counter (no continueExceeding, no exponentialBackoff, the only ones configured): coalesced */
    readonly #coalesce: boolean

    constructor (params: Params, inner?: { shared: InnerStore | undefined, local: InnerStore, key: string }) {
      const continueExceeding = params.continueExceeding ?? false
      const exponentialBackoff = params.exponentialBackoff ?? false
      this.#upgrade = params.routeInfo?.websocket === true
      this.#shared = inner ? inner.shared : redis ? new RedisStore(continueExceeding, exponentialBackoff, redis, prefix) : undefined
      this.#local = inner ? inner.local : new LocalStore(continueExceeding, exponentialBackoff)
      this.#key = inner ? inner.key : prefix
      this.#coalesce = !continueExceeding && !exponentialBackoff
    }

    incr (key: string, callback: Callback, timeWindow: number, max: number): void {
      if (this.#shared && this.#coalesce) {
        const full = this.#key + key
        let batch = batches.get(full)
        if (!batch || batch.timeWindow !== timeWindow) {
          const fresh: Batch = { key: full, timeWindow, max, local: this.#local, upgrade: this.#upgrade, callbacks: [] }
          batch = fresh
          batches.set(full, fresh)
          // after this turn's poll phase: every request it read is in the batch
          setImmediate(() => flush(fresh))
        }
        batch.callbacks.push(callback)
        return
      }
      const shared = this.#shared
      const local = this.#local
      limiter.decide(
        () => new Promise<Counted>((resolve, reject) => shared!.incr(key, (err, result) => err ? reject(err) : resolve(result!), timeWindow, max)),
        () => new Promise<Counted>((resolve, reject) => local.incr(key, (err, result) => err ? reject(err) : resolve(result!), timeWindow, max))
      ).then(decided => {
        if (typeof decided === 'symbol') {
          if (this.#upgrade) callback(null, { current: 0, ttl: timeWindow })
          else callback(new RateUnavailableError())
        } else callback(null, decided.value)
      }, err => callback(err as Error))
    }

    child (routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      const route = (routeOptions as Params).routeInfo ?? {}
      return new HttpStore(routeOptions as never, {
        shared: this.#shared?.child(routeOptions),
        local: this.#local.child(routeOptions),
        // RedisStore.child's key, so that both count in one key
        key: `${this.#key}${route.method}${route.url}-`
      })
    }
  }
  return HttpStore as unknown as FastifyRateLimitStoreCtor
}
