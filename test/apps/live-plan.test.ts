// An approved plan reaches the application's open sockets without a
// reconnect (issue 18), on every node: a key on a plan of 2 deliveries a
// second gets a handful of a burst of 40 records (then `lagging`);
// once an admin approves a plan of 1000 a second, the same sockets, on both
// nodes, receive a whole burst of 40.
import { test, type Test } from 'tap'
import { liveGateway, type TestGateway } from '../harness/live-route.ts'
import { policyDir } from '../harness/policy.ts'
import type { Client } from '../harness/client.ts'
import { ADMIN_TOKEN, admin, developer, ISSUER, SECRET, streamWithKey } from './harness.ts'
import { eventually, redisUrl, unique } from '../helpers.ts'

const POLICY = `
version: 1
plans:
  trickle:
    approval: auto
    limits: { connections: 10, connectsPerMinute: 120, deliveredPerSecond: 2, publishedPerSecond: 5, bytesPerSecond: 1000000, dailyQuota: 1000000 }
  firehose:
    approval: manual
    limits: { connections: 10, connectsPerMinute: 120, deliveredPerSecond: 1000, publishedPerSecond: 5, bytesPerSecond: 1000000, dailyQuota: 1000000 }
products:
  market:
    plans: [trickle, firehose]
    topics:
      - pattern: appsdemo.*
        encoding: json
rules:
  - name: market-feed
    product: market
    plan: trickle
    subscribe: ['appsdemo.*']
`
const BURST = 40

async function node (t: Test, prefix: string, dir: string): Promise<TestGateway> {
  const gw = await liveGateway({
    policyDir: dir,
    config: {
      redis: { url: redisUrl() },
      admin: { token: ADMIN_TOKEN },
      rateLimit: { prefix: `${prefix}rl:` },
      auth: { apiKeys: { prefix }, jwt: { audience: ['sluice'], issuers: [{ issuer: ISSUER, algorithms: ['HS256'], secret: SECRET }] } }
    }
  })
  t.teardown(() => gw.app.close())
  return gw
}

function received (client: Client, batch: number): number {
  return client.frames.filter(f => f.op === 'message' && (f.value as { batch?: number }).batch === batch).length
}

test('an approved plan reaches open sockets on every node without a reconnect', async t => {
  const prefix = unique('sluice-test') + ':'
  const dir = policyDir(POLICY)
  const a = await node(t, prefix, dir)
  const b = await node(t, prefix, dir)
  const gina = developer(a, 'gina')
  const topic = `appsdemo.${unique('t').replace('.', '-')}`
  await a.app.kafka.ensureTopics([{ topic, partitions: 1 }])

  const app = (await gina('POST', '/applications', { name: 'Upgrading' })).json()
  t.equal((await gina('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'trickle' })).json().state, 'active')
  const { key } = (await gina('POST', `/applications/${app.id}/keys`, {})).json()
  const onA = await streamWithKey(a, key, topic)
  const onB = await streamWithKey(b, key, topic)

  const burst = async (batch: number) => {
    for (let i = 0; i < BURST; i++) await a.app.kafka.produce(topic, { key: 'k', value: JSON.stringify({ batch, i }) })
  }
  await burst(1)
  await eventually(() => onA.frames.some(f => f.op === 'lagging') && onB.frames.some(f => f.op === 'lagging'), 20_000, 'both sockets told they lag')
  t.ok(received(onA, 1) + received(onB, 1) < BURST, `on the trickle plan the two sockets got ${received(onA, 1)} and ${received(onB, 1)} of ${BURST}`)

  const requested = (await gina('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'firehose' })).json()
  t.equal(requested.state, 'pending')
  t.equal((await admin(a)('POST', `/subscriptions/${requested.id}/approve`)).json().state, 'active')
  await eventually(() => [a, b].every(gw => gw.sessions.list().every(s => s.identity.claims.plan === 'firehose')), 5000, 'both nodes\' sockets on the approved plan')
  t.equal(a.app.streamGuard.planFor(b.sessions.list()[0]!.identity).name, 'firehose', 'the limiter\'s plan for the open socket')

  // `lagging` ended the subscriptions (plugins/hub): subscribed again on the same sockets, from the live end
  for (const client of [onA, onB]) {
    client.send({ op: 'subscribe', id: 'again', topics: [topic] })
    await client.next(f => f.op === 'subscribed' && f.id === 'again', 20_000)
  }
  await burst(2)
  await eventually(() => received(onA, 2) === BURST && received(onB, 2) === BURST, 20_000, 'the whole burst on both sockets')
  t.pass(`after the approval both sockets received all ${BURST} records of a burst, without reconnecting`)
  t.notOk([onA, onB].some(c => c.frames.some(f => f.op === 'lagging' && c.frames.indexOf(f) > c.frames.findIndex(g => g.id === 'again'))), 'and were not told they lag')
  t.equal(onA.ws.readyState, onA.ws.OPEN)
  t.equal(onB.ws.readyState, onB.ws.OPEN)
  onA.close()
  onB.close()
})
