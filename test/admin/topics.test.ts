// Topics of a product, created through the admin API: brokers run with
// auto-create off, so this (or `sluice topics create`) is how an operator
// makes a product servable; a topic no product has is refused.
import { test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { liveGateway } from '../harness/live-route.ts'
import { kafkaBrokers, unique } from '../helpers.ts'

const ADMIN_TOKEN = 'admin-token-for-the-topics-suite-0123456789'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }

test('POST /admin/topics creates a product\'s topics, says which existed, and refuses the rest', async t => {
  const gw = await liveGateway({ config: { admin: { token: ADMIN_TOKEN } } })
  t.teardown(() => gw.app.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'admin-topics-suite' })
  t.teardown(() => kafka.close())
  const fresh = unique('prices')
  const created = await gw.app.inject({ method: 'POST', url: '/admin/topics', headers: admin, payload: { topics: [fresh], partitions: 2 } })
  t.equal(created.statusCode, 200, created.body)
  t.same(created.json(), { topics: [{ topic: fresh, product: 'market', created: true }] })
  t.equal((await kafka.topicOffsets(fresh)).length, 2, 'with the partitions asked for')
  const again = await gw.app.inject({ method: 'POST', url: '/admin/topics', headers: admin, payload: { topics: [fresh] } })
  t.same(again.json(), { topics: [{ topic: fresh, product: 'market', created: false }] }, 'an existing topic is reported, not an error')

  const stray = unique('nobody')
  const refused = await gw.app.inject({ method: 'POST', url: '/admin/topics', headers: admin, payload: { topics: [unique('orders'), stray] } })
  t.equal(refused.statusCode, 422)
  t.equal(refused.json().error.code, 'SLUICE_ADMIN_TOPIC_NOT_IN_PRODUCT')
  t.notOk((await kafka.listTopics()).includes(stray), 'nothing is created when one is refused')
  const bad = await gw.app.inject({ method: 'POST', url: '/admin/topics', headers: admin, payload: { topics: ['no spaces'] } })
  t.equal(bad.statusCode, 400, 'a name Kafka refuses never reaches it')
})

test('a subscribe to a topic that does not exist says how to create it', async t => {
  const gw = await liveGateway({ config: { dev: { token: 'dev-token-for-the-topics-suite-0123456789' } } })
  t.teardown(() => gw.app.close())
  const client = gw.wsAt('/v1/stream', '', { protocols: ['sluice.v1'], headers: { authorization: 'Bearer dev-token-for-the-topics-suite-0123456789' } })
  await client.opened
  t.teardown(() => client.ws.close())
  client.send({ op: 'subscribe', id: 's', topics: [unique('prices')] })
  const reply = await client.next(f => f.id === 's')
  t.equal(reply.code, 'UNKNOWN_TOPIC')
  t.match(reply.message, 'sluice topics create', 'the way to create it')
})
