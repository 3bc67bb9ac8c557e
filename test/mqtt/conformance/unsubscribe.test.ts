// MQTT conformance, UNSUBSCRIBE and UNSUBACK (3.1.1 sections 3.10 and 3.11;
// 5.0 the same). Statement numbers are 3.1.1's unless the name says 5.0.
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import { HUM, closedBy, dashboard, eventually, fileGateway, granted, inbox, rawSession, withFirstByte } from './conformance.ts'

const gw = await fileGateway()

const device = () => `d${randomBytes(4).toString('hex')}`

test('[MQTT-3.10.1-1] an UNSUBSCRIBE whose fixed header flags are not 0010 is malformed: the connection closes', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send(withFirstByte({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: ['sensors/+/temp'] }, version, 0xA0))
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'unsuback'), String(version))
  }
})

test('[MQTT-3.10.3-2] an UNSUBSCRIBE without a topic filter is a protocol violation: the connection closes', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send(Buffer.from(version === 5 ? [0xA2, 0x03, 0x00, 0x01, 0x00] : [0xA2, 0x02, 0x00, 0x01]))
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'unsuback'), String(version))
  }
})

test('[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-6] an UNSUBSCRIBE gets one UNSUBACK with its packet identifier, even when no filter matched; 5.0 [MQTT-3.11.3-1] a reason code per filter, in order', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sensors/+/temp', qos: 0 }] })
    await c.next('suback')
    c.send({ cmd: 'unsubscribe', messageId: 901, unsubscriptions: ['sensors/none/temp', 'sensors/+/temp', 'sensors/+/temp'] })
    const unsuback = await c.next('unsuback')
    t.match(unsuback, { messageId: 901 }, String(version))
    // 0x11: no subscription existed (the third is gone after the second)
    if (version === 5) t.same((unsuback as { granted?: number[] }).granted, [0x11, 0x00, 0x11])
  }
})

test('[MQTT-3.10.4-1] [MQTT-3.10.4-2] filters are compared character by character, and once UNSUBACKed a filter gets no more messages (MQTT.js)', async t => {
  const name = `sensors/${device()}/temp`
  const sub = await dashboard(t, gw.url, 5)
  const seen = inbox(sub)
  t.same(await granted(sub, ['sensors/+/temp', name]), [0, 0])
  // 'sensors/#' also matches every name of 'sensors/+/temp', but is not that filter: nothing is removed
  await sub.unsubscribeAsync('sensors/#')
  const pub = await dashboard(t, gw.tcpUrl, 4)
  await pub.publishAsync(name, 'kept', { qos: 1 })
  await eventually(() => seen.length > 0, 20_000, 'a message after unsubscribing a filter not held')
  await sub.unsubscribeAsync('sensors/+/temp')
  await sub.unsubscribeAsync(name)
  const other = `sensors/${device()}/hum`
  t.same(await granted(sub, other), [0])
  await pub.publishAsync(name, 'after', { qos: 1 })
  // humidity is not the dashboard's to publish: written to Kafka by the gateway's own producer as a marker
  await gw.app.kafka.produce(HUM, { key: other.split('/')[1], value: Buffer.from('marker') })
  await eventually(() => seen.some(line => line.endsWith('marker')), 20_000, 'the marker, after the unsubscribed message')
  t.same(seen, [`${name} kept`, `${other} marker`], 'once each while subscribed, nothing after')
})
