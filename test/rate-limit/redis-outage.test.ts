// Redis killed mid-run. The configured failure mode applies within 500 ms and
// nothing waits longer: fail-open admits and limits on each node's local
// buckets, fail-closed answers 503 before the upgrade and closes with 1013
// after it. When Redis returns the limits are shared again without a
// restart (each node writes its open connections back), and no key without a
// TTL is left. A Redis that hangs instead of dying is bounded the same way.
// This suite runs its own Redis, since it stops it.
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisServer } from '@sluice/stack'
import { eventually, unique } from '../helpers.ts'
import { gateway, type Gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { type Client, refusal } from '../harness/client.ts'

// docs/design.md: the configured policy applies within 500 ms
const BOUND_MS = 500

async function ownRedis (t: Test): Promise<RedisServer> {
  const server = new RedisServer()
  await server.start()
  t.teardown(() => server.stop())
  return server
}

/** Opens a client and says how long the gateway took to decide. */
async function timedOpen (gw: Gateway, sub: string): Promise<{ client: Client, outcome: Awaited<Client['outcome']>, ms: number }> {
  const started = Date.now()
  const client = gw.client(sub)
  const outcome = await client.outcome
  return { client, outcome, ms: Date.now() - started }
}

async function keysWithoutTtl (url: string): Promise<string[]> {
  const redis = new Redis(url)
  try {
    const missing: string[] = []
    for (const key of await redis.keys('*')) if (await redis.pttl(key) === -1) missing.push(key)
    return missing
  } finally {
    redis.disconnect()
  }
}

test('fail-open: local buckets within 500 ms of the kill, shared again after Redis returns, every key with a TTL', async t => {
  const server = await ownRedis(t)
  const dir = policyDir(limitsPolicy({ connections: 3 }))
  const shared = prefix()
  const a = await gateway(t, { policyDir: dir, redisUrl: server.url, prefix: shared, rateLimit: { failure: 'fail-open' } })
  const b = await gateway(t, { policyDir: dir, redisUrl: server.url, prefix: shared, rateLimit: { failure: 'fail-open' } })
  const topic = unique('rl')
  await a.app.kafka.ensureTopics([{ topic }])

  const onA = [a.client('liam'), a.client('liam'), a.client('liam')]
  t.same(await Promise.all(onA.map(c => c.outcome)), ['open', 'open', 'open'])
  t.equal((await refusal(b.client('liam'))).status, 429, 'shared: node b sees node a\'s three')

  await server.stop()
  const first = await timedOpen(b, 'liam')
  t.equal(first.outcome, 'open', 'fail-open: node b decides on its local buckets')
  t.ok(first.ms < BOUND_MS, `decided in ${first.ms} ms`)
  const more = await Promise.all([timedOpen(b, 'liam'), timedOpen(b, 'liam'), timedOpen(b, 'liam')])
  t.same(more.map(m => m.outcome === 'open').sort(), [false, true, true], 'the local buckets still limit: 3 per node')
  t.ok(more.every(m => m.ms < BOUND_MS), `each in under ${BOUND_MS} ms (${more.map(m => m.ms).join(', ')})`)
  const published = Date.now()
  onA[0]!.send({ op: 'publish', id: 'during', topic, value: 1 })
  t.equal((await onA[0]!.next(f => f.id === 'during')).op, 'ack', 'publishing goes on under the local bucket')
  t.ok(Date.now() - published < BOUND_MS + 1000, 'answered without waiting for Redis (the rest is Kafka)')
  t.equal(await a.metric('sluice_rate_limit_mode', { mode: 'local' }), 1, 'mode: local')

  await server.start()
  await eventually(async () => (await a.metric('sluice_rate_limit_mode', { mode: 'shared' })) === 1 && (await b.metric('sluice_rate_limit_mode', { mode: 'shared' })) === 1, 10_000, 'both nodes shared again')
  // both nodes wrote their open connections back: 3 on a, 3 on b, over the limit of 3
  await eventually(async () => (await timedOpen(a, 'liam')).outcome !== 'open', 5000, 'node a sees node b\'s outage connections')
  t.pass('limits are shared again: node a counts the connections node b admitted while Redis was away')

  for (const c of [...onA, first.client, ...more.map(m => m.client)]) c.terminate()
  await eventually(async () => a.app.sessions.size + b.app.sessions.size === 0, 5000, 'every socket closed')
  // exactly 3 across both nodes, as before the outage
  let attempt: Client[] = []
  await eventually(async () => {
    for (const c of attempt) c.terminate()
    attempt = Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).client('liam'))
    const outcomes = await Promise.all(attempt.map(c => c.outcome))
    return outcomes.filter(o => o === 'open').length === 3
  }, 5000, 'exactly 3 admitted across the two nodes')
  t.pass('exactly the limit across both nodes again')
  t.same(await keysWithoutTtl(server.url), [], 'no key without a TTL')
})

test('fail-closed: 503 before the upgrade and 1013 after, within 500 ms; open again once Redis is back', async t => {
  const server = await ownRedis(t)
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: server.url, prefix: prefix(), rateLimit: { failure: 'fail-closed' } })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic }])
  const live = gw.client('mia')
  t.equal(await live.outcome, 'open')

  await server.stop()
  const refused = await timedOpen(gw, 'mia')
  t.not(refused.outcome, 'open')
  const answer = refused.outcome as Exclude<typeof refused.outcome, 'open'>
  t.equal(answer.status, 503)
  t.equal(answer.body.error?.code, 'SLUICE_RATE_UNAVAILABLE')
  t.ok(Number(answer.headers['retry-after']) >= 1, 'with Retry-After')
  t.ok(refused.ms < BOUND_MS, `refused in ${refused.ms} ms`)
  const sent = Date.now()
  live.send({ op: 'publish', id: 'p', topic, value: 1 })
  const closed = await live.closed
  t.equal(closed.code, 1013, 'a publish on a live socket closes it with 1013')
  t.ok(closed.at - sent < BOUND_MS, `closed in ${closed.at - sent} ms`)
  t.equal(await gw.metric('sluice_rate_limit_mode', { mode: 'closed' }), 1, 'mode: closed')

  await server.start()
  await eventually(async () => (await timedOpen(gw, 'mia')).outcome === 'open', 10_000, 'upgrades admitted again')
  t.pass('no restart needed')
})

test('fail-closed: a subscriber whose delivery lease runs out while Redis is away is closed with 1013', async t => {
  const server = await ownRedis(t)
  // 20 delivered per second: a lease holds 10
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({ deliveredPerSecond: 20 })), redisUrl: server.url, prefix: prefix(), rateLimit: { failure: 'fail-closed' } })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic }])
  const reader = gw.client('nina', `?topics=${topic}`)
  t.equal(await reader.outcome, 'open')
  await reader.next(f => f.op === 'subscribed')
  await server.stop()
  await gw.app.kafka.produceBatch(topic, Array.from({ length: 50 }, (_, i) => ({ key: null, value: Buffer.from(String(i)) })))
  const closed = await reader.closed
  t.equal(closed.code, 1013)
  t.ok(reader.messages().length <= 10, `what the lease held was delivered first (${reader.messages().length})`)
})

test('a Redis that hangs (CLIENT PAUSE) is bounded the same way', async t => {
  const server = await ownRedis(t)
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: server.url, prefix: prefix(), rateLimit: { failure: 'fail-open' } })
  t.equal((await timedOpen(gw, 'noah')).outcome, 'open')
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'PAUSE', '3000', 'ALL')
  const during = await Promise.all([timedOpen(gw, 'noah'), timedOpen(gw, 'noah')])
  t.ok(during.every(d => d.outcome === 'open'), 'admitted on local buckets')
  t.ok(during.every(d => d.ms < BOUND_MS), `decided in ${during.map(d => d.ms).join(', ')} ms while Redis hangs`)
  t.ok((await gw.metric('sluice_rate_limit_redis_errors_total'))! >= 1, 'the timeout is counted as a Redis error')
  const timeouts = (await gw.metric('sluice_rate_limit_redis_timeouts_total', { loop: 'on_time' }) ?? 0) + (await gw.metric('sluice_rate_limit_redis_timeouts_total', { loop: 'late' }) ?? 0)
  t.ok(timeouts >= 1, `and as a timeout, by how late the loop ran (${timeouts})`)
  await eventually(async () => (await gw.metric('sluice_rate_limit_mode', { mode: 'shared' })) === 1 && (await timedOpen(gw, 'noah')).outcome === 'open', 10_000, 'shared again after the pause')
  t.pass('back to shared')
})
