// The HTTP routes' rate-limit store without Redis: fixed windows counted in
// the process, per route and client key, as the plugin's own LocalStore
// counted (the store no longer loads the plugin's private files).
import { test } from 'tap'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import { httpStore } from '../src/http-store.ts'
import type { RateLimiter } from '../src/limiter.ts'

type Counted = { current: number, ttl: number }

function count (store: FastifyRateLimitStore, key: string, timeWindow: number): Promise<Counted> {
  return new Promise((resolve, reject) => store.incr(key, (err, result) => err ? reject(err) : resolve(result as Counted), timeWindow, 10))
}

const routeOptions = (url: string) => ({ routeInfo: { method: 'GET', url } }) as unknown as Parameters<FastifyRateLimitStore['child']>[0]

test('without Redis: a fixed window per route and key, starting with its first count', async t => {
  const Store = httpStore({} as RateLimiter, undefined, 'sluice:http:')
  const root = new Store({} as never)
  const a = root.child(routeOptions('/a'))
  const b = root.child(routeOptions('/b'))
  t.match(await count(a, '10.0.0.1', 1000), { current: 1, ttl: 1000 })
  t.match(await count(a, '10.0.0.1', 1000), { current: 2 })
  t.match(await count(a, '10.0.0.2', 1000), { current: 1 }, 'another client has its own count')
  t.match(await count(b, '10.0.0.1', 1000), { current: 1 }, 'another route has its own count')
  const third = await count(a, '10.0.0.1', 1000)
  t.equal(third.current, 3)
  t.ok(third.ttl > 0 && third.ttl <= 1000, `the window's time left (${third.ttl} ms)`)
  const short = root.child(routeOptions('/short'))
  await count(short, 'k', 50)
  await count(short, 'k', 50)
  await new Promise(resolve => setTimeout(resolve, 80))
  t.match(await count(short, 'k', 50), { current: 1, ttl: 50 }, 'a new window once the last one ended')
})

test('without Redis: at most 5,000 keys are kept, the least recently counted go first', async t => {
  const Store = httpStore({} as RateLimiter, undefined, 'sluice:http:')
  const store = new Store({} as never).child(routeOptions('/scan'))
  await count(store, 'kept', 60_000)
  for (let i = 0; i < 5000; i++) {
    await count(store, `scan-${i}`, 60_000)
    if (i % 1000 === 0) await count(store, 'kept', 60_000)
  }
  t.match(await count(store, 'scan-0', 60_000), { current: 1 }, 'the oldest key was forgotten')
  t.ok((await count(store, 'kept', 60_000)).current > 1, 'a key counted lately was kept')
})

test('continueExceeding and exponentialBackoff are refused, not half supported', async t => {
  const Store = httpStore({} as RateLimiter, undefined, 'sluice:http:')
  t.throws(() => new Store({ continueExceeding: true } as never), /not supported/)
  t.throws(() => new Store({} as never).child({ routeInfo: { method: 'GET', url: '/' }, exponentialBackoff: true } as never), /not supported/)
})
