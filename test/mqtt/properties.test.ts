// MQTT 5 PUBLISH properties through Kafka (plugins/mqtt/src/properties.ts),
// on the real gateway, Kafka and Redis, with MQTT.js: what a 5.0 publisher
// sets reaches every 5.0 subscriber unaltered, at QoS 0 and 1 (Payload Format
// Indicator [MQTT-3.3.2-4], Content Type [MQTT-3.3.2-20], Response Topic
// [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16], User Properties in
// order, names repeated [MQTT-3.3.2-17] [MQTT-3.3.2-18]); a 3.1.1 subscriber
// gets the plain message; the Kafka record carries them as mqtt.* headers; a
// message past its Message Expiry Interval is not delivered to a session
// that resumes after it [MQTT-3.3.2-5], one within it comes with what is
// left [MQTT-3.3.2-6]; a Response Topic with a wildcard is DISCONNECT 0x82.
import { randomBytes } from 'node:crypto'
import { test, type Test } from 'tap'
import type { IPublishPacket } from 'mqtt-packet'
import mqtt, { type MqttClient } from 'mqtt'
import { KafkaClient } from '@sluice/kafka'
import { eventually, kafkaBrokers } from '../helpers.ts'
import { DEVICES, connect, deviceToken, gateway, readAll } from './harness.ts'

async function deviceTopic (): Promise<string> {
  const device = `p${randomBytes(4).toString('hex')}`
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'mqtt-properties-suite' })
  try {
    await kafka.ensureTopics([{ topic: `${DEVICES}.${device}`, partitions: 1 }])
  } finally {
    await kafka.close()
  }
  return device
}

function packets (client: MqttClient): IPublishPacket[] {
  const seen: IPublishPacket[] = []
  client.on('message', (_topic, _payload, packet) => seen.push(packet))
  return seen
}

async function gatewayUrl (t: Test): Promise<string> {
  return (await gateway(t)).url
}

test('5.0 properties reach 5.0 subscribers unaltered at QoS 0 and 1, through the record\'s mqtt.* headers; 3.1.1 gets the plain message', async t => {
  const device = await deviceTopic()
  const url = await gatewayUrl(t)
  const password = deviceToken(device)
  const name = `devices/${device}/status`
  const subs = await Promise.all([5, 5, 4].map((protocolVersion, i) => connect(t, url, { protocolVersion: protocolVersion as 4 | 5, password, clientId: `s${i}-${device}` })))
  const seen = subs.map(packets)
  await subs[0]!.subscribeAsync(name, { qos: 0 })
  await subs[1]!.subscribeAsync(name, { qos: 1 })
  await subs[2]!.subscribeAsync(name, { qos: 1 })
  const publisher = await connect(t, url, { protocolVersion: 5, password, clientId: `p-${device}` })
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'application/json; charset=utf-8',
    responseTopic: `devices/${device}/reply`,
    correlationData: Buffer.from([0, 1, 2, 250, 255]),
    userProperties: { trace: 'abc', region: ['eu', 'us'], émoji: '✓' }
  }
  await publisher.publishAsync(name, '{"on":true}', { qos: 1, properties })
  await eventually(() => seen.every(s => s.length === 1), 15_000, 'every subscriber got the message')
  for (const [i, qos] of [[0, 0], [1, 1]] as const) {
    const got = seen[i]![0]!
    t.equal(got.qos, qos, `5.0 subscriber at QoS ${qos}`)
    t.equal(got.payload.toString(), '{"on":true}')
    t.match(got.properties, {
      payloadFormatIndicator: true,
      contentType: properties.contentType,
      responseTopic: properties.responseTopic,
      userProperties: { trace: 'abc', region: ['eu', 'us'], émoji: '✓' }
    }, `QoS ${qos}: the properties as published`)
    t.same(got.properties?.correlationData, properties.correlationData, `QoS ${qos}: the correlation data's bytes`)
  }
  t.equal(seen[2]![0]!.payload.toString(), '{"on":true}', '3.1.1: the plain message')
  const [record] = (await readAll(`${DEVICES}.${device}`)).filter(r => r.key?.toString() === 'status')
  t.same(JSON.parse(record!.headers['mqtt.user-properties']!.toString()), [['trace', 'abc'], ['region', 'eu'], ['region', 'us'], ['émoji', '✓']], 'the record keeps the user properties in order, names repeated')
  t.equal(record!.headers['mqtt.content-type']?.toString(), properties.contentType)
  t.equal(record!.headers['mqtt.payload-format']?.toString(), '1')
})

test('[MQTT-3.3.2-5] a message past its Message Expiry Interval is not delivered to a session that resumes after it; [MQTT-3.3.2-6] one within it comes with what is left', async t => {
  const device = await deviceTopic()
  const url = await gatewayUrl(t)
  const password = deviceToken(device)
  const clientId = `keeper-${device}`
  const options = { protocolVersion: 5 as const, password, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
  const keeper = await connect(t, url, options)
  await keeper.subscribeAsync(`devices/${device}/+`, { qos: 1 })
  await keeper.endAsync()
  const publisher = await connect(t, url, { protocolVersion: 5, password, clientId: `p-${device}` })
  await publisher.publishAsync(`devices/${device}/short`, 'gone', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await publisher.publishAsync(`devices/${device}/long`, 'kept', { qos: 1, properties: { messageExpiryInterval: 60 } })
  await new Promise(resolve => setTimeout(resolve, 2500))
  // listening before the CONNACK: the session's messages come right after it
  const back = mqtt.connect(url, { reconnectPeriod: 0, username: 'any', ...options })
  t.teardown(() => back.endAsync(true))
  const seen = packets(back)
  await eventually(() => seen.some(p => p.payload.toString() === 'kept'), 15_000, 'the message within its interval')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(seen.map(p => p.payload.toString()), ['kept'], 'the expired one was not delivered')
  const left = seen[0]!.properties?.messageExpiryInterval ?? 0
  t.ok(left >= 45 && left <= 58, `the interval sent is what is left of 60 s after ~2.5 s: ${left}`)
})

test('[MQTT-3.3.2-14] a Response Topic with a wildcard is a protocol error: DISCONNECT 0x82, nothing published', async t => {
  const device = await deviceTopic()
  const url = await gatewayUrl(t)
  const client = await connect(t, url, { protocolVersion: 5, password: deviceToken(device), clientId: `w-${device}` })
  const disconnect = new Promise<number | undefined>(resolve => client.once('disconnect', packet => resolve(packet.reasonCode)))
  client.publish(`devices/${device}/status`, 'x', { qos: 0, properties: { responseTopic: `devices/${device}/+` } })
  t.equal(await disconnect, 0x82)
  t.equal((await readAll(`${DEVICES}.${device}`)).length, 0, 'no record written')
})

test('5.0 [MQTT-3.8.3-3] No Local: a connection is not sent its own messages through a No Local subscription; another client id is, and so is a subscription without it', async t => {
  const device = await deviceTopic()
  const url = await gatewayUrl(t)
  const password = deviceToken(device)
  const me = await connect(t, url, { protocolVersion: 5, password, clientId: `me-${device}` })
  const other = await connect(t, url, { protocolVersion: 5, password, clientId: `other-${device}` })
  const mine = packets(me)
  const theirs = packets(other)
  await me.subscribeAsync(`devices/${device}/+`, { qos: 1, nl: true })
  await me.subscribeAsync(`devices/${device}/plain`, { qos: 0 })
  await other.subscribeAsync(`devices/${device}/+`, { qos: 1, nl: true })
  await me.publishAsync(`devices/${device}/own`, 'from me', { qos: 1 })
  await me.publishAsync(`devices/${device}/plain`, 'plain from me', { qos: 1 })
  await other.publishAsync(`devices/${device}/own`, 'from other', { qos: 1 })
  await eventually(() => theirs.length === 2 && mine.length === 2, 15_000, 'the messages each should get')
  await new Promise(resolve => setTimeout(resolve, 500))
  t.same(mine.map(p => p.payload.toString()).sort(), ['from other', 'plain from me'], 'mine: the other client\'s, and my own only through the subscription without No Local')
  t.same(theirs.map(p => p.payload.toString()).sort(), ['from me', 'plain from me'], 'the other: mine, not its own')
})
