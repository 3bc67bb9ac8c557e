// QoS 1 deliveries (issue 16): SUBACK grants QoS 1, each delivery has a
// packet id of its own and is kept until the client's PUBACK, at most Receive
// Maximum of them in flight; a persistent session's unacknowledged ones come
// again with DUP=1 and the same packet ids after a reconnect. A gateway
// process on the real Kafka and Redis, a raw MQTT client that decides its
// PUBACKs.
import t from 'tap'
import { eventually, unique } from '../helpers.ts'
import { producer, RawClient, startNodes } from './persistent-nodes.ts'

const [node] = await startNodes(t, 1, unique('mqtt-qos1-sessions'))
const records = producer(t)

t.test('SUBACK grants QoS 1 when asked and QoS 0 when asked [MQTT-3.8.4-6]; a QoS 1 delivery carries a packet id [MQTT-2.2.1-2]', async t => {
  const client = await RawClient.connect(t, node!.url, { clientId: unique('q1-grant'), protocolVersion: 5 })
  t.same(await client.subscribe('sensors/g1/temp', 1), [1])
  t.same(await client.subscribe('sensors/g0/temp', 0), [0])
  await records.temp('g1', 'one')
  await records.temp('g0', 'zero')
  await eventually(() => client.of('publish').length === 2, 15_000, 'both delivered')
  const [q1, q0] = [client.of('publish').find(p => p.topic === 'sensors/g1/temp')!, client.of('publish').find(p => p.topic === 'sensors/g0/temp')!]
  t.equal(q1.qos, 1)
  t.ok((q1.messageId ?? 0) > 0, 'a packet id')
  t.equal(q1.payload.toString(), 'one')
  t.equal(q0.qos, 0)
  t.equal(q1.dup, false)
})

t.test('at most Receive Maximum QoS 1 deliveries are in flight; the next goes out on a PUBACK [MQTT-3.3.4-9]', async t => {
  const client = await RawClient.connect(t, node!.url, { clientId: unique('q1-rm'), protocolVersion: 5, properties: { receiveMaximum: 2 } })
  await client.subscribe('sensors/rm/temp', 1)
  for (let i = 0; i < 5; i++) await records.temp('rm', `m${i}`)
  await client.next('publish', 15_000, 2)
  // what exceeds waits: give it time to (wrongly) arrive
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(client.of('publish').length, 2, 'two in flight, no more')
  client.ack(client.of('publish')[0]!.messageId!)
  await client.next('publish', 15_000, 3)
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(client.of('publish').length, 3, 'one PUBACK lets one more out')
  for (const p of client.of('publish').slice(1)) client.ack(p.messageId!)
  await client.next('publish', 15_000, 5)
  t.same(client.payloads(), ['m0', 'm1', 'm2', 'm3', 'm4'], 'in order, none lost')
  const ids = client.of('publish').slice(2).map(p => p.messageId)
  t.equal(new Set(ids).size, 3, 'each in-flight delivery has its own packet id')
})

t.test('after a reconnect, the unacknowledged QoS 1 deliveries of a persistent session are sent again with DUP=1 and their packet ids [MQTT-4.4.0-1]', async t => {
  const clientId = unique('q1-dup')
  const first = await RawClient.connect(t, node!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } })
  await first.subscribe('sensors/dup/temp', 1)
  for (let i = 0; i < 3; i++) await records.temp('dup', `d${i}`)
  await first.next('publish', 15_000, 3)
  // the first is acknowledged, the other two are not when the connection is lost
  first.ack(first.of('publish')[0]!.messageId!)
  await first.sync()
  first.drop()
  const sent = first.of('publish').slice(1).map(p => ({ id: p.messageId, payload: p.payload.toString() }))

  const second = await RawClient.connect(t, node!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } })
  t.equal(second.of('connack')[0]!.sessionPresent, true, 'Session Present 1 [MQTT-3.2.2-2]')
  await second.next('publish', 15_000, 2)
  await new Promise(resolve => setTimeout(resolve, 500))
  const again = second.of('publish').map(p => ({ id: p.messageId, payload: p.payload.toString(), dup: p.dup }))
  t.same(again.map(({ id, payload }) => ({ id, payload })), sent, 'the two unacknowledged, with their packet ids, the acknowledged one not again')
  t.ok(again.every(p => p.dup), 'DUP=1 on each [MQTT-3.3.1-1]')
  for (const p of second.of('publish')) second.ack(p.messageId!)
  await records.temp('dup', 'd3')
  await second.next('publish', 15_000, 3)
  t.equal(second.of('publish')[2]!.dup, false, 'a new delivery is not a duplicate')
  t.equal(second.of('publish')[2]!.payload.toString(), 'd3')
})

t.test('QoS 1 deliveries waiting past Receive Maximum count in the socket\'s queue: past its bound the slow-client policy disconnects (0x97), and the persistent session resumes at its first unacknowledged record with none lost', async t => {
  const clientId = unique('q1-slow')
  const slow = await RawClient.connect(t, node!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 1 } })
  await slow.subscribe('sensors/slow/temp', 1)
  // 400 records of 1 KiB against the 256 KiB queue bound, none acknowledged: one in flight, the rest waiting
  const value = 'x'.repeat(1024)
  await Promise.all(Array.from({ length: 400 }, (_, i) => records.temp('slow', `${i} ${value}`)))
  const disconnect = await slow.next('disconnect', 30_000)
  t.equal(disconnect.reasonCode, 0x97, 'DISCONNECT 0x97, as a slow QoS 0 socket')
  t.equal(slow.of('publish').length, 1, 'only Receive Maximum went out')
  await eventually(() => slow.closedAt !== undefined, 10_000, 'closed')

  const resumed = await RawClient.connect(t, node!.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } }, true)
  t.equal(resumed.of('connack')[0]!.sessionPresent, true)
  const got = () => new Set(resumed.payloads().map(p => p.split(' ')[0]))
  await eventually(() => got().size === 400, 60_000, `all 400 after the resume (got ${got().size})`)
  t.equal(resumed.of('publish')[0]!.dup, true, 'the one in flight comes again first, DUP=1')
})
