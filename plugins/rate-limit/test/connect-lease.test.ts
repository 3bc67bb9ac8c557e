// A connection that will deliver takes its subject's delivery lease's first
// batch in its connect's decision (limiter.ts acquire): one script decision a
// resume where a new subject took two, each a round trip. The batch is
// decided only when the connect was granted, and on its own. Real Redis; the
// in-process store (fail-open, no Redis) decides the same way.
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import type { PlanLimits } from '@sluice/policy'
import { RateLimiter } from '../src/limiter.ts'
import { MAX_BATCH, RedisLimitStore } from '../src/script.ts'
import { MemoryLimitStore, type Line, type LimitStore } from '../src/store.ts'
import type { DailyBucket, RateBucket, SlotBucket } from '../src/token-bucket.ts'
import { eventually, redisUrl, unique } from '../../../test/helpers.ts'

const LIMITS: PlanLimits = { connections: 1, connectsPerMinute: 100, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100_000, dailyQuota: 10_000 }

function client (t: Test): Redis {
  const redis = new Redis(redisUrl(), { commandTimeout: 500, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  return redis
}

/** Counts the script calls a client makes. */
function counted (redis: Redis): () => number {
  let calls = 0
  const defined = redis.sluiceLimit.bind(redis)
  redis.sluiceLimit = ((...args: Parameters<typeof defined>) => { calls++; return defined(...args) }) as typeof defined
  return () => calls
}

/** A connection's line and a lease's two, on buckets of their own under `p`: a slot of `slots`, a quota of `quota`. */
function buckets (p: string, slots: number, quota: number): { connect: Line[], lease: Line[], slot: SlotBucket, msg: RateBucket, day: DailyBucket } {
  const slot: SlotBucket = { kind: 'slots', key: `${p}{s}:conn`, capacity: slots, node: 'n1', ttlMs: 10_000 }
  const connects: RateBucket = { kind: 'rate', key: `${p}{s}:connects`, capacity: 10, perSecond: 1 }
  const msg: RateBucket = { kind: 'rate', key: `${p}{s}:msg`, capacity: 100, perSecond: 100 }
  const day: DailyBucket = { kind: 'daily', key: `${p}{s}:day`, capacity: quota, lease: { id: 'n1:1', ttlMs: 30_000, held: 0 } }
  const bytes: RateBucket = { kind: 'rate', key: `${p}{s}:bytes`, capacity: 1000, perSecond: 1000 }
  return {
    connect: [{ buckets: [connects, slot], want: 1, min: 1 }],
    lease: [{ buckets: [msg, day], want: 50, min: 1 }, { buckets: [bytes], want: 500, min: 1 }],
    slot,
    msg,
    day
  }
}

for (const kind of ['redis', 'memory'] as const) {
  test(`takeThen on the ${kind} store: the second take only after a granted first, and on its own`, async t => {
    const redis = kind === 'redis' ? client(t) : undefined
    if (redis) await eventually(() => redis.status === 'ready', 5000, 'Redis connected')
    const store: LimitStore = redis ? new RedisLimitStore(redis) : new MemoryLimitStore()
    const p = unique('rl-then') + ':'

    const both = buckets(p + 'a', 1, 10_000)
    const started = performance.now()
    const [connect, lease] = await store.takeThen(both.connect, both.lease)
    t.same(connect.granted, [1], 'the connect')
    t.ok(lease, 'and the lease, decided with it')
    t.same(lease!.granted, [50, 500], 'half a second of messages, the bytes asked')

    // the slot is taken: the connect is refused, and the lease's buckets are not touched
    const [refused, notAsked] = await store.takeThen(both.connect, both.lease)
    t.equal(refused.ok, false)
    t.equal(refused.limitedBy, both.slot, 'refused on the slot')
    t.equal(notAsked, undefined, 'the lease was not decided')
    const after = await store.take([{ buckets: [both.msg], want: 100, min: 1 }])
    // 50 left, and what the bucket refilled since (100 a second: 3 on a run where the three calls took 30 ms);
    // had the refused connect's lease taken its 50, that refill would be all there is
    const refilled = Math.ceil((performance.now() - started) * both.msg.perSecond / 1000) + 1
    t.ok(after.granted[0]! >= 50 && after.granted[0]! <= 50 + refilled, `the refused connect's lease took no messages (${after.granted[0]} of 100 left after the first 50; up to ${refilled} refilled)`)

    // a quota of 0 refuses the lease, not the connect it rode with
    const empty = buckets(p + 'b', 1, 0)
    const [granted, leaseRefused] = await store.takeThen(empty.connect, empty.lease)
    t.same(granted.granted, [1], 'the connect is granted')
    t.equal(leaseRefused?.ok, false, 'the lease is refused')
    t.equal(leaseRefused?.limitedBy, empty.day, 'on its daily quota')
    const again = await store.take(empty.connect)
    t.equal(again.ok, false, 'the connect\'s slot was taken, as a granted connect takes it')
  })
}

test('1,000 subjects resuming at once: each connect carries its lease, and the sessions find their leases granted', async t => {
  const redis = client(t)
  const limiter = new RateLimiter({ redis, prefix: unique('rl-cl') + ':', nodeId: 'cl' })
  t.teardown(() => limiter.close())
  await eventually(() => redis.status === 'ready' && limiter.mode === 'shared', 5000, 'Redis connected')
  const calls = counted(redis)
  const plan = { name: 'test', limits: LIMITS }
  const subjects = Array.from({ length: 1000 }, () => unique('resume'))
  // every subject connects, and the first one twice: its plan allows one connection
  const decided = await Promise.all([...subjects, subjects[0]!].map(s => limiter.acquire(s, plan, () => LIMITS)))
  t.equal(decided.filter(d => d.ok).length, 1000, 'one connection each')
  t.equal(decided.filter(d => !d.ok).length, 1, 'the second of the same subject is refused')
  const connectCalls = calls()
  // two decisions a subject before (a connect, then its session's lease) would be 2,001 decisions
  t.ok(connectCalls <= Math.ceil(1001 / MAX_BATCH) + 10, `${connectCalls} script calls for 1,001 connects with their leases`)
  t.equal(limiter.leases, 1000, 'a lease per connected subject, held by its connection')
  // each session then asks its subject's lease: already granted, no call
  const leases = subjects.map(s => limiter.lease(s, plan.name, () => LIMITS))
  await Promise.all(leases.map(l => l.primed))
  t.ok(leases.every(l => l.messages === 50 && l.grantedBy === 'redis'), 'every lease holds half a second of its plan (50), from Redis')
  t.equal(calls(), connectCalls, 'and the sessions asked Redis nothing')
  t.equal(limiter.stats.redisErrors, 0)
  const msg = Number(await redis.hget(limiter.key(subjects[500]!, 'test', 'msg'), 't'))
  t.ok(msg >= 50 && msg < 52, `50 of the subject's 100 per-second tokens leased (${msg} left)`)

  // the connection and its session each hold the lease: it ends with the last of them, and gives its tokens back
  const first = decided[0]!
  if (!first.ok) throw new Error('the first connect was granted')
  limiter.releaseLease(leases[0]!)
  t.equal(limiter.leases, 1000, 'the session closed, the connection still holds the lease')
  first.release()
  first.release()
  t.equal(limiter.leases, 999, 'the connection closed too (twice: once counted)')
  await eventually(async () => Number(await redis.hget(limiter.key(subjects[0]!, 'test', 'msg'), 't')) >= 99, 3000, 'the unused 50 given back')
})

test('a refused connect keeps no lease and leaves no lease record', async t => {
  const redis = client(t)
  const limiter = new RateLimiter({ redis, prefix: unique('rl-cl') + ':', nodeId: 'cl' })
  t.teardown(() => limiter.close())
  await eventually(() => redis.status === 'ready' && limiter.mode === 'shared', 5000, 'Redis connected')
  const none = { ...LIMITS, connectsPerMinute: 0 }
  const subject = unique('refused')
  const decided = await limiter.acquire(subject, { name: 'none', limits: none }, () => none)
  t.equal(decided.ok, false)
  t.equal(!decided.ok && decided.limit, 'connectsPerMinute')
  await eventually(() => limiter.leases === 0, 2000, 'the lease made for it is gone')
  t.same(await redis.hgetall(limiter.key(subject, 'none', 'day')), {}, 'the daily quota holds no lease record')
  t.equal(await redis.exists(limiter.key(subject, 'none', 'msg')), 0, 'and no message was taken')
})

test('without Redis (one node), a connect carries its lease the same way', async t => {
  const limiter = new RateLimiter()
  t.teardown(() => limiter.close())
  const plan = { name: 'test', limits: LIMITS }
  const decided = await limiter.acquire('dev', plan, () => LIMITS)
  t.equal(decided.ok, true)
  const lease = limiter.lease('dev', plan.name, () => LIMITS)
  await lease.primed
  t.equal(lease.messages, 50, 'granted from the in-process store')
  t.equal(lease.grantedBy, 'local')
})

test('a then of anything but two takes fails alone, as the batch says a decision fails', async t => {
  const redis = client(t)
  await eventually(() => redis.status === 'ready', 5000, 'Redis connected')
  const store = new RedisLimitStore(redis)
  const p = unique('rl-then-bad') + ':'
  const bad = JSON.stringify(['then', 1, ['put', 0], ['take', 0]])
  const reply = await redis.sluiceLimit(1, `${p}{x}:r`, 'batch', 1, 1, bad) as unknown as unknown[]
  const answer = reply[0] as unknown[]
  t.ok(Array.isArray(answer), 'an answer in its place')
  t.equal(answer[0], 'err')
  t.match(String(answer[1]), /then: two takes/)
  // the store's own takeThen still decides
  const ok = buckets(p + 'ok', 1, 100)
  const [connect] = await store.takeThen(ok.connect, ok.lease)
  t.equal(connect.ok, true)
})
