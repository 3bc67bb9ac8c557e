// MQTT conformance, topic names and filters (3.1.1 section 4.7 and the
// UTF-8 rules of 1.5.3; 5.0 sections 4.7 and 1.5.4) and MQTT over WebSocket
// (section 6.0, the same in both). Statement numbers are 3.1.1's unless the
// name says 5.0.
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import WebSocket from 'ws'
import mqttPacket from 'mqtt-packet'
import { DEV_TOKEN, closedBy, dashboard, eventually, fileGateway, granted, inbox, rawSession, within } from './conformance.ts'

const gw = await fileGateway()

const device = () => `d${randomBytes(4).toString('hex')}`

test('[MQTT-4.7.3-4] topic names are not normalized: sensors/D1/temp and sensors/d1/temp are two topics (MQTT.js)', async t => {
  const id = device()
  const sub = await dashboard(t, gw.url, 4)
  const seen = inbox(sub)
  t.same(await granted(sub, `sensors/${id}/temp`), [0])
  const pub = await dashboard(t, gw.tcpUrl, 5)
  await pub.publishAsync(`sensors/${id.toUpperCase()}/temp`, 'upper', { qos: 1 })
  await pub.publishAsync(`sensors/${id}/temp`, 'lower', { qos: 1 })
  await eventually(() => seen.length > 0, 20_000, 'the lower-case one')
  t.same(seen, [`sensors/${id}/temp lower`])
})

test('[MQTT-4.7.1-1] [MQTT-4.7.3-1] a PUBLISH to an empty topic name or one with a wildcard is refused (3.1.1: the connection closes)', async t => {
  for (const name of ['', 'sensors/+/temp', 'sensors/#']) {
    const c = await rawSession(t, gw.tcpPort, 4)
    c.send(mqttPacket.generate({ cmd: 'publish', topic: name, payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false }, { protocolVersion: 4 }))
    await closedBy(c)
    t.notOk(c.packets.some(p => p.cmd === 'puback'), JSON.stringify(name))
  }
})

test('[MQTT-4.7.3-2] [MQTT-1.5.3-2] a topic name holding U+0000 closes the connection (3.1.1)', async t => {
  const c = await rawSession(t, gw.tcpPort, 4)
  c.send({ cmd: 'publish', topic: 'sensors/a\u0000b/temp', payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false })
  await closedBy(c)
  t.notOk(c.packets.some(p => p.cmd === 'puback'))
})

test('5.0 [MQTT-1.5.4-2] U+0000 in a topic name or filter is a malformed packet: DISCONNECT 0x81, not PUBACK or SUBACK 0x90 / 0x8F', async t => {
  const pub = await rawSession(t, gw.tcpPort, 5)
  pub.send({ cmd: 'publish', topic: 'sensors/a\u0000b/temp', payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false })
  await closedBy(pub)
  t.match(pub.packets.slice(1), [{ cmd: 'disconnect', reasonCode: 0x81 }], 'PUBLISH')
  const sub = await rawSession(t, gw.tcpPort, 5)
  sub.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'sensors/\u0000/temp', qos: 0 }] })
  await closedBy(sub)
  t.match(sub.packets.slice(1), [{ cmd: 'disconnect', reasonCode: 0x81 }], 'SUBSCRIBE')
})

test('[MQTT-6.0.0-4] [MQTT-6.0.0-2] over WebSocket the server selects the mqtt subprotocol and reads a packet spread over several frames, and several packets in one frame', async t => {
  const ws = new WebSocket(gw.url, 'mqtt')
  t.teardown(() => ws.terminate())
  await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) }), 15_000, 'the upgrade')
  t.equal(ws.protocol, 'mqtt')
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const cmds: string[] = []
  parser.on('packet', p => cmds.push(p.cmd))
  ws.on('message', data => parser.parse(data as Buffer))
  const connect = mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: 'frames', clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN) }, { protocolVersion: 4 })
  for (let at = 0; at < connect.length; at += 7) ws.send(connect.subarray(at, at + 7))
  await eventually(() => cmds.includes('connack'), 15_000, 'a CONNACK')
  ws.send(Buffer.concat([mqttPacket.generate({ cmd: 'pingreq' }), mqttPacket.generate({ cmd: 'pingreq' })]))
  await eventually(() => cmds.filter(c => c === 'pingresp').length === 2, 15_000, 'two PINGRESPs')
  t.same(cmds, ['connack', 'pingresp', 'pingresp'])
})

test('[MQTT-6.0.0-1] over WebSocket a text frame closes the connection', async t => {
  const ws = new WebSocket(gw.url, 'mqtt')
  t.teardown(() => ws.terminate())
  await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) }), 15_000, 'the upgrade')
  const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
  ws.send(mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: 'text', clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN) }, { protocolVersion: 4 }).toString('latin1'))
  const code = await within(closed, 15_000, 'the close')
  t.ok(code >= 1000, `closed with ${code}`)
})
