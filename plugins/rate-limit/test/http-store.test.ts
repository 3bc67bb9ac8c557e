// The HTTP routes' rate-limit store without Redis: fixed windows counted in
// the process, per route and client key, as the plugin's own LocalStore
// counted (the store no longer loads the plugin's private files). With Redis
// (real): the counts of one turn, over every key, leave in few script calls,
// and each request still gets its own place in its key's window.
import type { Socket } from 'node:net'
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import { httpStore, MAX_KEYS_PER_CALL } from '../src/http-store.ts'
import { RateLimiter } from '../src/limiter.ts'
import { eventually, redisUrl, unique } from '../../../test/helpers.ts'
import { countSocketWrites } from '../../../test/harness/writes.ts'

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

/** A client as the gateway's (plugins/redis), and a count of its HTTP-count script calls. */
async function counting (t: Test): Promise<{ redis: Redis, limiter: RateLimiter, calls: () => number, wrap: () => void }> {
  const redis = new Redis(redisUrl(), { commandTimeout: 500, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  await eventually(() => redis.status === 'ready', 5000, 'Redis connected')
  const limiter = new RateLimiter({ redis })
  t.teardown(() => limiter.close())
  // the store defines the command on the client; counted once it is there
  let calls = 0
  const wrap = (): void => {
    const defined = redis.sluiceHttpCounts.bind(redis)
    redis.sluiceHttpCounts = ((...args: Parameters<typeof defined>) => { calls++; return defined(...args) }) as typeof defined
  }
  return { redis, limiter, calls: () => calls, wrap }
}

test('with Redis: one turn\'s counts over 200 addresses and two routes leave in a few calls, each counted', async t => {
  const { redis, limiter, calls, wrap } = await counting(t)
  const prefix = unique('rl-http') + ':'
  const Store = httpStore(limiter, redis, prefix)
  wrap()
  const root = new Store({} as never)
  const upgrade = root.child(routeOptions('/v1/stream'))
  const admin = root.child(routeOptions('/admin/policy'))
  const addresses = Array.from({ length: 200 }, (_, i) => `10.1.${i >> 8}.${i & 255}`)
  // all asked in one turn: 200 keys of /v1/stream, the first 20 twice more, and 20 keys of /admin
  const first = await Promise.all([
    ...addresses.map(a => count(upgrade, a, 60_000)),
    ...addresses.slice(0, 20).map(a => count(upgrade, a, 60_000)),
    ...addresses.slice(0, 20).map(a => count(upgrade, a, 60_000)),
    ...addresses.slice(0, 20).map(a => count(admin, a, 10_000))
  ])
  const keys = 200 + 20
  t.equal(calls(), Math.ceil(keys / MAX_KEYS_PER_CALL), `${keys} keys in ${Math.ceil(keys / MAX_KEYS_PER_CALL)} calls of at most ${MAX_KEYS_PER_CALL}`)
  t.same(first.slice(0, 200).map(c => c.current), new Array(200).fill(1), 'each address: its first count is 1')
  t.same(first.slice(200, 220).map(c => c.current), new Array(20).fill(2), 'the same address again in the turn: 2')
  t.same(first.slice(220, 240).map(c => c.current), new Array(20).fill(3), 'and again: 3')
  t.same(first.slice(240).map(c => c.current), new Array(20).fill(1), 'another route of the same address counts apart')
  t.ok(first.slice(0, 240).every(c => c.ttl === 60_000), 'a new window: its whole time left')
  t.ok(first.slice(240).every(c => c.ttl === 10_000), 'each key with its own route\'s window')
  // in Redis: RedisStore's keys and counts, with their windows set
  t.equal(await redis.get(`${prefix}GET/v1/stream-${addresses[0]}`), '3')
  t.equal(await redis.get(`${prefix}GET/v1/stream-${addresses[199]}`), '1')
  const pttl = await redis.pttl(`${prefix}GET/admin/policy-${addresses[0]}`)
  t.ok(pttl > 0 && pttl <= 10_000, `the admin key expires with its window (${pttl} ms)`)
  // a later turn continues each key's window
  const before = calls()
  const later = await Promise.all([count(upgrade, addresses[0]!, 60_000), count(upgrade, addresses[100]!, 60_000)])
  t.equal(calls() - before, 1, 'a later turn: its own call')
  t.same(later.map(c => c.current), [4, 2])
  t.ok(later.every(c => c.ttl > 0 && c.ttl <= 60_000), 'the time left of the window already started')
})

test('with Redis: a call that fails sends its keys to local counts (fail-open), one error a call', async t => {
  const { redis, limiter } = await counting(t)
  const Store = httpStore(limiter, redis, unique('rl-http') + ':')
  const upgrade = new Store({} as never).child(routeOptions('/v1/stream'))
  // a script that fails on Redis: the call's keys are decided by the local counter instead (fail-open)
  redis.sluiceHttpCounts = (() => Promise.reject(new Error('ERR a failed script'))) as never
  const counted = await Promise.all(Array.from({ length: 100 }, (_, i) => count(upgrade, `10.2.0.${i}`, 60_000)))
  t.ok(counted.every(c => c.current === 1 && c.ttl === 60_000), 'each address counted in the process')
  t.equal(limiter.stats.redisErrors, Math.ceil(100 / MAX_KEYS_PER_CALL), 'one Redis error a call')
})

test('with Redis: a turn\'s HTTP counts and connects leave in one write to Redis, each answered', async t => {
  const { redis, limiter, calls, wrap } = await counting(t)
  const Store = httpStore(limiter, redis, unique('rl-http') + ':')
  wrap()
  const upgrade = new Store({} as never).child(routeOptions('/v1/stream'))
  const plan = { name: 'test', limits: { connections: 10, connectsPerMinute: 100, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100_000, dailyQuota: 1000 } }
  await limiter.acquire(unique('warm'), plan)
  // the writes on the client's socket to Redis from here on: each a syscall
  const writes = countSocketWrites(t, redis.stream as Socket)
  // asked in one turn, as a burst of upgrades is read: requests' counts, and connects of requests counted earlier
  const subjects = Array.from({ length: 20 }, () => unique('turn'))
  const [counted, connected] = await Promise.all([
    Promise.all(Array.from({ length: 20 }, (_, i) => count(upgrade, `10.3.0.${i}`, 60_000))),
    Promise.all(subjects.map(s => limiter.acquire(s, plan)))
  ])
  t.equal(calls(), 1, 'the counts: one script call')
  t.equal(writes(), 1, 'the counts and the connects: one write to Redis')
  t.ok(counted.every(c => c.current === 1 && c.ttl === 60_000), 'each address counted')
  t.ok(connected.every(d => d.ok), 'each connect granted')
  t.equal(limiter.stats.redisErrors, 0)
})
