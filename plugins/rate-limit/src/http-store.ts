// @fastify/rate-limit's store for the gateway's HTTP routes (admin API,
// upgrade requests): its own RedisStore (one Lua script, shared by every
// node) while Redis is usable, its LocalStore while it is not and the gateway
// fails open, and SLUICE_RATE_UNAVAILABLE (503) when it fails closed. The
// same failure mode and the same 500 ms bound as every other limit. On an
// upgrade request a fail-closed store lets the request on instead: the
// connection check that follows answers 503 with Retry-After in the upgrade's
// own format, which an error thrown from here could not.
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
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

export function httpStore (limiter: RateLimiter, redis: Redis | undefined, prefix: string): FastifyRateLimitStoreCtor {
  class HttpStore implements FastifyRateLimitStore {
    readonly #shared: InnerStore | undefined
    readonly #local: InnerStore
    readonly #upgrade: boolean

    constructor (params: { continueExceeding?: boolean, exponentialBackoff?: boolean, routeInfo?: { websocket?: boolean } }, inner?: { shared: InnerStore | undefined, local: InnerStore }) {
      const continueExceeding = params.continueExceeding ?? false
      const exponentialBackoff = params.exponentialBackoff ?? false
      this.#upgrade = params.routeInfo?.websocket === true
      this.#shared = inner ? inner.shared : redis ? new RedisStore(continueExceeding, exponentialBackoff, redis, prefix) : undefined
      this.#local = inner ? inner.local : new LocalStore(continueExceeding, exponentialBackoff)
    }

    incr (key: string, callback: Callback, timeWindow: number, max: number): void {
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
      return new HttpStore(routeOptions as never, { shared: this.#shared?.child(routeOptions), local: this.#local.child(routeOptions) })
    }
  }
  return HttpStore as unknown as FastifyRateLimitStoreCtor
}
