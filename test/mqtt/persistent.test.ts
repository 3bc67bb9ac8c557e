// Persistent MQTT sessions kept in Kafka (issue 16): two gateway processes
// on the real Kafka and Redis sharing one sessions topic; a session is
// resumed on the second after the first is killed with SIGKILL, with no QoS 1
// message lost; clean start discards a session; an expired one is removed
// with a tombstone. MQTT.js for the SIGKILL case (auto PUBACK, as a device
// runs it), a raw client where the test reads packets as they are.
import t from 'tap'
import mqtt, { type IConnackPacket } from 'mqtt'
import { KafkaClient, type RecordBatch } from '@sluice/kafka'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'
import { DEV_TOKEN } from './harness.ts'
import { producer, RawClient, startNodes } from './persistent-nodes.ts'

const SESSIONS = unique('mqtt-persist-sessions')
const nodes = await startNodes(t, 2, SESSIONS)
const records = producer(t)

t.test('a persistent session is resumed on a second node after the first is killed with SIGKILL: Session Present 1 and no QoS 1 message lost [MQTT-4.4.0-1] [MQTT-3.2.2-2]', async t => {
  const [a, b] = nodes
  const clientId = unique('kill')
  const options = { clientId, protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0, connectTimeout: 20_000, username: 'any', password: DEV_TOKEN }
  const first = await mqtt.connectAsync(a!.url, options)
  t.teardown(() => first.endAsync(true))
  const seen = new Set<string>()
  first.on('message', (_topic, payload) => seen.add(payload.toString()))
  await first.subscribeAsync('sensors/kill/temp', { qos: 1 })
  for (let i = 0; i < 5; i++) await records.temp('kill', `before-${i}`)
  await eventually(() => seen.size === 5, 15_000, 'the first five on node A')
  // the PUBACKs reach the session's record within a flush (500 ms)
  await new Promise(resolve => setTimeout(resolve, 1500))
  a!.child.kill('SIGKILL')
  await a!.exited
  // written while no node serves the client: the session's positions hold them
  for (let i = 0; i < 5; i++) await records.temp('kill', `while-down-${i}`)

  const second = mqtt.connect(b!.url, options)
  t.teardown(() => second.endAsync(true))
  second.on('message', (_topic, payload) => seen.add(payload.toString()))
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    second.once('connect', resolve)
    second.once('error', reject)
  })
  t.equal(connack.sessionPresent, true, 'node B has the session: Session Present 1, and the client subscribes nothing')
  for (let i = 0; i < 5; i++) await records.temp('kill', `after-${i}`)
  const expected = ['before', 'while-down', 'after'].flatMap(p => [0, 1, 2, 3, 4].map(i => `${p}-${i}`))
  await eventually(() => expected.every(m => seen.has(m)), 20_000, `all 15 delivered (missing: ${expected.filter(m => !seen.has(m)).join(' ')})`)
  t.same([...expected].filter(m => !seen.has(m)), [], 'none lost')
})

t.test('a 3.1.1 session with clean session 0 is resumed with Session Present 1 and delivers through its stored subscriptions, with no SUBSCRIBE [MQTT-3.2.2-2]', async t => {
  const b = nodes[1]!
  const clientId = unique('present')
  const first = await RawClient.connect(t, b.url, { clientId, protocolVersion: 4, clean: false })
  t.equal(first.of('connack')[0]!.sessionPresent, false, 'a client id never seen: Session Present 0')
  await first.subscribe('sensors/present/temp', 1)
  first.send({ cmd: 'disconnect' })
  await eventually(() => first.closedAt !== undefined, 10_000, 'closed after DISCONNECT')
  await records.temp('present', 'p1')
  const second = await RawClient.connect(t, b.url, { clientId, protocolVersion: 4, clean: false })
  t.equal(second.of('connack')[0]!.sessionPresent, true, 'Session Present 1 (3.1.1)')
  const publish = await second.next('publish')
  t.equal(publish.payload.toString(), 'p1', 'the record written while disconnected, with no SUBSCRIBE')
})

t.test('clean start discards the session: Session Present 0, no subscription left, and a later resume finds none [MQTT-3.1.2-4] [MQTT-3.2.2-1]', async t => {
  const b = nodes[1]!
  const clientId = unique('clean')
  const first = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  await first.subscribe('sensors/clean/temp', 1)
  first.send({ cmd: 'disconnect', reasonCode: 0 } as never)
  await eventually(() => first.closedAt !== undefined, 10_000, 'closed')
  const cleanOne = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: true })
  t.equal(cleanOne.of('connack')[0]!.sessionPresent, false, 'clean start: Session Present 0')
  await records.temp('clean', 'c1')
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(cleanOne.of('publish').length, 0, 'the old subscription is gone')
  cleanOne.send({ cmd: 'disconnect', reasonCode: 0 } as never)
  await eventually(() => cleanOne.closedAt !== undefined, 10_000, 'closed')
  const again = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  t.equal(again.of('connack')[0]!.sessionPresent, false, 'no session to resume')
})

t.test('a session whose expiry interval elapsed after its disconnect is removed: Session Present 0, and a tombstone in the sessions topic [MQTT-3.1.2-23]', async t => {
  const b = nodes[1]!
  const clientId = unique('expiry')
  const first = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 1 } })
  t.equal(first.of('connack')[0]!.properties?.sessionExpiryInterval, 1, 'the expiry granted')
  await first.subscribe('sensors/expiry/temp', 1)
  first.drop()
  // the sweep runs every 5 s on every node: a tombstone (a null value) for the client id
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('mqtt-persist-read') })
  t.teardown(() => kafka.close())
  const values: Array<string | null> = []
  const reader = kafka.reader({
    topic: SESSIONS,
    onBatch: (batch: RecordBatch) => {
      for (const r of batch.records) if (r.key?.toString() === clientId) values.push(r.value === null || r.value.length === 0 ? null : r.value.toString())
    }
  })
  t.teardown(() => reader.stop())
  await reader.start(new Map([[0, 0n]]))
  await eventually(() => values.includes(null), 20_000, `a tombstone for ${clientId} (records: ${values.length})`)
  t.ok(values.some(v => v !== null && JSON.parse(v).expiry === 1), 'the session was kept first')
  const again = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } })
  t.equal(again.of('connack')[0]!.sessionPresent, false, 'expired: nothing to resume')
})

t.test('a 5.0 DISCONNECT with Session Expiry Interval 0 ends the session (3.14.2.2.2); raising it from 0 at CONNECT is a protocol error, DISCONNECT 0x82 [MQTT-3.14.2-2]', async t => {
  const b = nodes[1]!
  const clientId = unique('disc-expiry')
  const first = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  await first.subscribe('sensors/disc/temp', 1)
  first.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } } as never)
  await eventually(() => first.closedAt !== undefined, 10_000, 'closed')
  const again = await RawClient.connect(t, b.url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } })
  t.equal(again.of('connack')[0]!.sessionPresent, false, 'the session ended with its connection')

  const zero = await RawClient.connect(t, b.url, { clientId: unique('disc-zero'), protocolVersion: 5, clean: true })
  zero.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } } as never)
  const disconnect = await zero.next('disconnect', 10_000)
  t.equal(disconnect.reasonCode, 0x82, 'protocol error')
})
