// Delivery leases on a daily quota cannot leak: a lease is recorded in Redis
// beside the quota with a deadline, renewed while its node holds it; when its
// node dies (no give-back) the quota gets the unused part back once the
// deadline passes; a clean shutdown gives it back at once; and leases held by
// other nodes take only a share of what is left, so a third node is never
// refused while undelivered quota remains. Limiters ("nodes") on the run's
// Redis, each with its own connection, as gateway processes have.
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import type { PlanLimits } from '@sluice/policy'
import { RateLimiter, type DeliveryLease } from '@sluice/rate-limit'
import { gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { eventually, redisUrl, unique } from '../helpers.ts'

const QUOTA = 1000
// a rate far above the quota: half a second of it (the lease's batch) is 50 times the quota, as in the incident
const LIMITS: PlanLimits = { connections: 10, connectsPerMinute: 100, deliveredPerSecond: 100_000, publishedPerSecond: 10, bytesPerSecond: 1_000_000_000, dailyQuota: QUOTA }

interface Node {
  limiter: RateLimiter
  redis: Redis
  lease (): DeliveryLease
}

function node (t: Test, shared: string, subject: string, leaseTtlMs = 1000): Node {
  const redis = new Redis(redisUrl(), { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  const limiter = new RateLimiter({ redis, prefix: shared, leaseTtlMs })
  t.teardown(async () => {
    await limiter.close()
    redis.disconnect()
  })
  return { limiter, redis, lease: () => limiter.lease(subject, 'test', () => LIMITS) }
}

async function ready (n: Node): Promise<void> {
  await eventually(() => n.redis.status === 'ready' && n.limiter.mode === 'shared', 5000, 'shared through Redis')
}

/** Spends the lease's tokens one message at a time, refilling, until the daily quota refuses; returns the messages delivered. */
async function drain (lease: DeliveryLease, most = QUOTA * 2): Promise<number> {
  await lease.primed
  let delivered = 0
  while (delivered < most) {
    if (lease.take(1)) {
      delivered++
      continue
    }
    await lease.refill()
    const refusal = lease.refusal
    if (!refusal || lease.messages >= 1) continue
    if (refusal.limit === 'dailyQuota') break
    // the per-second buckets (other nodes' leases hold half a second of them): they refill in that time
    await new Promise(resolve => setTimeout(resolve, refusal.retryAfterMs))
  }
  return delivered
}

test('a lease whose node dies without giving it back is credited to the quota when its record expires', async t => {
  const shared = prefix()
  const subject = unique('dora')
  const dead = node(t, shared, subject)
  await ready(dead)
  const held = dead.lease()
  await held.primed
  t.ok(held.messages > 0 && held.take(1), `the doomed node holds ${held.messages + 1} and delivers 1`)
  // the take asked a refill, which tells Redis the lease now holds 249 (refill() is that refill while it is on
  // its way: answered, Redis has it). Then the node dies: its connection drops, and nothing it would give back
  // reaches Redis
  await held.refill()
  dead.redis.disconnect()

  const live = node(t, shared, subject)
  await ready(live)
  // its record lives 1 s (leaseTtlMs); the next decision after that credits it back
  await new Promise(resolve => setTimeout(resolve, 1200))
  const delivered = await drain(live.lease())
  t.equal(delivered, QUOTA - 1, `the live node delivers the whole quota but the one message the dead node delivered (${delivered})`)
})

test('a held lease is renewed: it does not expire while its node lives', async t => {
  const shared = prefix()
  const subject = unique('rene')
  const a = node(t, shared, subject, 600)
  const b = node(t, shared, subject, 600)
  await Promise.all([ready(a), ready(b)])
  const held = a.lease()
  await held.primed
  const holding = held.messages
  // three lease lifetimes: renewed every 200 ms
  await new Promise(resolve => setTimeout(resolve, 1800))
  const delivered = await drain(b.lease())
  t.equal(delivered, QUOTA - holding, `the other node gets all but what the live node holds (${delivered} + ${holding})`)
  t.equal(await drain(held), holding, 'and the live node still delivers what it holds')
})

test('with two nodes holding leases, a third is served, and the three deliver the whole quota exactly', async t => {
  const shared = prefix()
  const subject = unique('tess')
  const nodes = [node(t, shared, subject, 30_000), node(t, shared, subject, 30_000), node(t, shared, subject, 30_000)]
  await Promise.all(nodes.map(ready))
  const [a, b] = [nodes[0]!.lease(), nodes[1]!.lease()]
  await Promise.all([a.primed, b.primed])
  const held = a.messages + b.messages
  t.ok(held < QUOTA * 0.5, `two idle leases hold ${held} of ${QUOTA}: a share of what was left each`)
  const third = nodes[2]!.lease()
  await third.primed
  t.equal(third.refusal, undefined, 'the third node\'s first lease is not refused')
  t.ok(third.take(1), 'and it delivers')
  const c = 1 + await drain(third)
  t.equal(c, QUOTA - held, `the third node delivers all the quota the other two do not hold (${c})`)
  const rest = await drain(a) + await drain(b)
  t.equal(c + rest, QUOTA, `and with theirs the three deliver exactly the quota (${c} + ${rest})`)
})

test('a clean shutdown gives the unused part back at once', async t => {
  const shared = prefix()
  const subject = unique('cleo')
  const a = node(t, shared, subject, 30_000)
  const b = node(t, shared, subject, 30_000)
  await Promise.all([ready(a), ready(b)])
  const held = a.lease()
  await held.primed
  t.ok(held.take(1) && held.take(1), 'two delivered')
  // the lease is still held by a socket: close() gives it back (the plugin's onClose)
  await a.limiter.close()
  t.equal(await drain(b.lease()), QUOTA - 2, 'the other node gets the whole quota but the two delivered, without waiting for the record to expire')
})

test('a gateway that closes gives back what its subscribers\' lease held', async t => {
  const shared = prefix()
  const dir = policyDir(limitsPolicy({ dailyQuota: QUOTA, deliveredPerSecond: 100_000 }))
  const gw = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic }])
  const subject = unique('gwen')
  const client = gw.client(subject, `?topics=${topic}`)
  t.equal(await client.outcome, 'open')
  await client.next(f => f.op === 'subscribed')
  t.equal(gw.app.rateLimiter.leases, 1, 'the subscriber\'s lease is held')
  await gw.app.close()

  const other = node(t, shared, subject, 30_000)
  await ready(other)
  t.equal(await drain(other.lease()), QUOTA, 'another node gets the whole quota at once')
})
