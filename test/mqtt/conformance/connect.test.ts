// MQTT conformance, CONNECT and CONNACK (3.1.1 section 3.1 and 3.2, 5.0
// section 3.1 and 3.2): the statements a server must satisfy. Statement
// numbers are 3.1.1's unless the name says 5.0 (the two numberings differ).
import { test } from 'tap'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { paho } from './paho-mqtt.ts'
import { DEV_TOKEN, closedBy, fileGateway, mosquitto, raw, rawSession, refusalCode, withConnack } from './conformance.ts'

const gw = await fileGateway()

function connectBytes (version: 4 | 5, options: Partial<mqttPacket.IConnectPacket> = {}): Buffer {
  return Buffer.from(mqttPacket.generate({ cmd: 'connect', protocolVersion: version, clientId: 'c-' + Math.random().toString(36).slice(2, 8), clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN), ...options } as mqttPacket.IConnectPacket, { protocolVersion: version }))
}

/** Where the variable header starts: after the type byte and the Remaining Length's own bytes. */
function variableHeader (bytes: Buffer): number {
  let at = 1
  while ((bytes[at]! & 0x80) !== 0) at++
  return at + 1
}

test('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection, unanswered', async t => {
  const c = await raw(t, gw.tcpPort, 4)
  c.send({ cmd: 'pingreq' })
  await closedBy(c)
  t.same(c.packets, [], 'no PINGRESP, no CONNACK')
})

for (const version of [4, 5] as const) {
  test(`[MQTT-3.1.0-2] a second CONNECT is a protocol violation and closes the connection (${version === 5 ? '5.0: DISCONNECT 0x82' : '3.1.1'})`, async t => {
    const c = await rawSession(t, gw.tcpPort, version)
    c.send(connectBytes(version))
    await closedBy(c)
    t.equal(c.packets.filter(p => p.cmd === 'connack').length, 1, 'one CONNACK only')
    if (version === 5) t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x82 })
  })
}

test('[MQTT-3.1.2-1] a CONNECT whose protocol name is not "MQTT" is not served: the connection closes without a CONNACK', async t => {
  const c = await raw(t, gw.tcpPort, 4)
  const bytes = connectBytes(4)
  // 'MQTT' is the 4 bytes after the name's 2-byte length
  bytes.write('MQTX', variableHeader(bytes) + 2, 'latin1')
  c.send(bytes)
  await closedBy(c)
  t.same(c.packets, [])
})

test('[MQTT-3.1.2-3] a CONNECT with its reserved flag set is malformed: the connection closes without a CONNACK', async t => {
  const c = await raw(t, gw.tcpPort, 4)
  const bytes = connectBytes(4)
  // name length (2), 'MQTT' (4), level (1), then the flags byte
  bytes[variableHeader(bytes) + 7]! |= 0x01
  c.send(bytes)
  await closedBy(c)
  t.same(c.packets, [])
})

test('[MQTT-3.1.2-6] [MQTT-3.2.2-1] with clean session 1, CONNACK says Session Present 0 (3.1.1 and 5.0, MQTT.js over WebSocket and TCP)', async t => {
  for (const url of [gw.url, gw.tcpUrl]) {
    for (const version of [4, 5] as const) {
      const { client, connack } = await withConnack(t, url, version, { clean: true })
      t.equal(connack.sessionPresent, false, `${url} ${version}`)
      await client.endAsync()
    }
  }
})

for (const version of [4, 5] as const) {
  test(`[MQTT-3.1.2-24] nothing from the client for one and a half keep-alive periods closes the connection (${version === 5 ? '5.0 [MQTT-3.1.2-22], DISCONNECT 0x8D' : '3.1.1'})`, async t => {
    const started = Date.now()
    const c = await rawSession(t, gw.tcpPort, version, { keepalive: 1 })
    await closedBy(c, 20_000)
    t.ok(Date.now() - started >= 1500, 'not before 1.5 s')
    if (version === 5) t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x8D })
  })
}

test('[MQTT-3.1.2-24] a client that sends PINGREQ within its keep-alive stays connected', async t => {
  const c = await rawSession(t, gw.tcpPort, 4, { keepalive: 1 })
  for (let i = 0; i < 4; i++) {
    await new Promise(resolve => setTimeout(resolve, 600))
    c.send({ cmd: 'pingreq' })
    await c.next('pingresp')
  }
  t.notOk(c.socket.destroyed, 'still open after 2.4 s, more than 1.5 keep-alive periods')
})

test('[MQTT-3.1.3-5] client ids of 1 to 23 letters and digits are allowed (mosquitto_pub -i)', async t => {
  for (const id of ['a', '0123456789abcdefghijKLM']) {
    const { code, stderr } = await mosquitto('mosquitto_pub', ['-p', String(gw.tcpPort), '-V', 'mqttv311', '-i', id, '-u', 'dash', '-P', DEV_TOKEN, '-t', 'readings/c1', '-m', '1', '-q', '1'])
    t.equal(code, 0, `${id}: ${stderr}`)
  }
})

test('[MQTT-3.1.3-6] a zero-length client id with clean session 1 is accepted (3.1.1)', async t => {
  const c = await raw(t, gw.tcpPort, 4)
  c.send(connectBytes(4, { clientId: '', clean: true }))
  t.match(await c.next('connack'), { returnCode: 0 })
})

test('[MQTT-3.1.3-8] a zero-length client id with clean session 0 gets CONNACK 0x02 (identifier rejected) and the connection closes (3.1.1)', async t => {
  const c = await raw(t, gw.tcpPort, 4)
  // mqtt-packet will not generate it: a clean one whose Clean Session flag (0x02) is then cleared
  const bytes = connectBytes(4, { clientId: '', clean: true })
  bytes[variableHeader(bytes) + 7]! &= ~0x02
  c.send(bytes)
  t.match(await c.next('connack'), { returnCode: 0x02, sessionPresent: false })
  await closedBy(c)
})

test('5.0 [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] a zero-length client id is given a new one in CONNACK\'s Assigned Client Identifier (MQTT.js over WebSocket and TCP)', async t => {
  const ids: string[] = []
  for (let i = 0; i < 2; i++) {
    const { client, connack } = await withConnack(t, i === 0 ? gw.url : gw.tcpUrl, 5, { clientId: '' })
    t.equal(connack.reasonCode, 0)
    t.type(connack.properties?.assignedClientIdentifier, 'string')
    ids.push(connack.properties!.assignedClientIdentifier!)
    await client.endAsync()
  }
  t.not(ids[0], ids[1], 'each connection gets its own')
})

test('[MQTT-3.1.4-5] 5.0 [MQTT-3.1.4-6] data sent after a refused CONNECT is not processed: a QoS 1 PUBLISH behind a bad password gets no PUBACK', async t => {
  for (const version of [4, 5] as const) {
    const c = await raw(t, gw.tcpPort, version)
    c.send(Buffer.concat([
      connectBytes(version, { password: Buffer.from('not-a-credential') }),
      mqttPacket.generate({ cmd: 'publish', topic: 'readings/refused', payload: Buffer.from('x'), qos: 1, messageId: 7, dup: false, retain: false }, { protocolVersion: version })
    ]))
    await closedBy(c)
    t.same(c.packets.map(p => p.cmd), ['connack'], `${version}: only the refusing CONNACK`)
  }
})

test('[MQTT-3.2.2-4] [MQTT-3.2.2-5] a refused CONNECT gets a non-zero return code with Session Present 0, then the connection closes (mosquitto_pub, MQTT.js)', async t => {
  const refused = await mosquitto('mosquitto_pub', ['-p', String(gw.tcpPort), '-V', 'mqttv311', '-u', 'dash', '-P', 'wrong', '-t', 'readings/c1', '-m', '1'])
  t.not(refused.code, 0, 'mosquitto_pub fails')
  t.match(refused.stderr, /not authori[sz]ed|bad user ?name or password/i, refused.stderr)
  t.equal(await refusalCode(mqtt.connectAsync(gw.url, { protocolVersion: 4, username: 'x', password: 'wrong', reconnectPeriod: 0 })), 0x04)
  t.equal(await refusalCode(mqtt.connectAsync(gw.tcpUrl, { protocolVersion: 5, username: 'x', password: 'wrong', reconnectPeriod: 0 })), 0x86)
  const c = await raw(t, gw.tcpPort, 5)
  c.send(connectBytes(5, { password: Buffer.from('wrong') }))
  t.match(await c.next('connack'), { reasonCode: 0x86, sessionPresent: false })
  await closedBy(c)
})

test('5.0 [MQTT-3.2.2-9] a server without QoS 2 announces Maximum QoS in CONNACK, and what else it does and does not support', async t => {
  const c = await rawSession(t, gw.tcpPort, 5)
  const connack = c.packets[0] as mqttPacket.IConnackPacket
  t.equal(connack.properties?.maximumQoS, 1)
  t.equal(connack.properties?.sharedSubscriptionAvailable, true, 'shared subscriptions (test/mqtt/shared.test.ts)')
  t.equal(connack.properties?.subscriptionIdentifiersAvailable, false)
  t.equal(connack.properties?.topicAliasMaximum, 16, 'client-to-server topic aliases (publish.test.ts)')
})

test('5.0 [MQTT-4.12.0-1] a CONNECT with an authentication method the server does not support gets CONNACK 0x8C or 0x87 and the connection closes', async t => {
  const c = await raw(t, gw.tcpPort, 5)
  c.send(connectBytes(5, { properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('client-first') } }))
  const connack = await c.next('connack') as mqttPacket.IConnackPacket
  t.ok(connack.reasonCode === 0x8C || connack.reasonCode === 0x87, `reason 0x${connack.reasonCode?.toString(16)}`)
  await closedBy(c)
})

test('[MQTT-3.1.2-2] a protocol level the server does not support gets CONNACK 0x01 and the connection closes (3.1.1)', async t => {
  const c = await raw(t, gw.tcpPort, 4)
  const bytes = connectBytes(4)
  bytes[variableHeader(bytes) + 6] = 6
  c.send(bytes)
  await closedBy(c)
  t.match(c.packets, [{ cmd: 'connack', returnCode: 0x01 }])
})

test('[MQTT-3.2.2-4] [MQTT-3.2.2-5] 5.0 [MQTT-3.2.2-9] paho-mqtt (PyPI): a bad password is refused (0x04 on 3.1.1, 0x86 on 5.0, both 0x86 to paho-mqtt) and a good one accepted with Maximum QoS 1 announced', async t => {
  const port = gw.tcpPort
  // paho-mqtt 2 hands 3.1.1's return code 0x04 to its callback as the 5.0 reason code it stands for, 0x86
  t.match((await paho({ transport: 'tcp', port, version: 4, password: 'wrong' }))[0], { event: 'connack', reason: 0x86, sessionPresent: false })
  t.match((await paho({ transport: 'tcp', port, version: 5, password: 'wrong' }))[0], { event: 'connack', reason: 0x86, sessionPresent: false })
  const accepted = (await paho({ transport: 'websockets', port: Number(new URL(gw.url).port), version: 5, password: DEV_TOKEN }))[0]
  t.match(accepted, { event: 'connack', reason: 0, properties: { MaximumQoS: 1 } })
})
