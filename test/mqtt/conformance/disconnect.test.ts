// MQTT conformance, DISCONNECT (3.1.1 section 3.14, 5.0 section 3.14 and
// the server-sent DISCONNECT of 4.13). Statement numbers are 3.1.1's unless
// the name says 5.0.
import { test } from 'tap'
import type { IDisconnectPacket } from 'mqtt-packet'
import { DEV_TOKEN, closedBy, fileGateway, raw, rawSession } from './conformance.ts'

const gw = await fileGateway()

test('3.14.4 on a client\'s DISCONNECT the server closes the network connection (3.1.1 and 5.0)', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send({ cmd: 'disconnect' })
    await closedBy(c)
    // 5.0: the server answers with its own DISCONNECT 0x00 before closing (no statement forbids it; mosquitto does not)
    if (version === 4) t.same(c.packets.map(p => p.cmd), ['connack'], '3.1.1: nothing after CONNACK')
    else t.match(c.packets.slice(1), [{ cmd: 'disconnect', reasonCode: 0 }], '5.0: a DISCONNECT 0x00 at most')
  }
})

test('5.0 [MQTT-3.14.0-1] a server does not send DISCONNECT before a successful CONNACK: a refused CONNECT gets its CONNACK only', async t => {
  const c = await raw(t, gw.tcpPort, 5)
  c.send({ cmd: 'connect', protocolVersion: 5, clientId: 'refused', clean: true, keepalive: 60, username: 'x', password: Buffer.from('wrong') })
  await closedBy(c)
  t.same(c.packets.map(p => p.cmd), ['connack'])
})

test('5.0 [MQTT-3.14.2-2] [MQTT-3.14.4-1] [MQTT-3.14.4-2] a server\'s DISCONNECT has no Session Expiry Interval, is the last packet, and the server closes the connection', async t => {
  const c = await rawSession(t, gw.tcpPort, 5)
  // a second CONNECT: a protocol error the server answers with DISCONNECT 0x82
  c.send({ cmd: 'connect', protocolVersion: 5, clientId: 'again', clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN) })
  await closedBy(c)
  const last = c.packets.at(-1) as IDisconnectPacket
  t.match(last, { cmd: 'disconnect', reasonCode: 0x82 })
  t.equal(last.properties?.sessionExpiryInterval, undefined)
  t.equal(c.packets.filter(p => p.cmd === 'disconnect').length, 1)
})
