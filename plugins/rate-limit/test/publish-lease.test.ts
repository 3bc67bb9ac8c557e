// The publish lease: against a fake source (pure logic), the publishes that
// find the lease empty share one refill that asks for all of them, those it
// cannot cover are refused with the wait the store names, a steady stream
// refills ahead and never waits; and on the real Redis, two limiters (two
// nodes) publishing for one subject as fast as they are let stay within the
// plan plus the two leased slices in every window, a lease unused for a
// second goes back, and failing closed refuses publishes although the lease
// still holds tokens.
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import { PublishLease, type PublishGrant, type PublishSource, type PublishTake } from '../src/lease.ts'
import { RateLimiter, type PlanRef } from '../src/limiter.ts'
import { redisUrl, unique } from '../../../test/helpers.ts'

function source (slice = 10) {
  const asked: number[] = []
  const given: Array<{ tokens: number, source: string }> = []
  let answer: (tokens: number) => PublishGrant = tokens => ({ ok: true, tokens, source: 'redis', retryAfterMs: 0 })
  let now = 0
  const src: PublishSource = {
    slice: () => slice,
    now: () => now,
    refill: async tokens => { asked.push(tokens); return answer(tokens) },
    giveBack: async (tokens, s) => { given.push({ tokens, source: s }) }
  }
  return { src, asked, given, answer: (fn: typeof answer) => { answer = fn }, advance: (ms: number) => { now += ms } }
}

const turn = () => new Promise(resolve => setImmediate(resolve))

test('the publishes of one turn that find the lease empty share one refill asking for all of them', async t => {
  const s = source(10)
  const lease = new PublishLease(s.src)
  const taken = await Promise.all(Array.from({ length: 25 }, () => lease.take()))
  t.ok(taken.every(r => r.ok), 'all 25 granted')
  t.same(s.asked, [25], 'one refill, for the 25 waiting (more than the slice of 10)')
  t.equal(lease.tokens, 0, 'nothing held beyond what they spent')
})

test('a refill cut short refuses the publishes it leaves out, with the store\'s wait, without asking again', async t => {
  const s = source(10)
  s.answer(() => ({ ok: true, tokens: 5, source: 'redis', retryAfterMs: 200 }))
  const lease = new PublishLease(s.src)
  const taken: PublishTake[] = await Promise.all(Array.from({ length: 15 }, () => lease.take()))
  t.equal(taken.filter(r => r.ok).length, 5, 'the 5 granted')
  const refused = taken.filter(r => !r.ok)
  t.equal(refused.length, 10)
  t.ok(refused.every(r => !r.ok && !r.unavailable && r.retryAfterMs === 200), 'the others wait what the store said')
  t.equal(s.asked.length, 1, 'one call to the store')
  s.advance(100)
  const early = await lease.take()
  t.same(early, { ok: false, unavailable: false, retryAfterMs: 100 }, 'before the wait is over: refused locally, with what is left of it')
  t.equal(s.asked.length, 1)
  s.advance(100)
  s.answer(tokens => ({ ok: true, tokens, source: 'redis', retryAfterMs: 0 }))
  t.same(await lease.take(), { ok: true }, 'after it: granted')
})

test('a steady stream refills ahead of need: no publish waits after the first', async t => {
  const s = source(10)
  const lease = new PublishLease(s.src)
  await lease.take()
  let waited = 0
  for (let i = 0; i < 200; i++) {
    const r = lease.take()
    if (r instanceof Promise) {
      waited++
      await r
    }
    await turn()
  }
  t.equal(waited, 0, 'every publish found a token')
  t.ok(s.asked.length <= 45, `${s.asked.length} refills for 201 publishes in slices of 10`)
  t.ok(lease.tokens <= 10, `never more than a slice held (${lease.tokens})`)
})

test('a slice of one token does not lease ahead: a slow plan holds nothing between publishes', async t => {
  const s = source(1)
  const lease = new PublishLease(s.src)
  for (let i = 0; i < 5; i++) {
    t.same(await lease.take(), { ok: true })
    await turn()
    t.equal(lease.tokens, 0)
  }
  t.same(s.asked, [1, 1, 1, 1, 1])
})

test('a long refusal (a limit of 0: a minute) is answered locally for a second, then the store is asked again', async t => {
  const s = source(1)
  s.answer(() => ({ ok: false, unavailable: false, retryAfterMs: 60_000 }))
  const lease = new PublishLease(s.src)
  t.same(await lease.take(), { ok: false, unavailable: false, retryAfterMs: 60_000 })
  s.advance(500)
  t.same(await lease.take(), { ok: false, unavailable: false, retryAfterMs: 59_500 }, 'within the second: locally')
  t.equal(s.asked.length, 1)
  s.advance(500)
  s.answer(tokens => ({ ok: true, tokens, source: 'redis', retryAfterMs: 0 }))
  t.same(await lease.take(), { ok: true }, 'after it the store is asked, and a reload that raised the limit applies')
  t.equal(s.asked.length, 2)
})

test('an unavailable store refuses as unavailable and is asked again at the next publish', async t => {
  const s = source(10)
  s.answer(() => ({ ok: false, unavailable: true, retryAfterMs: 5000 }))
  const lease = new PublishLease(s.src)
  t.same(await lease.take(), { ok: false, unavailable: true, retryAfterMs: 5000 })
  s.answer(tokens => ({ ok: true, tokens, source: 'local', retryAfterMs: 0 }))
  t.same(await lease.take(), { ok: true }, 'not remembered: the limiter\'s mode says when to ask')
  await lease.close()
  t.same(s.given, [{ tokens: 9, source: 'local' }], 'closing gives the rest back to the store that granted it')
})

// ---- two nodes on the real Redis ---------------------------------------------------

const RATE = 1000
const PLAN: PlanRef = { name: 'fast', limits: { connections: 10, connectsPerMinute: 100, deliveredPerSecond: 1000, publishedPerSecond: RATE, bytesPerSecond: 1_000_000, dailyQuota: 1_000_000 } }
// DEFAULT_PUBLISH_LEASE_MS (100 ms) of 1,000/s
const SLICE = 100

function limiters (t: Test, count: number, failure: 'fail-open' | 'fail-closed' = 'fail-open') {
  const prefix = unique('rl-publish') + ':'
  const out: Array<{ limiter: RateLimiter, redis: Redis }> = []
  for (let i = 0; i < count; i++) {
    const redis = new Redis(redisUrl())
    const limiter = new RateLimiter({ redis, prefix, failure, nodeId: `n${i}` })
    out.push({ limiter, redis })
    t.teardown(async () => { await limiter.close(); redis.disconnect() })
  }
  return { prefix, nodes: out }
}

const TICK_MS = 10
// a tick this late is a stall, not the timer's usual jitter
const STALL_MS = 40

test('two nodes publishing as fast as they are let stay within the plan plus their two slices in every window', async t => {
  const { nodes } = limiters(t, 2)
  await Promise.all(nodes.map(n => n.redis.ping()))
  const RUN_MS = 2500
  const admitted: number[][] = [[], []]
  let refused = 0
  // this process's own clock: a 10 ms timer that fires late means the process was not running
  const ticks: number[] = []
  const ticker = setInterval(() => ticks.push(Date.now()), TICK_MS)
  const started = Date.now()
  await Promise.all(nodes.map(async ({ limiter }, n) => {
    // 32 publishes in flight per node, each sent again as soon as it is answered (refusals are not waited out:
    // the limit must hold against clients that do not obey)
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (Date.now() - started < RUN_MS) {
        const r = await limiter.publish('zoe', PLAN)
        if (r.ok) admitted[n]!.push(Date.now())
        else {
          refused++
          await new Promise(resolve => setTimeout(resolve, 1))
        }
      }
    }))
  }))
  const elapsed = Date.now() - started
  const all = [...admitted[0]!, ...admitted[1]!].sort((a, b) => a - b)
  // the bucket starts full (its capacity is one second of the rate) and refills at the rate
  const bucket = RATE + RATE * elapsed / 1000
  t.ok(all.length <= Math.ceil(bucket), `${all.length} admitted in ${elapsed} ms: never more than one bucket gives (${bucket.toFixed(0)}): every token was taken from Redis first`)
  t.ok(all.length >= bucket - 2 * SLICE - 50, `and not much less: at most the two slices held at the end are unspent (${all.length} of ${bucket.toFixed(0)})`)
  t.ok(admitted.every(a => a.length > 0), `both nodes got tokens (${admitted.map(a => a.length).join(', ')})`)
  t.ok(refused > 0, `the rest was refused (${refused})`)
  // any window: what one bucket allows (at most its capacity at the window's start, and the rate for the
  // window) plus what the two nodes held unspent at its start, two slices
  let worst = 0
  for (const w of [100, 250, 500, 1000]) {
    let j = 0
    for (let i = 0; i < all.length; i++) {
      while (all[j]! < all[i]! - w) j++
      const count = i - j + 1
      const allowed = RATE + RATE * (w + 1) / 1000 + 2 * SLICE
      if (count > allowed) t.fail(`${count} admitted within ${w} ms: more than ${allowed}`)
      worst = Math.max(worst, count - (RATE + RATE * w / 1000))
    }
  }
  t.pass(`every window of 100 to 1,000 ms within the bucket + 2 slices (worst: ${worst} beyond the bucket)`)
  // After the initial burst (the first second) the clients take every token as it comes, so the bucket is
  // empty at a window's start: a window of a second admits about the rate, plus at most the slices the nodes
  // held. Unless this process stood still before it (a loaded machine stalls it for 100-300 ms; the ticker
  // says when): the bucket refilled meanwhile, by the rate times the time stalled in the second before.
  clearInterval(ticker)
  const stalledBefore = (at: number): number => {
    let stalled = 0
    for (let k = 1; k < ticks.length; k++) {
      const gap = ticks[k]! - ticks[k - 1]!
      if (gap > STALL_MS && ticks[k]! > at - 1000 && ticks[k - 1]! < at) stalled += gap - TICK_MS
    }
    return stalled
  }
  const steady = all.filter(x => x >= started + 1200)
  let j = 0
  let over = -Infinity
  let peak = ''
  for (let i = 0; i < steady.length; i++) {
    while (steady[j]! < steady[i]! - 1000) j++
    const stalled = stalledBefore(steady[j]!)
    const allowed = RATE + 2 * SLICE + Math.ceil(RATE * stalled / 1000)
    if (i - j + 1 - allowed > over) {
      over = i - j + 1 - allowed
      peak = `${i - j + 1} of ${allowed} allowed (rate ${RATE} + 2 slices ${2 * SLICE} + ${allowed - RATE - 2 * SLICE} refilled while this process stalled ${stalled} ms)`
    }
  }
  t.ok(over <= 0, `steady state, the fullest second's window: ${peak}`)
})

test('a lease unused for a second goes back to Redis; closing gives back at once', async t => {
  const { prefix, nodes } = limiters(t, 1)
  const { limiter, redis } = nodes[0]!
  await redis.ping()
  t.same(await limiter.publish('yves', PLAN), { ok: true })
  t.equal(limiter.publishLeases, 1)
  const key = limiter.key('yves', PLAN.name, 'pub')
  t.ok(key.startsWith(prefix))
  const level = async () => Number(await redis.hget(key, 't'))
  const leased = await level()
  t.ok(leased <= RATE - SLICE + 20, `Redis' bucket lost a slice to the lease (${leased.toFixed(0)})`)
  await new Promise(resolve => setTimeout(resolve, 2200))
  t.equal(limiter.publishLeases, 0, 'the idle lease is gone')
  // (what it gave back is not visible in Redis by now: the bucket, one second of the rate, refilled anyway)

  t.same(await limiter.publish('yves', PLAN), { ok: true }, 'a new lease')
  const before = await level()
  await limiter.close()
  const after = await level()
  t.ok(after - before >= SLICE - 1 - 20, `close gives the ${SLICE - 1} unused tokens back (${before.toFixed(0)} -> ${after.toFixed(0)})`)
})

test('failing closed: a publish is refused as unavailable while Redis is out, though the lease holds tokens', async t => {
  const { nodes } = limiters(t, 1, 'fail-closed')
  const { limiter, redis } = nodes[0]!
  await redis.ping()
  t.same(await limiter.publish('xena', PLAN), { ok: true })
  const ended = new Promise(resolve => redis.once('end', resolve))
  redis.disconnect()
  await ended
  const r = await limiter.publish('xena', PLAN)
  t.equal(r.ok, false)
  t.equal(!r.ok && r.limit, 'unavailable', 'unavailable, as before leases')
})
