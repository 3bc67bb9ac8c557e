// The in-process store's arithmetic on a clock the test moves: token buckets
// refill continuously up to their capacity, daily quotas turn at 00:00 UTC,
// slots count every node's live holders, and a take is all or nothing.
import { test } from 'tap'
import { MemoryLimitStore } from '../src/store.ts'
import { DAY_MS, NEVER, type DailyBucket, type RateBucket, type SlotBucket } from '../src/token-bucket.ts'

function clock (start = 10 * DAY_MS + 1000) {
  let now = start
  return { now: () => now, advance: (ms: number) => { now += ms } }
}

const rate = (capacity: number, perSecond = capacity): RateBucket => ({ kind: 'rate', key: 'r', capacity, perSecond })
const daily = (capacity: number): DailyBucket => ({ kind: 'daily', key: 'd', capacity })
const slots = (capacity: number, node: string, ttlMs = 30_000): SlotBucket => ({ kind: 'slots', key: 's', capacity, node, ttlMs })

test('a token bucket gives its capacity at once, then refills at its rate', async t => {
  const c = clock()
  const store = new MemoryLimitStore(c.now)
  const b = rate(5)
  const take = () => store.takeNow([{ buckets: [b], want: 1, min: 1 }])
  for (let i = 0; i < 5; i++) t.ok(take().ok, `token ${i + 1} of the burst`)
  const refused = take()
  t.equal(refused.ok, false, 'the sixth is refused')
  t.equal(refused.retryAfterMs, 200, 'one token comes back in 1/5 s')
  t.equal(refused.limitedBy, b)
  c.advance(199)
  t.equal(take().ok, false, 'not a millisecond early')
  c.advance(1)
  t.ok(take().ok, 'on time')
  c.advance(60_000)
  const batch = store.takeNow([{ buckets: [b], want: 100, min: 1 }])
  t.same(batch.granted, [5], 'never more than the capacity, however long it waited')
})

test('a line grants what every one of its buckets can give; a take is all or nothing', async t => {
  const c = clock()
  const store = new MemoryLimitStore(c.now)
  const messages: RateBucket = { kind: 'rate', key: 'm', capacity: 100, perSecond: 100 }
  const quota: DailyBucket = { kind: 'daily', key: 'q', capacity: 30 }
  const bytes: RateBucket = { kind: 'rate', key: 'b', capacity: 1000, perSecond: 1000 }
  const lease = () => store.takeNow([{ buckets: [messages, quota], want: 50, min: 1 }, { buckets: [bytes], want: 400, min: 1 }])
  t.same(lease().granted, [30, 400], 'the quota caps the messages')
  const none = lease()
  t.equal(none.ok, false)
  t.equal(none.limitedBy, quota)
  t.equal(none.retryAfterMs, DAY_MS - 1000, 'the quota comes back at 00:00 UTC')
  c.advance(DAY_MS)
  t.same(lease().granted, [30, 400], 'a new day, a new quota')
  c.advance(1)
  // the quota is spent again; the bytes bucket must not have been charged by the refused take
  const refused = store.takeNow([{ buckets: [messages, quota], want: 1, min: 1 }, { buckets: [bytes], want: 100, min: 1 }])
  t.equal(refused.ok, false)
  t.same(store.takeNow([{ buckets: [bytes], want: 1000, min: 1 }]).granted, [601], '600 left after the lease, 1 more refilled: the refused take took none')
})

test('put gives tokens back, capped at the capacity; a quota gives units back', async t => {
  const c = clock()
  const store = new MemoryLimitStore(c.now)
  const b = rate(10)
  const q = daily(10)
  t.same(store.takeNow([{ buckets: [b, q], want: 10, min: 10 }]).granted, [10])
  store.putNow([{ bucket: b, amount: 4 }, { bucket: q, amount: 4 }])
  t.same(store.takeNow([{ buckets: [b, q], want: 10, min: 1 }]).granted, [4])
  store.putNow([{ bucket: b, amount: 1000 }])
  t.same(store.takeNow([{ buckets: [b], want: 100, min: 1 }]).granted, [10], 'never above the capacity')
})

test('slots: every node\'s live count; a node that stops refreshing is forgotten', async t => {
  const c = clock()
  const store = new MemoryLimitStore(c.now)
  const a = slots(3, 'a', 30_000)
  const b = slots(3, 'b', 30_000)
  const one = (s: SlotBucket) => store.takeNow([{ buckets: [s], want: 1, min: 1 }])
  t.ok(one(a).ok)
  t.ok(one(a).ok)
  t.ok(one(b).ok)
  const full = one(b)
  t.equal(full.ok, false, 'three held across two nodes: full')
  t.equal(full.retryAfterMs, 0, 'a slot has no known wait')
  store.putNow([{ bucket: a, amount: 1 }])
  t.ok(one(b).ok, 'a released slot is free for another node')
  c.advance(20_000)
  store.putNow([{ bucket: b, amount: 2, absolute: true }])
  c.advance(15_000)
  // node a has not refreshed for 35 s: its one slot is gone; b refreshed 15 s ago
  t.ok(one(a).ok)
  t.equal(one(a).ok, false, 'b\'s two and a\'s new one fill it')
})

test('a limit of 0 refuses with NEVER', async t => {
  const store = new MemoryLimitStore(clock().now)
  const refused = store.takeNow([{ buckets: [rate(0)], want: 1, min: 1 }])
  t.equal(refused.ok, false)
  t.equal(refused.retryAfterMs, NEVER)
})
