// The delivery direction: the daily quota stops delivery at its number, on
// every node together, and says so; past the per-second rate a socket's
// subscription is dropped with a `lagging` notice and a resume cursor, or
// the socket is evicted (4008), as the product says. Tokens are leased in
// batches (bench/rate-limit.ts counts the Redis calls).
import { test } from 'tap'
import { eventually, redisUrl, unique } from '../helpers.ts'
import { gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import type { Client } from '../harness/client.ts'

function records (n: number) {
  return Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(JSON.stringify({ n: i })) }))
}

test('the daily quota stops delivery at its number across nodes, and says so', async t => {
  const QUOTA = 30
  const dir = policyDir(limitsPolicy({ dailyQuota: QUOTA }))
  const shared = prefix()
  const a = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared })
  const b = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared })
  const topic = unique('rl')
  await a.app.kafka.ensureTopics([{ topic }])
  const clients: Client[] = [a.client('olga', `?topics=${topic}`), b.client('olga', `?topics=${topic}`)]
  t.same(await Promise.all(clients.map(c => c.outcome)), ['open', 'open'])
  await Promise.all(clients.map(c => c.next(f => f.op === 'subscribed')))
  // near the end of a quota a lease holds a quarter of what is left, less than a burst: a cut subscription
  // resumes from its cursor, as docs/design.md's clients do
  for (const c of clients) {
    c.ws.on('message', data => {
      const frame = JSON.parse(data.toString()) as { op: string, resume?: string }
      if (frame.op === 'lagging') c.send({ op: 'subscribe', id: 'resume', topics: [topic], from: frame.resume })
    })
  }

  await a.app.kafka.produceBatch(topic, records(50))
  const delivered = () => clients.reduce((n, c) => n + c.messages().length, 0)
  await eventually(() => delivered() >= QUOTA && clients.every(c => c.frames.some(f => f.op === 'error' && f.limit === 'dailyQuota')), 15_000, 'the quota reached and said')
  // nothing more comes
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(delivered(), QUOTA, `exactly ${QUOTA} messages delivered to the subject, over both nodes (${clients.map(c => c.messages().length).join(' + ')})`)
  for (const [i, c] of clients.entries()) {
    const notice = c.frames.find(f => f.op === 'error' && f.limit === 'dailyQuota')!
    t.match(notice, { code: 'RATE_LIMITED', message: /daily quota/ }, `socket ${i} is told why`)
    const wait = notice.retryAfterMs as number
    t.ok(wait > 0 && wait <= 86_400_000, `and until when: 00:00 UTC (${Math.round(wait / 60_000)} min)`)
  }
  const cut = clients.flatMap(c => c.frames.filter(f => f.op === 'lagging'))
  t.ok(cut.length >= 1 && cut.every(f => typeof f.resume === 'string'), 'the subscriptions that were cut hear lagging with a resume cursor')
  t.equal(await a.metric('sluice_rate_limit_limited_total', { limit: 'dailyQuota' }) as number > 0 ||
    await b.metric('sluice_rate_limit_limited_total', { limit: 'dailyQuota' }) as number > 0, true, 'refusals counted under dailyQuota')
})

test('a replay (resume cursor, earliest) counts against the daily quota too', async t => {
  const QUOTA = 20
  const dir = policyDir(limitsPolicy({ dailyQuota: QUOTA }))
  const a = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: prefix() })
  const topic = unique('rl')
  await a.app.kafka.ensureTopics([{ topic }])
  // history first: all of it is served by the catch-up reader, not the live feed
  await a.app.kafka.produceBatch(topic, records(60))
  const c = a.client('olga', `?topics=${topic}&from=earliest`)
  t.equal(await c.outcome, 'open')
  await eventually(() => c.messages().length >= QUOTA, 15_000, 'the quota delivered')
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(c.messages().length, QUOTA, `the replay stops at the quota (${c.messages().length})`)
})

test('past the per-second rate: lagging with a resume cursor', async t => {
  const RATE = 20
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({ deliveredPerSecond: RATE })), redisUrl: redisUrl(), prefix: prefix() })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic }])
  const client = gw.client('pete', `?topics=${topic}`)
  t.equal(await client.outcome, 'open')
  await client.next(f => f.op === 'subscribed')
  await gw.app.kafka.produceBatch(topic, records(200))
  const lagging = await client.next(f => f.op === 'lagging', 15_000)
  const got = client.messages().length
  t.ok(got >= 1 && got <= RATE, `${got} delivered: never more than the plan's burst`)
  t.equal(lagging.dropped, 200 - got, 'the notice counts what was dropped')
  t.equal(typeof lagging.resume, 'string', 'and says where to resume')
  t.ok((await gw.metric('sluice_rate_limit_allowed_total', { limit: 'deliveredPerSecond' }))! >= got)
  t.ok((await gw.metric('sluice_rate_limit_limited_total', { limit: 'deliveredPerSecond' }))! >= 1)
})

test('past the rate on an evict product: closed with 4008', async t => {
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({ deliveredPerSecond: 10 }, 'evict')), redisUrl: redisUrl(), prefix: prefix() })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic }])
  const client = gw.client('quinn', `?topics=${topic}`)
  t.equal(await client.outcome, 'open')
  await client.next(f => f.op === 'subscribed')
  await gw.app.kafka.produceBatch(topic, records(100))
  t.equal((await client.closed).code, 4008)
  t.ok(client.messages().length <= 10, `${client.messages().length} delivered before`)
})

test('a subject\'s first socket on a node waits for its first lease from Redis instead of reading the empty lease as "over the plan"', async t => {
  const a = await gateway(t, { policyDir: policyDir(limitsPolicy({ deliveredPerSecond: 1000 })), redisUrl: redisUrl(), prefix: prefix() })
  const guard = a.app.streamGuard!
  const session = { identity: { kind: 'jwt' as const, subject: unique('first'), claims: {} }, close () {} }
  const budget = guard.delivery!(session as never)!
  t.teardown(() => budget.release?.())
  t.equal(budget.take(100), false, 'right after the connect the lease is still on its way from Redis')
  t.ok(budget.ready instanceof Promise, 'the budget says when it will hold tokens')
  await budget.ready
  t.equal(budget.take(100), true, 'and then it admits the socket\'s first frame')

  // end to end: every socket of new subjects subscribed to a topic whose feed is already busy gets every record after `subscribed`
  const topic = unique('rl')
  await a.app.kafka.ensureTopics([{ topic }])
  const busy = a.client('warm', `?topics=${topic}`)
  await busy.next(f => f.op === 'subscribed')
  const feed = { producing: true }
  const producer = (async () => {
    let n = 0
    while (feed.producing) {
      await a.app.kafka.produceBatch(topic, [{ key: null, value: Buffer.from(JSON.stringify({ n: n++ })) }])
    }
  })()
  const fresh = Array.from({ length: 10 }, (_v, i) => a.client(unique(`fresh${i}`), `?topics=${topic}`))
  await Promise.all(fresh.map(c => c.next(f => f.op === 'subscribed')))
  await eventually(() => fresh.every(c => c.messages().length >= 20), 15_000, 'each new socket receives')
  feed.producing = false
  await producer
  t.same(fresh.flatMap(c => c.frames.filter(f => f.op === 'lagging')), [], 'no new socket lost a record for want of tokens')
})
