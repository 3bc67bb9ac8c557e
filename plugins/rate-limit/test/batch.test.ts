// Decisions asked while the store's last call is in flight leave together as
// one script call, and each is still decided alone: a node drain's 5,000
// resumes (a connection decision and a first delivery lease each, every one
// on its own subject) were 10,000 script calls, 11 % of the node's CPU.
// Real Redis; the limiter as the gateway makes it.
import type { Socket } from 'node:net'
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import type { PlanLimits } from '@sluice/policy'
import { REFRESH_CHUNK } from '../src/decision.ts'
import { BURST_COALESCE_MS, RateLimiter, type RateLimiterOptions } from '../src/limiter.ts'
import { MAX_BATCH, RedisLimitStore } from '../src/script.ts'
import type { RateBucket, SlotBucket } from '../src/token-bucket.ts'
import { eventually, redisUrl, unique } from '../../../test/helpers.ts'
import { countSocketWrites } from '../../../test/harness/writes.ts'

// a key prefix of this suite's own: suites sharing the run's Redis never meet
const prefix = (): string => unique('rl-suite') + ':'

const LIMITS: PlanLimits = { connections: 1, connectsPerMinute: 100, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100_000, dailyQuota: 10_000 }

/** Counts the script calls a client makes. */
function counted (redis: Redis): () => number {
  let calls = 0
  const defined = redis.sluiceLimit.bind(redis)
  redis.sluiceLimit = ((...args: Parameters<typeof defined>) => { calls++; return defined(...args) }) as typeof defined
  return () => calls
}

/** A client as the gateway's (plugins/redis): 500 ms command timeout, no offline queue. */
function client (t: Test): Redis {
  const redis = new Redis(redisUrl(), { commandTimeout: 500, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  return redis
}

/** Two seconds of refreshes every 300 ms of 200 records: about a script call a tick, where a put a record made 25. */
async function refreshCalls (t: Test, redis: Redis, what: string): Promise<void> {
  const calls = counted(redis)
  await new Promise(resolve => setTimeout(resolve, 2000))
  // ~7 ticks; each writes the 200 records as ceil(200 / REFRESH_CHUNK) = 4 puts, which leave in one call
  const ticks = Math.ceil(2000 / 300) + 1
  t.ok(calls() <= ticks * Math.ceil(Math.ceil(200 / REFRESH_CHUNK) / MAX_BATCH), `${calls()} script calls in 2 s of refreshing 200 ${what} (a put a record: about ${ticks * 25})`)
  t.ok(calls() >= 3, `and they were refreshed (${calls()} calls)`)
}

/** A limiter on the run's Redis as the gateway makes it, once its limits are shared. */
async function sharedLimiter (t: Test, options: Partial<RateLimiterOptions> = {}): Promise<{ redis: Redis, limiter: RateLimiter }> {
  const redis = client(t)
  const limiter = new RateLimiter({ redis, prefix: prefix(), nodeId: 'batch', ...options })
  t.teardown(() => limiter.close())
  await eventually(() => redis.status === 'ready' && limiter.mode === 'shared', 5000, 'Redis connected')
  return { redis, limiter }
}

test('takes asked at once leave in a few calls, and each is decided alone, in order', async t => {
  const redis = client(t)
  const store = new RedisLimitStore(redis)
  const calls = counted(redis)
  await eventually(() => redis.status === 'ready', 5000, 'Redis connected')
  const p = prefix()
  const buckets: RateBucket[] = Array.from({ length: 300 }, (_, i) => ({ kind: 'rate', key: `${p}{b${i}}:r`, capacity: 3, perSecond: 1 }))
  const one: SlotBucket = { kind: 'slots', key: `${p}{one}:conn`, capacity: 1, node: 'n', ttlMs: 10_000 }
  const asked = [
    ...buckets.map(b => store.take([{ buckets: [b], want: 2, min: 1 }])),
    // the same slot twice in one batch: the first takes it, the second finds it taken
    store.take([{ buckets: [one], want: 1, min: 1 }]),
    store.take([{ buckets: [one], want: 1, min: 1 }]),
    // the same bucket again, after its first take: one of its 3 left
    store.take([{ buckets: [buckets[0]!], want: 2, min: 1 }])
  ]
  const results = await Promise.all(asked)
  t.ok(results.slice(0, 300).every(r => r.ok && r.granted[0] === 2), 'every bucket granted its 2')
  t.same(results[300]!.granted, [1], 'the slot to the first who asked')
  t.equal(results[301]!.ok, false, 'not to the second')
  t.equal(results[301]!.limitedBy, one)
  t.same(results[302]!.granted, [1], 'a second take of a bucket in the same call sees the first one\'s (1 of 3 left)')
  const most = 1 + Math.ceil(302 / MAX_BATCH)
  t.ok(calls() <= most, `${calls()} script calls for 303 decisions (at most ${most}: one alone, then batches of ${MAX_BATCH})`)
  t.equal(store.calls, calls())
  const level = await redis.hget(buckets[1]!.key, 't')
  t.ok(Number(level) >= 1 && Number(level) < 1.5, `each bucket written as its own call would (${level} left of 3)`)
})

test('decisions asked in separate callbacks of one turn (a burst of upgrades, one callback each) leave MAX_BATCH a call, in few writes', async t => {
  const { redis, limiter } = await sharedLimiter(t)
  const calls = counted(redis)
  const writes = countSocketWrites(t, redis.stream as Socket)
  const plan = { name: 'test', limits: LIMITS }
  const subjects = Array.from({ length: 80 }, () => unique('burst'))
  // each lease asked in a callback of its own, all in one check phase: microtasks run between them, as
  // they run between the data events of the upgrades a poll phase reads
  const leases = await new Promise<Array<ReturnType<typeof limiter.lease>>>(resolve => {
    const asked: Array<ReturnType<typeof limiter.lease>> = []
    for (const s of subjects) {
      setImmediate(() => {
        asked.push(limiter.lease(s, plan.name, () => LIMITS))
        if (asked.length === subjects.length) resolve(asked)
      })
    }
  })
  await Promise.all(leases.map(l => l.primed))
  t.ok(leases.every(l => l.messages === 50 && l.grantedBy === 'redis'), 'every lease holds its 50, from Redis')
  // the first leaves at once (the store is idle), the rest in full batches and the turn's remainder
  const most = 1 + Math.ceil(79 / MAX_BATCH) + 1
  t.ok(calls() <= most, `${calls()} script calls for 80 leases asked in 80 callbacks (at most ${most})`)
  t.ok(writes() <= most, `${writes()} writes to Redis for them`)
  t.equal(limiter.stats.redisErrors, 0)
  const msg = Number(await redis.hget(limiter.key(subjects[40]!, 'test', 'msg'), 't'))
  t.ok(msg >= 50 && msg < 52, `50 of the subject's 100 per-second tokens leased (${msg} left)`)
})

test('a refresh writes many subjects\' counts a decision: 200 connections kept past their TTL in a few calls a tick', async t => {
  // a TTL of 900 ms: refreshed every 300 ms
  const { redis, limiter } = await sharedLimiter(t, { connectionTtlMs: 900 })
  const plan = { name: 'test', limits: LIMITS }
  const subjects = Array.from({ length: 200 }, () => unique('held'))
  const decided = await Promise.all(subjects.map(s => limiter.acquire(s, plan)))
  t.ok(decided.every(d => d.ok), '200 connections')
  await refreshCalls(t, redis, 'connection counts')
  // more than twice the TTL since they connected: each count is still there because the refreshes wrote it
  for (const s of [subjects[0]!, subjects[100]!, subjects[199]!]) {
    const slots = await redis.hgetall(limiter.key(s, 'test', 'conn'))
    t.same(Object.values(slots).map(v => v.split('|')[0]), ['1'], 'the subject\'s one slot, held by this node')
  }
  t.equal(limiter.stats.redisErrors, 0)
})

test('idle leases\' records are renewed many a decision: 200 held past their TTL in a few calls a tick', async t => {
  // records live 900 ms: renewed every 300 ms while held
  const { redis, limiter } = await sharedLimiter(t, { leaseTtlMs: 900 })
  const plan = { name: 'test', limits: LIMITS }
  const subjects = Array.from({ length: 200 }, () => unique('idle'))
  const leases = subjects.map(s => limiter.lease(s, plan.name, () => LIMITS))
  await Promise.all(leases.map(l => l.primed))
  t.ok(leases.every(l => l.messages === 50 && l.grantedBy === 'redis'), '200 leases of 50, from Redis')
  await refreshCalls(t, redis, 'lease records')
  // more than twice the records' TTL: each is still there, holding its 50, because the renewals wrote it
  for (const s of [subjects[0]!, subjects[100]!, subjects[199]!]) {
    const day = await redis.hgetall(limiter.key(s, 'test', 'day'))
    const records = Object.entries(day).filter(([field]) => field.startsWith('l:')).map(([, v]) => Number(v.split('|')[0]))
    t.same(records, [50], 'the lease\'s record, holding 50')
  }
  t.equal(limiter.stats.redisErrors, 0)
})

test('a decision\'s arguments reach the script as they were given: a node id with quotes, a backslash and non-ASCII text', async t => {
  const redis = client(t)
  const store = new RedisLimitStore(redis)
  await eventually(() => redis.status === 'ready', 5000, 'Redis connected')
  const p = prefix()
  const node = 'node "a"\\b|c:é✓'
  const slots: SlotBucket = { kind: 'slots', key: `${p}{odd}:conn`, capacity: 2, node, ttlMs: 10_000 }
  const rate: RateBucket = { kind: 'rate', key: `${p}{odd}:r`, capacity: 10, perSecond: 16.666666666666668 }
  const [taken, second] = await Promise.all([
    store.take([{ buckets: [rate, slots], want: 1, min: 1 }]),
    store.take([{ buckets: [rate, slots], want: 5, min: 1 }])
  ])
  t.same(taken.granted, [1])
  t.same(second.granted, [1], 'the second gets the one slot left of 2')
  const held = await redis.hgetall(slots.key)
  t.same(Object.keys(held), [node], 'the slot is held under the node id as given')
  t.equal(held[node]!.split('|')[0], '2')
  await store.put([{ bucket: slots, amount: 0, absolute: true }])
  t.same(await redis.hgetall(slots.key), {}, 'and set to 0 under the same id')
})

test('a decision that fails in a batch fails alone', async t => {
  const redis = client(t)
  const store = new RedisLimitStore(redis)
  await eventually(() => redis.status === 'ready', 5000, 'Redis connected')
  const p = prefix()
  // a key of another type: HMGET on a string is WRONGTYPE
  await redis.set(`${p}{bad}:r`, 'x', 'PX', 10_000)
  const bucket = (name: string): RateBucket => ({ kind: 'rate', key: `${p}{${name}}:r`, capacity: 5, perSecond: 5 })
  const first = store.take([{ buckets: [bucket('a')], want: 1, min: 1 }])
  // these three are asked while the first is in flight: they leave together
  const [bad, good, put] = await Promise.allSettled([
    store.take([{ buckets: [bucket('bad')], want: 1, min: 1 }]),
    store.take([{ buckets: [bucket('b')], want: 1, min: 1 }]),
    store.put([{ bucket: bucket('c'), amount: 1 }])
  ])
  t.ok((await first).ok)
  t.equal(bad.status, 'rejected')
  t.match(bad.status === 'rejected' ? String(bad.reason) : '', /WRONGTYPE/, 'with Redis\' error')
  t.equal(good.status, 'fulfilled')
  t.ok(good.status === 'fulfilled' && good.value.ok, 'the one beside it is granted')
  t.equal(put.status, 'fulfilled', 'and a put beside it is written')
})

test('1,000 subjects resuming at once (a connection and a first delivery lease each): a call per MAX_BATCH decisions, every limit exact', async t => {
  const { redis, limiter } = await sharedLimiter(t)
  const calls = counted(redis)
  const plan = { name: 'test', limits: LIMITS }
  const subjects = Array.from({ length: 1000 }, () => unique('resume'))
  // every subject connects, and the first one twice: its plan allows one connection
  const decided = await Promise.all([...subjects, subjects[0]!].map(s => limiter.acquire(s, plan)))
  const connectCalls = calls()
  t.equal(decided.filter(d => d.ok).length, 1000, 'one connection each')
  const refused = decided.filter(d => !d.ok)
  t.equal(refused.length, 1)
  t.equal(refused[0]!.ok === false && refused[0]!.limit, 'connections', 'the second of the same subject is refused on its plan\'s connections')
  t.ok(connectCalls <= Math.ceil(1001 / MAX_BATCH) + 10, `${connectCalls} script calls for 1,001 connection decisions`)
  // then each session takes its first delivery lease
  const leases = subjects.map(s => limiter.lease(s, plan.name, () => LIMITS))
  await Promise.all(leases.map(l => l.primed))
  const leaseCalls = calls() - connectCalls
  t.ok(leases.every(l => l.messages === 50 && l.grantedBy === 'redis'), 'every lease holds half a second of its plan (50), from Redis')
  t.ok(leaseCalls <= Math.ceil(1000 / MAX_BATCH) + 10, `${leaseCalls} script calls for 1,000 first leases`)
  t.equal(limiter.stats.redisErrors, 0)
  // what Redis holds is each subject's own: one slot, and 50 taken from its per-second bucket
  const slots = await redis.hgetall(limiter.key(subjects[500]!, 'test', 'conn'))
  t.same(Object.values(slots).map(v => v.split('|')[0]), ['1'], 'one slot held by this node')
  const msg = Number(await redis.hget(limiter.key(subjects[500]!, 'test', 'msg'), 't'))
  t.ok(msg >= 50 && msg < 52, `50 of the subject's 100 per-second tokens leased (${msg} left)`)
})

/**
 * `n` connects, one per turn of the event loop, each turn busy for `busyMs` (a node reading a burst of
 * upgrades spends about that on each); resolves with their decisions, the writes to Redis and the time taken.
 */
async function connectsOverTurns (t: Test, options: Partial<RateLimiterOptions>, n: number, busyMs: number): Promise<{ decided: Awaited<ReturnType<RateLimiter['acquire']>>[], writes: number, elapsedMs: number }> {
  const { redis, limiter } = await sharedLimiter(t, options)
  const writes = countSocketWrites(t, redis.stream as Socket)
  const plan = { name: 'test', limits: LIMITS }
  const started = performance.now()
  const asked = await new Promise<Array<ReturnType<RateLimiter['acquire']>>>(resolve => {
    const all: Array<ReturnType<RateLimiter['acquire']>> = []
    const turn = (): void => {
      all.push(limiter.acquire(unique('turns'), plan))
      const until = performance.now() + busyMs
      while (performance.now() < until) { /* the upgrade's own work */ }
      if (all.length < n) setImmediate(turn)
      else resolve(all)
    }
    turn()
  })
  const decided = await Promise.all(asked)
  const elapsedMs = performance.now() - started
  t.equal(limiter.stats.redisErrors, 0, 'no decision fell back to local buckets')
  return { decided, writes: writes(), elapsedMs }
}

test('a burst over many turns: its decisions leave at most once every BURST_COALESCE_MS, not once a turn', async t => {
  const n = 60
  const burst = await connectsOverTurns(t, {}, n, 0.3)
  t.ok(burst.decided.every(d => d.ok), `${n} connections granted`)
  const most = Math.ceil(burst.elapsedMs / BURST_COALESCE_MS) + 2
  t.ok(burst.writes <= most, `${burst.writes} writes to Redis for ${n} connects over ${n} turns in ${burst.elapsedMs.toFixed(1)} ms (at most ${most})`)
  // the same burst with each turn's decisions sent at its end: a write a turn
  const perTurn = await connectsOverTurns(t, { burstCoalesceMs: 0 }, n, 0.3)
  t.ok(perTurn.decided.every(d => d.ok))
  t.ok(perTurn.writes >= n * 2 / 3, `sent at each turn's end, the same burst made ${perTurn.writes} writes`)
})

test('a decision after a quiet moment is not held: it leaves at the end of its own turn', async t => {
  const { redis, limiter } = await sharedLimiter(t)
  const plan = { name: 'test', limits: LIMITS }
  t.ok((await limiter.acquire(unique('quiet'), plan)).ok)
  await new Promise(resolve => setTimeout(resolve, BURST_COALESCE_MS * 4))
  const writes = countSocketWrites(t, redis.stream as Socket)
  const decided = limiter.acquire(unique('quiet'), plan)
  await new Promise(resolve => setImmediate(resolve))
  t.equal(writes(), 1, 'written in the turn it was asked, no timer waited')
  t.ok((await decided).ok)
})
