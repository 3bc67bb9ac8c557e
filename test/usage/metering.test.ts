// Usage metering is exact (issue 18): two gateway nodes on the real Kafka and
// Redis, with periods of 2 s, deliver and publish known counts for two
// applications; the usage events on the usage topic (CloudEvents, one per
// application, product and period, deduplicated by id) add up to exactly what
// the clients received and what Kafka acknowledged, bytes on the wire
// included; the admin's day says the same; a refused publish and a refused
// upgrade are counted by their codes.
import { test } from 'tap'
import { Redis } from 'ioredis'
import { KafkaClient } from '@sluice/kafka'
import { EVENT_TYPE } from '@sluice/usage'
import { eventually, kafkaBrokers, redisUrl, unique } from '../helpers.ts'
import { policyDir, limitsPolicy } from '../harness/policy.ts'
import { ADMIN_TOKEN, bearer, gateway, prefix } from '../harness/rate-limit.ts'
import { Client, refusal } from '../harness/client.ts'
import { allEmitted, countingClient, totalsById, usageEvents, usageSetup, PERIOD_S } from './harness.ts'

test('two nodes: the usage events add up to what was delivered and published, per application, exactly', async t => {
  const usage = usageSetup()
  const dir = policyDir(limitsPolicy({}))
  const rl = prefix()
  const topic = `rl.${unique('metered').replace(/\./g, '-')}`
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'usage-suite' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.quit())

  const nodes = await Promise.all([0, 1].map(i => gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: rl, admin: true, config: { ...usage.config, stream: { nodeId: `usage-node-${i}` } } })))
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]]
  const alice = unique('alice')
  const bob = unique('bob')
  // alice: a socket on each node; bob: one on the second
  const sockets = [countingClient(t, a.wsUrl, alice), countingClient(t, b.wsUrl, alice), countingClient(t, b.wsUrl, bob)]
  for (const { client } of sockets) {
    await client.opened
    client.send({ op: 'subscribe', id: 's', topics: [topic], from: 'latest' })
    await client.next(f => f.op === 'subscribed')
  }

  // records from Kafka, over more than one period, then publishes through the sockets
  const RECORDS = 120
  for (let i = 0; i < RECORDS; i++) {
    await kafka.produce(topic, { key: `k${i % 7}`, value: JSON.stringify({ i, pad: 'x'.repeat(i * 3) }) })
    if (i % 40 === 39) await new Promise(resolve => setTimeout(resolve, PERIOD_S * 500))
  }
  const published = { [alice]: 0, [bob]: 0 }
  const publish = async (socket: typeof sockets[number], sub: string, count: number) => {
    for (let i = 0; i < count; i++) {
      socket.client.send({ op: 'publish', id: `p${i}`, topic, value: { from: sub, i } })
      await socket.client.next(f => f.op === 'ack' && f.id === `p${i}`)
      published[sub]!++
    }
  }
  await publish(sockets[0]!, alice, 7)
  await publish(sockets[2]!, bob, 4)
  // a publish the policy refuses: counted by its code, not as published
  sockets[2]!.client.send({ op: 'publish', id: 'no', topic: 'forbidden.topic', value: 1 })
  await sockets[2]!.client.next(f => f.op === 'error' && f.id === 'no')
  // an upgrade the policy refuses (403): counted by the code of its answer
  const denied = new Client(`${b.wsUrl}/v1/stream?topics=forbidden.topic`, { headers: bearer(bob) })
  t.teardown(() => denied.terminate())
  const answer = await refusal(denied)
  t.equal(answer.status, 403, 'an upgrade to a topic bob may not read is refused')
  const deniedCode = answer.body.error?.code ?? '?'
  const expected = RECORDS + 7 + 4
  for (const { received } of sockets) await eventually(() => received.messages === expected, 15_000, `${expected} messages on every socket`)

  for (const { client } of sockets) client.close()
  await eventually(() => a.app.sessions.size + b.app.sessions.size === 0, 5000, 'sockets closed')
  await Promise.all([a.app.usage!.flush(), b.app.usage!.flush()])
  await allEmitted(redis, usage.prefix)
  const events = await usageEvents(t, usage.topic)
  t.ok(events.length > 0, `${events.length} usage events`)
  for (const event of events) {
    t.equal(event.specversion, '1.0')
    t.equal(event.type, EVENT_TYPE)
    t.equal(event.subject, event.data.application)
  }
  t.ok(new Set(events.map(e => e.data.periodStart)).size >= 2, 'the counts span several periods')
  const totals = totalsById(t, events)
  const want = (subs: typeof sockets) => ({
    delivered: subs.reduce((n, s) => n + s.received.messages, 0),
    deliveredBytes: subs.reduce((n, s) => n + s.received.bytes, 0)
  })
  const aliceGot = totals.get(alice)
  const bobGot = totals.get(bob)
  t.match(aliceGot, { ...want(sockets.slice(0, 2)), published: published[alice] }, 'alice: delivered, bytes and published as counted by the clients and Kafka\'s acks')
  t.match(bobGot, { ...want(sockets.slice(2)), published: published[bob] }, 'bob: the same')
  const refusals: Record<string, number> = { FORBIDDEN: 1 }
  refusals[deniedCode] = (refusals[deniedCode] ?? 0) + 1
  t.same(bobGot?.refused, refusals, `bob's refusals by code: the publish (FORBIDDEN) and the upgrade (${deniedCode})`)
  t.ok(aliceGot!.connectionMinutes > 0 && aliceGot!.connectionMinutes < 2, `connection minutes counted (${aliceGot!.connectionMinutes})`)

  // the same totals through the admin API (the UTC day; a suite that runs over midnight would see two)
  const today = new Date().toISOString().slice(0, 10)
  const day = await a.app.inject({ method: 'GET', url: `/admin/usage?date=${today}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(day.statusCode, 200)
  const rows = (day.json() as { applications: Array<{ application: string, delivered: number, published: number }> }).applications
  t.match(rows.find(r => r.application === alice), { delivered: aliceGot!.delivered, published: aliceGot!.published }, 'GET /admin/usage: alice\'s day')
  const bad = await a.app.inject({ method: 'GET', url: '/admin/usage?date=yesterday', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(bad.statusCode, 400, 'a date that is not YYYY-MM-DD is refused')
  t.equal(bad.json().error.code, 'SLUICE_APPS_BAD_REQUEST')
})
