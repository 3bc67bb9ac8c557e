// MQTT over WebSocket at /mqtt with MQTT.js, on the real gateway, Kafka and
// Redis: wildcard subscriptions get the records of the mapped Kafka topics
// under their MQTT names, a QoS 1 publish is acknowledged once Kafka holds it,
// a bad password gets the CONNACK its version defines, and a device reaches
// its own devices/{sub}/ topics and no other.
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import mqtt from 'mqtt'
import { eventually, readRecords } from '../helpers.ts'
import { DEV_TOKEN, TEMP, HUM, READINGS, DEVICES, gateway, deviceToken, connect, inbox, granted, refusalCode } from './harness.ts'

test('MQTT.js over WebSocket: sensors/+/temp and sensors/# get the records of the mapped Kafka topics under their MQTT names', async t => {
  const { app, url } = await gateway(t)
  const one = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const plus = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const all = await connect(t, url, { protocolVersion: 4, password: DEV_TOKEN })
  t.equal(one.options.properties?.maximumPacketSize, undefined, 'the client asked for no packet limit')
  const oneSeen = inbox(one)
  const plusSeen = inbox(plus)
  const allSeen = inbox(all)
  t.same(await granted(one, 'sensors/d1/temp'), [0], 'granted QoS 0')
  t.same(await granted(plus, 'sensors/+/temp'), [0])
  t.same(await granted(all, 'sensors/#'), [0], '3.1.1 too')

  // one partition each: d2's record is before d1's for every reader
  await app.kafka.produce(TEMP, { key: 'd2', value: Buffer.from('19.0') })
  await app.kafka.produce(TEMP, { key: 'd1', value: Buffer.from('21.5') })
  await app.kafka.produce(HUM, { key: 'd1', value: Buffer.from('40') })
  await eventually(() => allSeen.length >= 3, 30_000, 'sensors/# receives three messages')
  t.same([...allSeen].sort(), ['sensors/d1/hum 40', 'sensors/d1/temp 21.5', 'sensors/d2/temp 19.0'])
  await eventually(() => plusSeen.length >= 2 && oneSeen.length >= 1, 30_000, 'the narrower filters receive theirs')
  t.same(plusSeen, ['sensors/d2/temp 19.0', 'sensors/d1/temp 21.5'], 'sensors/+/temp: both devices, no humidity')
  t.same(oneSeen, ['sensors/d1/temp 21.5'], 'sensors/d1/temp: d2\'s record before it was not delivered')
  const metrics = await app.inject('/metrics')
  t.match(metrics.body, /sluice_connections\{route="\/mqtt",product="iot"\} 3/, 'the MQTT sockets are in the registry, by product')
})

test('a QoS 1 PUBLISH is PUBACKed once the record is in Kafka, with the key its topic name maps to', async t => {
  const { url } = await gateway(t)
  const client = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const device = `d${randomBytes(3).toString('hex')}`
  const pubacks: Array<{ messageId?: number, reasonCode?: number }> = []
  client.on('packetreceive', packet => { if (packet.cmd === 'puback') pubacks.push(packet) })
  // MQTT.js settles a QoS 1 publish on its PUBACK, and rejects one whose reason code is a refusal
  await client.publishAsync(`readings/${device}`, '22.25', { qos: 1 })
  t.equal(pubacks.length, 1, 'one PUBACK')
  t.equal(pubacks[0]?.reasonCode ?? 0, 0, 'success')
  // nothing else writes to this topic: the one record is the publish
  const [record] = await readRecords(t, READINGS, 1)
  t.equal(record?.key?.toString(), device, 'readings/<device> is key <device>')
  t.equal(record?.value?.toString(), '22.25', 'the record is in Kafka')
  t.equal(await refusalCode(client.publishAsync('sensors/x/hum', 'no', { qos: 1 })), 0x87, 'a topic the rule does not let it publish to: PUBACK 0x87')
  t.equal(await refusalCode(client.publishAsync('unmapped/topic', 'no', { qos: 1 })), 0x90, 'a name no product maps: PUBACK 0x90')
})

test('a bad password gets CONNACK 0x86 on 5.0 and 0x04 on 3.1.1, then the connection closes [MQTT-3.2.2-5]', async t => {
  const { url } = await gateway(t)
  t.equal(await refusalCode(mqtt.connectAsync(url, { protocolVersion: 5, username: 'x', password: 'not-a-credential', reconnectPeriod: 0 })), 0x86)
  t.equal(await refusalCode(mqtt.connectAsync(url, { protocolVersion: 4, username: 'x', password: 'sk_0123456789abcdef_' + 'A'.repeat(43), reconnectPeriod: 0 })), 0x04)
  t.equal(await refusalCode(mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 })), 0x86, 'no password at all')
})

test('a device allowed devices/{sub}/# is refused elsewhere: SUBACK and PUBACK 0x87 on 5.0, SUBACK 0x80 and a disconnect on 3.1.1', async t => {
  const { app, url } = await gateway(t)
  const v5 = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1') })
  const seen = inbox(v5)
  t.same(await granted(v5, ['devices/d1/#', 'devices/d2/#']), [0, 0x87])
  t.equal(await refusalCode(v5.publishAsync('devices/d1/state', 'on', { qos: 1 })), undefined, 'its own topic: PUBACK 0')
  t.equal(await refusalCode(v5.publishAsync('devices/d2/state', 'on', { qos: 1 })), 0x87, 'another device\'s: PUBACK 0x87')
  await eventually(() => seen.includes('devices/d1/state on'), 30_000, 'its own publish comes back through Kafka')
  await app.kafka.produce(`${DEVICES}.d2`, { key: 'state', value: Buffer.from('x') })
  await app.kafka.produce(`${DEVICES}.d1`, { key: 'cmd', value: Buffer.from('reboot') })
  await eventually(() => seen.includes('devices/d1/cmd reboot'), 30_000, 'a command to it arrives')
  t.notOk(seen.some(s => s.startsWith('devices/d2/')), 'nothing of d2')

  const v4 = await connect(t, url, { protocolVersion: 4, password: deviceToken('d1') })
  t.same(await granted(v4, ['devices/d2/#']), [0x80])
  const closed = new Promise<void>(resolve => v4.once('close', () => resolve()))
  v4.publish('devices/d2/state', 'on', { qos: 1 })
  await closed
  t.pass('3.1.1 cannot refuse a PUBLISH: the connection is closed [MQTT-3.3.5-2]')
})

test('a connection holds at most 100 filters: the 101st is refused with 0x97 (quota exceeded), the others stand', async t => {
  const { app, url } = await gateway(t)
  const client = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const filters = Array.from({ length: 101 }, (_v, i) => `sensors/d${i}/temp`)
  const codes = await granted(client, filters)
  t.same(codes.slice(0, 100), Array(100).fill(0), 'the first 100 granted')
  t.equal(codes[100], 0x97, 'the 101st refused')
  t.same(await granted(client, 'sensors/d0/temp'), [0], 'one it holds can be subscribed again')
  const seen = inbox(client)
  await app.kafka.produce(TEMP, { key: 'd99', value: Buffer.from('7') })
  await app.kafka.produce(TEMP, { key: 'd100', value: Buffer.from('8') })
  await app.kafka.produce(TEMP, { key: 'd1', value: Buffer.from('9') })
  await eventually(() => seen.length >= 2, 20_000, 'the held filters\' records')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(seen, ['sensors/d99/temp 7', 'sensors/d1/temp 9'], 'the refused filter gets nothing')
})
