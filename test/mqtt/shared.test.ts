// MQTT shared subscriptions ($share/{ShareName}/{filter}, MQTT 5 4.8.2)
// across two gateway nodes: an MQTT.js client over WebSocket on one node and
// Debian's mosquitto_sub over TCP on the other, in one share group, receive
// each record once between them; a plain subscriber gets every record. The
// group is a Kafka consumer group (the hub's group mode), so the topic gets 4
// partitions here, for Kafka to split between the two members.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { KafkaClient } from '@sluice/kafka'
import { connect, DEV_TOKEN, DEVICES, deviceToken, gateway, granted, TEMP } from './harness.ts'
import { eventually, kafkaBrokers } from '../helpers.ts'
import { rawSession } from './conformance/conformance.ts'

const RECORDS = 200
const SHARE = '$share/workers/sensors/+/temp'

test('a shared subscription on two nodes gets each record once between its members; a plain subscription gets all', async t => {
  const a = await gateway(t)
  const b = await gateway(t, { tcp: true })
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'mqtt-shared' })
  t.teardown(() => kafka.close())
  await kafka.addPartitions(TEMP, 4)

  const seen = { ws: [] as string[], tcp: [] as string[], plain: [] as string[] }
  const ws = await connect(t, a.url, { protocolVersion: 5, password: DEV_TOKEN })
  ws.on('message', (topic, payload) => seen.ws.push(`${topic} ${payload.toString()}`))
  const plain = await connect(t, a.url, { protocolVersion: 5, password: DEV_TOKEN })
  plain.on('message', (topic, payload) => seen.plain.push(`${topic} ${payload.toString()}`))
  t.same(await granted(plain, 'sensors/+/temp'), [0])

  // mosquitto_sub prints `topic payload` per message (-v) and leaves after the test's records
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.tcpPort), '-V', 'mqttv5', '-u', 'dash', '-P', DEV_TOKEN, '-t', SHARE, '-v', '-W', '90'])
  t.teardown(() => { sub.kill() })
  let out = ''
  let stderr = ''
  sub.stdout.on('data', chunk => {
    out += String(chunk)
    const lines = out.split('\n')
    out = lines.pop()!
    seen.tcp.push(...lines.filter(l => l !== ''))
  })
  sub.stderr.on('data', chunk => { stderr += String(chunk) })

  // the SUBACK comes once this node's member has joined the group (a join waits out the broker's 3 s delay)
  t.same(await granted(ws, SHARE), [0], 'granted at QoS 0')
  await eventually(() => b.app.sessions.list().some(s => s.route === 'mqtt+tcp'), 30_000, `mosquitto_sub connected (${stderr.slice(0, 300)})`)
  // both members in the group, with the partitions shared out: a member's fetches start after the rebalance
  await eventually(async () => {
    // the subscription's group is stable with both members (the broker may keep other runs' groups, empty)
    const groups = (await kafka.listGroups()).filter(g => g.includes('mqtt-share.'))
    const states = await Promise.all(groups.map(g => kafka.groupState(g)))
    return states.filter(state => state.members.length > 0).length === 1 && states.some(state => state.state === 'Stable' && state.members.length === 2)
  }, 45_000, 'one group with two stable members')

  const sent: string[] = []
  for (let i = 0; i < RECORDS; i++) {
    const device = `d${i % 40}`
    sent.push(`sensors/${device}/temp v${i}`)
    await kafka.produce(TEMP, { key: device, value: `v${i}` })
  }
  await eventually(() => seen.ws.length + seen.tcp.length >= RECORDS && seen.plain.length >= RECORDS, 45_000, 'every record delivered')
  t.comment(`shared ${seen.ws.length} + ${seen.tcp.length}, plain ${seen.plain.length}`)
  // a record delivered twice would show late: a moment for one more to arrive
  await new Promise(resolve => setTimeout(resolve, 500))
  const shared = [...seen.ws, ...seen.tcp]
  t.equal(shared.length, RECORDS, 'no record twice across the two members')
  t.same(new Set(shared), new Set(sent), 'and every record once')
  t.ok(seen.ws.length > 0 && seen.tcp.length > 0, `both members took some (MQTT.js ${seen.ws.length}, mosquitto_sub ${seen.tcp.length})`)
  t.same(seen.plain.sort(), [...sent].sort(), 'the plain subscription got every record')

  // UNSUBSCRIBE leaves the group: the other member then takes every partition
  await ws.unsubscribeAsync(SHARE)
  await eventually(async () => {
    const groups = (await kafka.listGroups()).filter(g => g.includes('mqtt-share.'))
    const members = (await Promise.all(groups.map(g => kafka.groupState(g)))).map(state => state.members.length).filter(n => n > 0)
    return members.length === 1 && members[0] === 1
  }, 45_000, 'the unsubscribed member left the group')
})

test('a share name with a wildcard, a share name alone and a second shared subscription on one connection are refused', async t => {
  const a = await gateway(t, { tcp: true })
  // MQTT.js will not send an invalid filter: a raw connection does (test/mqtt/conformance)
  const c = await rawSession(t, a.tcpPort!, 5)
  const suback = async (topic: string, messageId: number): Promise<number[]> => {
    c.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 0 }] })
    return ((await c.next('suback')) as { granted: number[] }).granted
  }
  t.same(await suback('$share/wor+kers/sensors/+/temp', 1), [0x8F], '[MQTT-4.8.2-2] no + in the ShareName')
  t.same(await suback('$share/workers', 2), [0x8F], '[MQTT-4.8.2-1] a ShareName and then a filter')
  t.same(await suback('$share/one/sensors/+/hum', 3), [0])
  t.same(await suback('$share/two/sensors/+/temp', 4), [0x97], 'one shared subscription per connection')
  const v3 = await rawSession(t, a.tcpPort!, 4)
  v3.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/a#b/sensors/+/temp', qos: 0 }] })
  t.same(((await v3.next('suback')) as { granted: number[] }).granted, [0x80], '3.1.1 refuses with 0x80')
})

test('a record of the shared subscription\'s Kafka topic that its filter does not match is not delivered through it, even if another filter of the connection matches it (Paho\'s test_shared_subscriptions)', async t => {
  const a = await gateway(t)
  const device = `s${Date.now().toString(36)}`
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'mqtt-shared-overlap' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic: `${DEVICES}.${device}`, partitions: 1 }])
  const password = deviceToken(device)
  const client = await connect(t, a.url, { protocolVersion: 5, password })
  const seen: string[] = []
  client.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`))
  // one Kafka topic behind both: devices/{device}/{kind} -> <DEVICES>.{device}, keyed by kind
  t.same(await granted(client, [`$share/g/devices/${device}/a`, `devices/${device}/b`]), [0, 0])
  const publisher = await connect(t, a.url, { protocolVersion: 5, password })
  await publisher.publishAsync(`devices/${device}/b`, 'for b', { qos: 1 })
  await publisher.publishAsync(`devices/${device}/a`, 'for a', { qos: 1 })
  await eventually(() => seen.length >= 2, 15_000, 'both messages')
  await new Promise(resolve => setTimeout(resolve, 500))
  t.same(seen.sort(), [`devices/${device}/a for a`, `devices/${device}/b for b`], 'each message once: b by the plain subscription only, a by the shared one')
})
