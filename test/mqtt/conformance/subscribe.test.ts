// MQTT conformance, SUBSCRIBE and SUBACK (3.1.1 sections 3.8, 3.9 and the
// topic filter rules of 4.7; 5.0 the same). Statement numbers are 3.1.1's
// unless the name says 5.0.
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import type { IPublishPacket } from 'mqtt-packet'
import mqttPacket from 'mqtt-packet'
import { closedBy, dashboard, eventually, fileGateway, granted, inbox, rawSession, withFirstByte } from './conformance.ts'

const gw = await fileGateway()

const device = () => `d${randomBytes(4).toString('hex')}`

test('[MQTT-3.8.1-1] a SUBSCRIBE whose fixed header flags are not 0010 is malformed: the connection closes', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send(withFirstByte({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sensors/+/temp', qos: 0 }] }, version, 0x80))
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'suback'), String(version))
  }
})

test('[MQTT-3.8.3-3] 5.0 [MQTT-3.8.3-2] a SUBSCRIBE without a topic filter is a protocol violation: the connection closes', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    // packet id 1 (and 5.0's empty properties), no payload
    c.send(Buffer.from(version === 5 ? [0x82, 0x03, 0x00, 0x01, 0x00] : [0x82, 0x02, 0x00, 0x01]))
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'suback'), String(version))
  }
})

test('[MQTT-3.8.3-4] 5.0 [MQTT-3.8.3-5] a SUBSCRIBE whose options byte has reserved bits set is malformed: the connection closes', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    const bytes = Buffer.from(mqttPacket.generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'sensors/+/temp', qos: 0 }] }, { protocolVersion: version }))
    // the options byte is the packet's last; bits 6 and 7 are reserved in both versions
    bytes[bytes.length - 1]! |= 0xC0
    c.send(bytes)
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'suback'), String(version))
  }
})

test('[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-2.3.1-7] a SUBSCRIBE is answered with a SUBACK holding its packet identifier', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send({ cmd: 'subscribe', messageId: 777, subscriptions: [{ topic: 'sensors/+/temp', qos: 0 }] })
    t.match(await c.next('suback'), { messageId: 777, granted: [0] }, String(version))
  }
})

test('[MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] several filters get one SUBACK with a code for each, in their order; 3.1.1 codes are 0x00-0x02 or 0x80 [MQTT-3.9.3-2] (MQTT.js)', async t => {
  // the dev token reads temperatures and humidity, no device's topics
  t.same(await granted(await dashboard(t, gw.url, 4), ['sensors/+/temp', 'devices/d9/#', 'sensors/+/hum']), [0, 0x80, 0])
  t.same(await granted(await dashboard(t, gw.tcpUrl, 5), ['sensors/+/temp', 'devices/d9/#', 'sensors/+/hum']), [0, 0x87, 0])
})

test('[MQTT-4.7.1-2] [MQTT-4.7.1-3] a filter with # not last or + sharing its level is refused: SUBACK 0x80 on 3.1.1, 0x8F on 5.0', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: ['sensors/#/temp', 'sensors/d+/temp', 'sensors/+/temp#', 'sensors/+/temp'].map(topic => ({ topic, qos: 0 as const })) })
    const bad = version === 5 ? 0x8F : 0x80
    t.match(await c.next('suback'), { messageId: 3, granted: [bad, bad, bad, 0] }, String(version))
  }
})

test('[MQTT-3.8.4-6] 5.0 [MQTT-3.2.2-10] [MQTT-3.8.4-8] a SUBSCRIBE asking QoS 2 is accepted with a lower QoS granted, and deliveries come at most at that QoS', async t => {
  for (const version of [4, 5] as const) {
    const name = `sensors/${device()}/temp`
    const c = await rawSession(t, gw.tcpPort, version)
    c.send({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: name, qos: 2 }] })
    const suback = await c.next('suback') as mqttPacket.ISubackPacket
    t.ok((suback.granted as number[])[0]! <= 1, `${version}: granted ${String(suback.granted)}`)
    const pub = await dashboard(t, gw.url, version)
    await pub.publishAsync(name, 'q1', { qos: 1 })
    const delivered = await c.next('publish', 20_000) as IPublishPacket
    t.ok(delivered.qos <= (suback.granted as number[])[0]!, `${version}: delivered at QoS ${delivered.qos}`)
  }
})

test('[MQTT-3.8.4-3] a SUBSCRIBE with a filter already held replaces the subscription: messages are not doubled (MQTT.js)', async t => {
  const name = `sensors/${device()}/temp`
  const sub = await dashboard(t, gw.url, 5)
  const seen = inbox(sub)
  t.same(await granted(sub, 'sensors/+/temp'), [0])
  t.same(await granted(sub, 'sensors/+/temp'), [0])
  const pub = await dashboard(t, gw.tcpUrl, 4)
  await pub.publishAsync(name, 'a', { qos: 1 })
  await pub.publishAsync(name, 'b', { qos: 1 })
  await eventually(() => seen.includes(`${name} b`), 20_000, 'the second message')
  t.same(seen, [`${name} a`, `${name} b`])
})

test('5.0 3.2.2.3.12 a SUBSCRIBE with a Subscription Identifier, when CONNACK announced Subscription Identifiers Available 0, is a protocol error: DISCONNECT 0xA1', async t => {
  const c = await rawSession(t, gw.tcpPort, 5)
  t.equal((c.packets[0] as mqttPacket.IConnackPacket).properties?.subscriptionIdentifiersAvailable, false)
  c.send({ cmd: 'subscribe', messageId: 6, subscriptions: [{ topic: 'sensors/+/temp', qos: 0 }], properties: { subscriptionIdentifier: 7 } })
  await closedBy(c)
  t.notOk(c.packets.some(p => p.cmd === 'suback'), 'no SUBACK')
  t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0xA1 })
})
