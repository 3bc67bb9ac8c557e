// MQTT conformance, PUBLISH and PUBACK (3.1.1 sections 3.3, 3.4, 4.3, 4.5,
// 4.6; 5.0 the same): what the server does with a client's PUBLISH and how it
// delivers one. Statement numbers are 3.1.1's unless the name says 5.0.
// Every delivery goes through Kafka: a PUBLISH is a record of the mapped
// topic (sensors/{device}/temp, the harness's policy), read back by the hub.
import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import { test } from 'tap'
import type { IPublishPacket } from 'mqtt-packet'
import { paho } from './paho-mqtt.ts'
import { DEV_TOKEN, TEMP, closedBy, dashboard, eventually, fileGateway, granted, inbox, mosquitto, rawSession, refusalCode, within, withFirstByte } from './conformance.ts'

const gw = await fileGateway()

const device = () => `d${randomBytes(4).toString('hex')}`

test('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set is malformed: the connection closes (5.0: DISCONNECT 0x81)', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    // PUBLISH (0x30) with QoS bits 11
    c.send(withFirstByte({ cmd: 'publish', topic: `sensors/${device()}/temp`, payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false }, version, 0x36))
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'puback'), `${version}: not acknowledged`)
    if (version === 5) t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x81 })
  }
})

test('[MQTT-3.3.2-2] a topic name with a wildcard is refused: PUBACK 0x90 on 5.0, the connection closed on 3.1.1 (MQTT.js)', async t => {
  const five = await dashboard(t, gw.tcpUrl, 5)
  t.equal(await refusalCode(five.publishAsync('sensors/+/temp', '1', { qos: 1 })), 0x90)
  const four = await dashboard(t, gw.url, 4)
  const closed = new Promise<void>(resolve => four.once('close', () => resolve()))
  four.publish('sensors/#', '1', { qos: 1 })
  await within(closed, 15_000, 'the 3.1.1 connection closed')
  t.pass('3.1.1 closed')
})

test('[MQTT-3.3.4-1] [MQTT-2.3.1-6] [MQTT-4.3.2-2] a QoS 1 PUBLISH is answered with a PUBACK holding its packet identifier (3.1.1 and 5.0)', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send({ cmd: 'publish', topic: `sensors/${device()}/temp`, payload: Buffer.from('1'), qos: 1, messageId: 4242, dup: false, retain: false })
    t.match(await c.next('puback'), { messageId: 4242 }, String(version))
  }
})

test('[MQTT-4.6.0-2] PUBACKs are sent in the order the QoS 1 PUBLISHes were received', async t => {
  const c = await rawSession(t, gw.tcpPort, 5)
  const ids = [31, 7, 19, 2, 44, 8, 12, 3]
  const name = `sensors/${device()}/temp`
  for (const id of ids) c.send({ cmd: 'publish', topic: name, payload: Buffer.from(String(id)), qos: 1, messageId: id, dup: false, retain: false })
  await eventually(() => c.packets.filter(p => p.cmd === 'puback').length === ids.length, 20_000, 'every PUBACK')
  t.same(c.packets.filter(p => p.cmd === 'puback').map(p => (p as { messageId?: number }).messageId), ids)
})

test('[MQTT-4.6.0-6] [MQTT-3.3.2-3] a topic is ordered: a subscriber receives one publisher\'s messages in order, under a name its filter matches (MQTT.js)', async t => {
  const name = `sensors/${device()}/temp`
  const sub = await dashboard(t, gw.url, 5)
  const seen = inbox(sub)
  t.same(await granted(sub, 'sensors/+/temp'), [0])
  const pub = await dashboard(t, gw.tcpUrl, 4)
  const sent = Array.from({ length: 20 }, (_v, i) => String(i))
  for (const payload of sent) pub.publish(name, payload, { qos: (Number(payload) % 2) as 0 | 1 })
  await eventually(() => seen.length >= sent.length, 30_000, 'every message')
  t.same(seen, sent.map(p => `${name} ${p}`))
})

test('[MQTT-3.3.5-1] [MQTT-4.5.0-1] a message goes to every matching subscription: mosquitto_sub over TCP and MQTT.js over WebSocket both get it', async t => {
  const name = `sensors/${device()}/temp`
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(gw.tcpPort), '-V', 'mqttv311', '-u', 'x', '-P', DEV_TOKEN, '-t', 'sensors/#', '-v', '-C', '1', '-W', '40'])
  t.teardown(() => { sub.kill() })
  let out = ''
  let err = ''
  sub.stdout.on('data', chunk => { out += String(chunk) })
  sub.stderr.on('data', chunk => { err += String(chunk) })
  // 'close', not 'exit': its stdout may still hold the line when the process has exited
  const exited = new Promise<number | null>(resolve => sub.on('close', code => resolve(code)))
  await eventually(() => gw.app.sessions.list().some(s => s.route === 'mqtt+tcp' && s.topics().includes(TEMP)), 30_000, 'mosquitto_sub subscribed')
  const ws = await dashboard(t, gw.url, 4)
  const seen = inbox(ws)
  await granted(ws, name)
  const pub = await mosquitto('mosquitto_pub', ['-p', String(gw.tcpPort), '-V', 'mqttv5', '-u', 'x', '-P', DEV_TOKEN, '-t', name, '-m', 'both', '-q', '1'])
  t.equal(pub.code, 0, pub.stderr)
  t.equal(await within(exited, 40_000, 'mosquitto_sub exits after one message'), 0, `mosquitto_sub printed ${JSON.stringify(out)}, stderr ${JSON.stringify(err)}`)
  t.equal(out.trim(), `${name} both`)
  await eventually(() => seen.length > 0, 20_000, 'MQTT.js got it')
  t.same(seen, [`${name} both`])
})

test('[MQTT-3.3.5-1] overlapping subscriptions of one client: the message is delivered, once (MQTT.js, 3.1.1 and 5.0)', async t => {
  for (const version of [4, 5] as const) {
    const name = `sensors/${device()}/temp`
    const sub = await dashboard(t, gw.url, version)
    const seen = inbox(sub)
    t.same(await granted(sub, ['sensors/+/temp', 'sensors/#', name]), [0, 0, 0])
    const pub = await dashboard(t, gw.tcpUrl, version)
    await pub.publishAsync(name, 'once', { qos: 1 })
    await pub.publishAsync(name, 'end', { qos: 1 })
    await eventually(() => seen.includes(`${name} end`), 20_000, 'the last message')
    t.same(seen, [`${name} once`, `${name} end`], String(version))
  }
})

test('[MQTT-3.3.1-2] [MQTT-2.3.1-5] a QoS 0 delivery has DUP 0 and no packet identifier; the payload arrives byte for byte', async t => {
  const name = `sensors/${device()}/temp`
  const c = await rawSession(t, gw.tcpPort, 4)
  c.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: name, qos: 0 }] })
  t.match(await c.next('suback'), { messageId: 5, granted: [0] })
  const payload = Buffer.from(Array.from({ length: 256 }, (_v, i) => i))
  const pub = await dashboard(t, gw.url, 5)
  await pub.publishAsync(name, payload, { qos: 1 })
  const delivered = await c.next('publish', 20_000) as IPublishPacket
  t.match(delivered, { topic: name, qos: 0, dup: false })
  t.notOk(delivered.messageId, 'no packet identifier')
  t.same(Buffer.from(delivered.payload as Buffer), payload)
})

test('[MQTT-3.3.5-2] a PUBLISH the server does not authorize closes the connection on 3.1.1, which cannot refuse one; 5.0 gets PUBACK 0x87', async t => {
  // the dev token reads humidity and may not publish it
  const name = `sensors/${device()}/hum`
  const five = await dashboard(t, gw.tcpUrl, 5)
  t.equal(await refusalCode(five.publishAsync(name, '1', { qos: 1 })), 0x87)
  const c = await rawSession(t, gw.tcpPort, 4)
  c.send({ cmd: 'publish', topic: name, payload: Buffer.from('1'), qos: 1, messageId: 9, dup: false, retain: false })
  await closedBy(c)
  t.notOk(c.packets.some(p => p.cmd === 'puback'), 'no positive acknowledgement either')
})

test('5.0 3.2.2.3.4 [MQTT-3.2.2-11] a QoS 2 PUBLISH past the announced Maximum QoS 1 gets DISCONNECT 0x9B', async t => {
  const c = await rawSession(t, gw.tcpPort, 5)
  c.send({ cmd: 'publish', topic: `sensors/${device()}/temp`, payload: Buffer.from('1'), qos: 2, messageId: 3, dup: false, retain: false })
  await closedBy(c)
  t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x9B })
})

test('5.0 3.3.2.3.4 [MQTT-3.3.2-8] [MQTT-3.3.2-9] a Topic Alias of 0, or above the Topic Alias Maximum CONNACK announced (16), is DISCONNECT 0x94', async t => {
  for (const alias of [0, 17]) {
    const c = await rawSession(t, gw.tcpPort, 5)
    t.equal((c.packets[0] as { properties?: { topicAliasMaximum?: number } }).properties?.topicAliasMaximum, 16, 'Topic Alias Maximum 16')
    c.send({ cmd: 'publish', topic: `sensors/${device()}/temp`, payload: Buffer.from('1'), qos: 0, dup: false, retain: false, properties: { topicAlias: alias } })
    await closedBy(c)
    t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x94 }, `alias ${alias}`)
  }
})

test('5.0 3.3.2.3.4: an alias sets a topic name that an empty one then stands for, on this connection only [MQTT-3.3.2-7]; an unknown alias or an empty name without one is DISCONNECT 0x82', async t => {
  const name = `sensors/${device()}/temp`
  const watcher = await dashboard(t, gw.tcpUrl, 5)
  const seen = inbox(watcher)
  await watcher.subscribeAsync(name)
  const c = await rawSession(t, gw.tcpPort, 5)
  c.send({ cmd: 'publish', topic: name, payload: Buffer.from('set'), qos: 1, messageId: 1, dup: false, retain: false, properties: { topicAlias: 3 } })
  c.send({ cmd: 'publish', topic: '', payload: Buffer.from('used'), qos: 1, messageId: 2, dup: false, retain: false, properties: { topicAlias: 3 } })
  await eventually(() => c.packets.filter(p => p.cmd === 'puback').length === 2, 15_000, 'two PUBACKs')
  t.match(c.packets.filter(p => p.cmd === 'puback'), [{ messageId: 1, reasonCode: 0 }, { messageId: 2, reasonCode: 0 }], 'both published')
  await eventually(() => seen.length === 2, 15_000, 'both delivered')
  t.same(seen, [`${name} set`, `${name} used`], 'the aliased PUBLISH went to the topic the alias was set to')
  // a new network connection knows none of the old one's aliases
  const again = await rawSession(t, gw.tcpPort, 5)
  again.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { topicAlias: 3 } })
  await closedBy(again)
  t.match(again.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x82 }, 'an alias never set on this connection')
  const empty = await rawSession(t, gw.tcpPort, 5)
  empty.send(withTopicLength0(5))
  await closedBy(empty)
  t.match(empty.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x82 }, 'an empty topic name without an alias')
})

test('5.0 3.3.2.3.4: an alias goes through the ACL as its topic name does (PUBACK 0x87 either way); MQTT.js autoAssignTopicAlias publishes through aliases', async t => {
  const c = await rawSession(t, gw.tcpPort, 5)
  // the dashboard (dev token) may read sensors/+/hum but not publish to it
  const hum = `sensors/${device()}/hum`
  c.send({ cmd: 'publish', topic: hum, payload: Buffer.from('1'), qos: 1, messageId: 1, dup: false, retain: false, properties: { topicAlias: 1 } })
  c.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 1, messageId: 2, dup: false, retain: false, properties: { topicAlias: 1 } })
  await eventually(() => c.packets.filter(p => p.cmd === 'puback').length === 2, 15_000, 'two PUBACKs')
  t.match(c.packets.filter(p => p.cmd === 'puback'), [{ messageId: 1, reasonCode: 0x87 }, { messageId: 2, reasonCode: 0x87 }], 'refused by name and by alias alike')

  const name = `sensors/${device()}/temp`
  const watcher = await dashboard(t, gw.url, 5)
  const seen = inbox(watcher)
  await watcher.subscribeAsync(name)
  const sender = await dashboard(t, gw.url, 5, { autoAssignTopicAlias: true })
  const sent: Array<{ topic: string, alias?: number }> = []
  sender.on('packetsend', packet => { if (packet.cmd === 'publish') sent.push({ topic: packet.topic, alias: packet.properties?.topicAlias }) })
  for (let i = 0; i < 5; i++) await sender.publishAsync(name, `m${i}`, { qos: 1 })
  t.ok(sent.filter(p => p.topic === '' && p.alias !== undefined).length >= 4, `MQTT.js sent the later ones by alias alone: ${JSON.stringify(sent)}`)
  await eventually(() => seen.length === 5, 15_000, 'five messages')
  t.same(seen, [0, 1, 2, 3, 4].map(i => `${name} m${i}`), 'in order, on their topic')
})

/** A 5.0 QoS 0 PUBLISH with a zero-length topic name and no properties (mqtt-packet will not generate one). */
function withTopicLength0 (version: 5): Buffer {
  // fixed header 0x30, remaining length 4: topic length 0 (2 bytes), properties length 0, payload 'x'
  return version === 5 ? Buffer.from([0x30, 0x04, 0x00, 0x00, 0x00, 0x78]) : Buffer.alloc(0)
}

test('[MQTT-3.3.4-1] [MQTT-3.3.5-1] [MQTT-3.3.2-3] paho-mqtt (PyPI) over TCP and WebSocket, 3.1.1 and 5.0: its QoS 1 PUBLISH is acknowledged and comes back to its own subscription', async t => {
  for (const transport of ['tcp', 'websockets'] as const) {
    for (const version of [4, 5] as const) {
      const name = `sensors/${device()}/temp`
      const events = await paho({ transport, port: transport === 'tcp' ? gw.tcpPort : Number(new URL(gw.url).port), version, password: DEV_TOKEN, subscribe: [['sensors/+/temp', 1]], publish: [[name, 'from python', 1]], expect: 1 })
      const what = `${transport} ${version}`
      t.match(events.find(e => e.event === 'connack'), { reason: 0, sessionPresent: false }, what)
      t.ok(events.some(e => e.event === 'puback' && (e.reason ?? 0) === 0), `${what}: PUBACK`)
      t.match(events.find(e => e.event === 'message'), { topic: name, payload: 'from python' }, `${what}: delivered`)
    }
  }
})
