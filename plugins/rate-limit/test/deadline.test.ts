// A decision on Redis is bounded by the decision timeout, each from when it
// was asked (limiter.ts keeps one queue and one timer for every decision in
// flight): behind a link that stops carrying Redis' answers, decisions asked
// 0, 60, 120 and 180 ms apart each fall back to the local buckets at their own
// deadline, and decisions answered before the link stopped are not failed.
// A timeout whose timer fired late says how late the node's event loop ran: its
// own load, not Redis, may have kept the answer unread; the two kinds are counted
// apart (sluice_rate_limit_redis_timeouts_total{loop}).
// Real Redis, behind a TCP relay this test can stop.
import { test, type Test } from 'tap'
import { createServer, connect, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import type { PlanLimits } from '@sluice/policy'
import { RateLimiter } from '../src/limiter.ts'
import { eventually, redisUrl, unique } from '../../../test/helpers.ts'

const TIMEOUT_MS = 250
const LIMITS: PlanLimits = { connections: 5, connectsPerMinute: 100, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100_000, dailyQuota: 10_000 }

/** A TCP relay to the suite's Redis: requests always reach it, its answers come back until `hang()`. */
async function silencingRelay (t: Test): Promise<{ port: number, hang: () => void }> {
  const target = new URL(redisUrl())
  let hung = false
  const sockets: Socket[] = []
  const relay = createServer(client => {
    const upstream = connect(Number(target.port || 6379), target.hostname)
    sockets.push(client, upstream)
    client.pipe(upstream)
    upstream.on('data', chunk => { if (!hung) client.write(chunk) })
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>(resolve => relay.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of sockets) s.destroy(); relay.close() })
  return { port: (relay.address() as { port: number }).port, hang: () => { hung = true } }
}

test('each decision falls back at its own deadline when Redis stops answering; answered ones stand', async t => {
  const { port, hang } = await silencingRelay(t)
  const redis = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  const limiter = new RateLimiter({ redis, prefix: unique('rl-deadline') + ':', nodeId: 'deadline', decisionTimeoutMs: TIMEOUT_MS, failure: 'fail-open' })
  t.teardown(() => limiter.close())
  await eventually(() => redis.status === 'ready' && limiter.mode === 'shared', 5000, 'Redis connected')
  const plan = { name: 'test', limits: LIMITS }

  const before = await Promise.all(Array.from({ length: 20 }, () => limiter.acquire(unique('before'), plan)))
  t.ok(before.every(d => d.ok), 'decided on Redis before the link stops')
  t.equal(limiter.stats.redisErrors, 0)

  hang()
  const t0 = performance.now()
  const settled: number[] = []
  const asks = [0, 60, 120, 180].map(async delay => {
    await new Promise(resolve => setTimeout(resolve, delay))
    const asked = performance.now() - t0
    const decided = await limiter.acquire(unique('hung'), plan)
    settled.push(performance.now() - t0)
    return { asked, after: performance.now() - t0 - asked, ok: decided.ok }
  })
  const results = await Promise.all(asks)
  for (const r of results) {
    t.ok(r.ok, 'fail-open: admitted on the local buckets')
    // its own deadline: the timeout after it was asked, and the turn the answer is given to arrive
    t.ok(r.after >= TIMEOUT_MS - 5 && r.after < TIMEOUT_MS + 150, `asked at ${r.asked.toFixed(0)} ms, fell back ${r.after.toFixed(0)} ms later (timeout ${TIMEOUT_MS})`)
  }
  t.ok(Math.max(...settled) - Math.min(...settled) >= 120, `the four fell back over ${(Math.max(...settled) - Math.min(...settled)).toFixed(0)} ms, as they were asked over 180`)
  t.ok(limiter.stats.redisErrors >= 1, `counted as Redis errors (${limiter.stats.redisErrors})`)
  const { onTime, late } = limiter.stats.redisTimeouts
  t.equal(onTime + late, 4, `each counted as a timeout once (${onTime} with the loop on time, ${late} late)`)
})

test('a timeout says when the node\'s own event loop ran late, and only then', async t => {
  const plan = { name: 'test', limits: LIMITS }

  /** One decision on a limiter of its own behind a relay that stops answering, the loop blocked `blockMs` once it is on its way: the error it fell back on, and the timeouts counted. */
  async function timeoutWith (blockMs: number, { commandTimeout, decisionTimeoutMs = TIMEOUT_MS }: { commandTimeout?: number, decisionTimeoutMs?: number } = {}): Promise<{ error: Error, timeouts: { onTime: number, late: number } }> {
    const { port, hang } = await silencingRelay(t)
    const errors: Error[] = []
    const redis = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout })
    t.teardown(() => redis.disconnect())
    const limiter = new RateLimiter({ redis, prefix: unique('rl-late') + ':', nodeId: 'late', decisionTimeoutMs, failure: 'fail-open', onRedisError: err => errors.push(err) })
    t.teardown(() => limiter.close())
    await eventually(() => redis.status === 'ready' && limiter.mode === 'shared', 5000, 'Redis connected')
    hang()
    const decided = limiter.acquire(unique('late'), plan)
    // the decision leaves at the end of its turn, with its deadline: then the node is busy
    await new Promise(resolve => setTimeout(resolve, 20))
    const until = performance.now() + blockMs
    while (performance.now() < until) { /* the node's own work: nothing else runs */ }
    t.ok((await decided).ok, 'fail-open: admitted on the local buckets')
    t.equal(errors.length, 1, 'one Redis error')
    return { error: errors[0]!, timeouts: { ...limiter.stats.redisTimeouts } }
  }

  const free = await timeoutWith(0)
  t.equal(free.error.message, `Redis did not answer within ${TIMEOUT_MS} ms`, 'a free loop: Redis is named alone')
  t.same(free.timeouts, { onTime: 1, late: 0 }, 'counted as a timeout with the loop on time')
  const blocked = await timeoutWith(TIMEOUT_MS + 300)
  const late = Number(/event loop ran (\d+) ms late/.exec(blocked.error.message)?.[1])
  t.ok(late >= 250 && late < 1000, `a loop blocked ${TIMEOUT_MS + 300} ms: the timeout says it ran ${late} ms late (${blocked.error.message})`)
  t.same(blocked.timeouts, { onTime: 0, late: 1 }, 'counted as a timeout with the loop late')

  // The gateway's Redis client has a command timeout of its own (plugins/redis: 500 ms, a plain timer). On a loop
  // blocked past both, its rejection settles the decision before the deadline's sweep (setImmediate) gets to it
  const bothDue = await timeoutWith(TIMEOUT_MS + 300, { commandTimeout: TIMEOUT_MS + 100 })
  t.match(bothDue.error.message, /event loop ran \d+ ms late/, `the client's command timeout on a late loop says so too (${bothDue.error.message})`)
  t.same(bothDue.timeouts, { onTime: 0, late: 1 }, 'and is counted as a timeout with the loop late')
  // a command timeout shorter than the decision's, on a free loop: Redis's, with the client's own message
  const clientFirst = await timeoutWith(0, { commandTimeout: 100, decisionTimeoutMs: 1000 })
  t.equal(clientFirst.error.message, 'Command timed out', 'the client\'s timeout before the deadline keeps its message')
  t.same(clientFirst.timeouts, { onTime: 1, late: 0 }, 'and is counted as a timeout with the loop on time')
})
