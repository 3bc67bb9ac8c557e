// Session takeover across gateway nodes (issue 16): a second CONNECT with the
// same client id, on any node, disconnects the first connection (DISCONNECT
// 0x8E on 5.0, a close on 3.1.1) within 1 s [MQTT-3.1.4-3], and the new one
// continues the session with no QoS 1 message lost. Two gateway processes on
// the real Kafka and Redis, raw MQTT clients that decide their PUBACKs.
import t from 'tap'
import { eventually, unique } from '../helpers.ts'
import { producer, RawClient, startNodes } from './persistent-nodes.ts'

const [a, b] = await startNodes(t, 2, unique('mqtt-takeover-sessions'))
const records = producer(t)

t.test('a CONNECT on node B takes over the session connected on node A: A hears DISCONNECT 0x8E within 1 s, B resumes it with the unacknowledged QoS 1 deliveries [MQTT-3.1.4-3] [MQTT-4.4.0-1]', async t => {
  const clientId = unique('takeover5')
  const old = await RawClient.connect(t, a!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  await old.subscribe('sensors/to5/temp', 1)
  for (let i = 0; i < 3; i++) await records.temp('to5', `m${i}`)
  await old.next('publish', 15_000, 3)
  // the first acknowledged; two in flight at the takeover
  old.ack(old.of('publish')[0]!.messageId!)
  await old.sync()

  const asked = Date.now()
  const next = await RawClient.connect(t, b!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  await old.next('disconnect', 5000)
  const disconnect = old.of('disconnect')[0]!
  t.equal(disconnect.reasonCode, 0x8e, 'DISCONNECT 0x8E, session taken over')
  const took = old.at('disconnect')! - asked
  t.ok(took < 1000, `within 1 s of the second CONNECT (${took} ms)`)
  await eventually(() => old.closedAt !== undefined, 5000, 'the old connection closed')

  t.equal(next.of('connack')[0]!.sessionPresent, true, 'the new connection has the session')
  await next.next('publish', 15_000, 2)
  t.same(next.payloads(), ['m1', 'm2'], 'the two unacknowledged come again on B')
  t.ok(next.of('publish').every(p => p.dup), 'with DUP=1')
  t.same(next.of('publish').map(p => p.messageId), old.of('publish').slice(1).map(p => p.messageId), 'and their packet ids')
  for (const p of next.of('publish')) next.ack(p.messageId!)
  await records.temp('to5', 'm3')
  await next.next('publish', 15_000, 3)
  t.equal(next.payloads()[2], 'm3', 'new records go to the new connection')
  t.equal(old.of('publish').length, 3, 'and none to the old one')
})

t.test('on 3.1.1 the old connection of the client id is closed, with no DISCONNECT, within 1 s of a CONNECT on another node [MQTT-3.1.4-2]', async t => {
  const clientId = unique('takeover4')
  const old = await RawClient.connect(t, a!.url, { clientId, protocolVersion: 4, clean: false })
  await old.subscribe('sensors/to4/temp', 1)
  const asked = Date.now()
  const next = await RawClient.connect(t, b!.url, { clientId, protocolVersion: 4, clean: false })
  await eventually(() => old.closedAt !== undefined, 5000, 'the old connection closed')
  t.ok(old.closedAt! - asked < 1000, `closed within 1 s (${old.closedAt! - asked} ms)`)
  t.equal(old.of('disconnect').length, 0, '3.1.1 has no DISCONNECT from the server')
  t.equal(next.of('connack')[0]!.sessionPresent, true)
  await records.temp('to4', 'x')
  const publish = await next.next('publish')
  t.equal(publish.payload.toString(), 'x', 'the subscription goes on in the new connection')
})

t.test('a clean session takes over too: the old connection hears 0x8E, and the session is not carried over [MQTT-3.1.4-3] [MQTT-3.1.2-4]', async t => {
  const clientId = unique('takeover-clean')
  const old = await RawClient.connect(t, a!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  await old.subscribe('sensors/toc/temp', 1)
  const next = await RawClient.connect(t, a!.url, { clientId, protocolVersion: 5, clean: true })
  await old.next('disconnect', 5000)
  t.equal(old.of('disconnect')[0]!.reasonCode, 0x8e)
  t.equal(next.of('connack')[0]!.sessionPresent, false)
  await records.temp('toc', 'y')
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(next.of('publish').length, 0, 'no subscription carried over')
})
