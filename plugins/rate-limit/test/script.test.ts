// The Lua script on a real Redis: the same arithmetic as the in-process
// store, on Redis time, every key it writes with a TTL, and a take that
// cannot be given leaves every bucket as it was.
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisLimitStore } from '../src/script.ts'
import { NEVER, DAY_MS, type DailyBucket, type RateBucket, type SlotBucket } from '../src/token-bucket.ts'
import { redisUrl, unique } from '../../../test/helpers.ts'

function setup (t: Test): { redis: Redis, store: RedisLimitStore, prefix: string } {
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.disconnect())
  return { redis, store: new RedisLimitStore(redis), prefix: unique('rl-script') + ':' }
}

/** Every key under the prefix, with its TTL in ms (-1: none). */
async function ttls (redis: Redis, prefix: string): Promise<Map<string, number>> {
  const keys = await redis.keys(`${prefix}*`)
  const out = new Map<string, number>()
  for (const key of keys) out.set(key, await redis.pttl(key))
  return out
}

test('a token bucket on Redis time: burst, refusal with the exact wait, refill', async t => {
  const { redis, store, prefix } = setup(t)
  const b: RateBucket = { kind: 'rate', key: `${prefix}pub`, capacity: 5, perSecond: 5 }
  const take = () => store.take([{ buckets: [b], want: 1, min: 1 }])
  for (let i = 0; i < 5; i++) t.ok((await take()).ok, `token ${i + 1}`)
  const refused = await take()
  t.equal(refused.ok, false)
  t.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 200, `retry within one token's time (${refused.retryAfterMs} ms)`)
  t.equal(refused.limitedBy, b)
  await new Promise(resolve => setTimeout(resolve, refused.retryAfterMs))
  t.ok((await take()).ok, 'after the wait it says, a token is there')
  const ttl = await redis.pttl(b.key)
  t.ok(ttl > 0 && ttl <= 2000, `the key expires when it would be full again (${ttl} ms)`)
})

test('lines and all-or-nothing, as the in-process store does', async t => {
  const { redis, store, prefix } = setup(t)
  const messages: RateBucket = { kind: 'rate', key: `${prefix}msg`, capacity: 100, perSecond: 100 }
  const quota: DailyBucket = { kind: 'daily', key: `${prefix}day`, capacity: 30 }
  const bytes: RateBucket = { kind: 'rate', key: `${prefix}bytes`, capacity: 1000, perSecond: 1 }
  const lease = (want: number) => store.take([{ buckets: [messages, quota], want, min: 1 }, { buckets: [bytes], want: 400, min: 1 }])
  t.same((await lease(50)).granted, [30, 400], 'the quota caps the messages; bytes as asked')
  const none = await lease(50)
  t.equal(none.ok, false)
  t.equal(none.limitedBy, quota)
  t.ok(none.retryAfterMs > 0 && none.retryAfterMs <= DAY_MS, 'until 00:00 UTC')
  t.same(none.granted, [0, 0])
  const left = await store.take([{ buckets: [bytes], want: 1000, min: 1 }])
  t.ok(left.granted[0]! >= 600 && left.granted[0]! <= 602, `the refused take took no bytes (${left.granted[0]} left)`)
  await store.put([{ bucket: quota, amount: 5 }])
  t.same((await store.take([{ buckets: [messages, quota], want: 50, min: 1 }])).granted, [5], 'units given back to the quota')
  for (const [key, ttl] of await ttls(redis, prefix)) t.ok(ttl > 0, `${key.slice(prefix.length)} has a TTL (${ttl} ms)`)
})

test('slots across nodes, released, refreshed, and forgotten with their node', async t => {
  const { redis, store, prefix } = setup(t)
  const a: SlotBucket = { kind: 'slots', key: `${prefix}conn`, capacity: 2, node: 'a', ttlMs: 600 }
  const b: SlotBucket = { ...a, node: 'b' }
  const one = (s: SlotBucket) => store.take([{ buckets: [s], want: 1, min: 1 }])
  t.ok((await one(a)).ok)
  t.ok((await one(b)).ok)
  const full = await one(b)
  t.equal(full.ok, false)
  t.equal(full.retryAfterMs, 0, 'no known wait for a slot')
  await store.put([{ bucket: b, amount: 1 }])
  t.ok((await one(a)).ok, 'released by b, taken by a')
  t.same(await redis.hgetall(a.key).then(h => Object.keys(h).sort()), ['a'], 'b\'s count of 0 is deleted')
  t.ok(await redis.pttl(a.key) > 0, 'the slot key has a TTL')
  // a stops refreshing: after its TTL its slots are free
  await new Promise(resolve => setTimeout(resolve, 700))
  t.ok((await one(b)).ok)
  t.ok((await one(b)).ok, 'a\'s two expired with it')
  await store.put([{ bucket: b, amount: 5, absolute: true }])
  t.equal((await one(a)).ok, false, 'an absolute refresh sets the node\'s count')
})

test('a limit of 0 never grants and writes nothing', async t => {
  const { redis, store, prefix } = setup(t)
  const refused = await store.take([{ buckets: [{ kind: 'rate', key: `${prefix}zero`, capacity: 0, perSecond: 0 }], want: 1, min: 1 }])
  t.equal(refused.ok, false)
  t.equal(refused.retryAfterMs, NEVER)
  t.equal((await ttls(redis, prefix)).size, 0)
})

test('the script survives SCRIPT FLUSH (a restarted Redis): ioredis reloads it', async t => {
  const { redis, store, prefix } = setup(t)
  const b: RateBucket = { kind: 'rate', key: `${prefix}flush`, capacity: 2, perSecond: 1 }
  t.ok((await store.take([{ buckets: [b], want: 1, min: 1 }])).ok)
  await redis.script('FLUSH')
  t.ok((await store.take([{ buckets: [b], want: 1, min: 1 }])).ok)
  t.equal((await store.take([{ buckets: [b], want: 1, min: 1 }])).ok, false, 'and the bucket is the same bucket')
})
