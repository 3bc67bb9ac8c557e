// MQTT over plain TCP (mqtt.tcpPort) with Debian's mosquitto_sub and
// mosquitto_pub and with MQTT.js, on the real gateway, Kafka and Redis: the
// same sessions, mapping and ACL as /mqtt over WebSocket.
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { test, type Test } from 'tap'
import mqtt from 'mqtt'
import type { FastifyInstance } from 'fastify'
import { eventually, readRecords } from '../helpers.ts'
import { DEV_TOKEN, TEMP, HUM, READINGS, deviceToken, connect, granted, refusalCode, gateway as mqttGateway } from './harness.ts'

/** The shipped gateway with its MQTT TCP listener: `url` is mqtt://, `port` the listener's. */
async function gateway (t: Test): Promise<{ app: FastifyInstance, url: string, port: number }> {
  const { app, tcpPort } = await mqttGateway(t, { tcp: true })
  return { app, url: `mqtt://127.0.0.1:${tcpPort!}`, port: tcpPort! }
}

/** Until `closed` settles, at most `ms` (the bound's timer is cleared: left running, it held the file's exit). */
async function closedWithin (closed: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([closed, new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`not closed within ${ms / 1000} s`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

test('mosquitto_sub over TCP receives a record under its MQTT name; mosquitto_pub -q 1 writes one to Kafka', async t => {
  const { app, port } = await gateway(t)
  const lines: string[] = []
  // -C 2: exits after two messages; -W: a bound of its own whatever happens here
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5', '-u', 'dash', '-P', DEV_TOKEN, '-t', 'sensors/+/temp', '-v', '-C', '2', '-W', '60'])
  t.teardown(() => { sub.kill() })
  sub.stdout.on('data', chunk => lines.push(...String(chunk).split('\n').filter(Boolean)))
  let stderr = ''
  let exited: number | null | undefined
  sub.stderr.on('data', chunk => { stderr += String(chunk) })
  sub.on('exit', code => { exited = code })
  await eventually(() => app.sessions.list().some(s => s.route === 'mqtt+tcp' && s.topics().includes(TEMP)), 30_000, 'mosquitto_sub subscribed')
    .catch(err => {
      throw new Error(`${(err as Error).message}; sessions ${JSON.stringify(app.sessions.list().map(s => [s.route, s.topics()]))}; mosquitto_sub exit ${exited}, stderr: ${stderr.slice(0, 500)}`)
    })
  await app.kafka.produce(TEMP, { key: 'd2', value: Buffer.from('19.0') })
  await app.kafka.produce(HUM, { key: 'd2', value: Buffer.from('55') })
  await app.kafka.produce(TEMP, { key: 'd1', value: Buffer.from('21.5') })
  await eventually(() => lines.length >= 2, 30_000, 'mosquitto_sub printed two messages')
  t.same(lines, ['sensors/d2/temp 19.0', 'sensors/d1/temp 21.5'])

  const device = `d${randomBytes(3).toString('hex')}`
  const code = await new Promise<number | null>(resolve => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-u', 'dash', '-P', DEV_TOKEN, '-q', '1', '-t', `readings/${device}`, '-m', '7.5'], { timeout: 30_000 }, err => resolve(err ? (err as { code?: number }).code ?? 1 : 0))
  })
  t.equal(code, 0, 'mosquitto_pub got its PUBACK and exited 0')
  const [record] = await readRecords(t, READINGS, 1)
  t.equal(record?.key?.toString(), device)
  t.equal(record?.value?.toString(), '7.5')
})

test('over TCP a bad password gets CONNACK 0x86, and a device is refused another device\'s topics with 0x87', async t => {
  const { url } = await gateway(t)
  t.equal(await refusalCode(mqtt.connectAsync(url, { protocolVersion: 5, username: 'x', password: 'wrong', reconnectPeriod: 0 })), 0x86)
  const device = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1') })
  t.same(await granted(device, ['devices/d1/#', 'devices/d2/#']), [0, 0x87])
  t.equal(await refusalCode(device.publishAsync('devices/d2/state', 'on', { qos: 1 })), 0x87)
  t.equal(await refusalCode(device.publishAsync('devices/d1/state', 'on', { qos: 1 })), undefined)
})

/** A raw MQTT connection over TCP: what the server sends, parsed, and when it closed. */
async function raw (port: number, version: 4 | 5): Promise<{ socket: Socket, packets: Packet[], closed: Promise<void> }> {
  const socket = netConnect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const packets: Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: version })
  parser.on('packet', p => packets.push(p))
  socket.on('data', chunk => parser.parse(chunk))
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  return { socket, packets, closed }
}

test('CONNACK announces what this slice serves, and a persistent session of a client id never seen is new: Session Present 0, its expiry granted', async t => {
  const { port } = await gateway(t)
  const c = await raw(port, 5)
  t.teardown(() => c.socket.destroy())
  c.socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'keeper', clean: false, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN), properties: { sessionExpiryInterval: 3600 } }, { protocolVersion: 5 }))
  await eventually(() => c.packets.length > 0, 20_000, 'a CONNACK')
  t.match(c.packets[0], {
    cmd: 'connack',
    reasonCode: 0,
    sessionPresent: false,
    properties: { sessionExpiryInterval: 3600, maximumQoS: 1, retainAvailable: true, maximumPacketSize: 1024 * 1024, topicAliasMaximum: 16, wildcardSubscriptionAvailable: true, subscriptionIdentifiersAvailable: false, sharedSubscriptionAvailable: true }
  })
})

test('a CONNECT whose will the credential may not publish gets CONNACK 0x87, one no product maps 0x90 (MQTT 5 3.2.2.2), then the connection closes', async t => {
  const { port } = await gateway(t)
  // the dev token may read humidity, not publish it
  for (const [topic, code] of [['sensors/d1/hum', 0x87], ['nowhere/d1', 0x90]] as const) {
    const c = await raw(port, 5)
    t.teardown(() => c.socket.destroy())
    c.socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'w', clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN), will: { topic, payload: Buffer.from('gone'), qos: 0, retain: false } }, { protocolVersion: 5 }))
    await c.closed
    t.match(c.packets, [{ cmd: 'connack', reasonCode: code }], topic)
  }
})

test('nothing from the client for 1.5 times its keep-alive closes the connection, with DISCONNECT 0x8D on 5.0 [MQTT-3.1.2-24]', async t => {
  const { port } = await gateway(t)
  const c = await raw(port, 5)
  t.teardown(() => c.socket.destroy())
  const started = Date.now()
  c.socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'quiet', clean: true, keepalive: 1, username: 'x', password: Buffer.from(DEV_TOKEN) }, { protocolVersion: 5 }))
  // a bound on waiting, not a timing assertion: 1.5 s plus the check's period, on a loaded machine
  await closedWithin(c.closed, 20_000)
  t.ok(Date.now() - started >= 1500, 'not before 1.5 keep-alive periods')
  t.match(c.packets, [{ cmd: 'connack', reasonCode: 0 }, { cmd: 'disconnect', reasonCode: 0x8D }])
})

test('a packet past the 1 MiB maximum, spread over many TCP writes, closes the connection with DISCONNECT 0x95', async t => {
  const { port } = await gateway(t)
  const c = await raw(port, 5)
  t.teardown(() => c.socket.destroy())
  c.socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'big', clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN) }, { protocolVersion: 5 }))
  await eventually(() => c.packets.length > 0, 20_000, 'a CONNACK')
  const big = mqttPacket.generate({ cmd: 'publish', topic: 'sensors/d1/temp', payload: Buffer.alloc(1024 * 1024 + 10), qos: 0, dup: false, retain: false }, { protocolVersion: 5 })
  for (let at = 0; at < big.length && !c.socket.destroyed; at += 64 * 1024) c.socket.write(big.subarray(at, at + 64 * 1024))
  await closedWithin(c.closed, 20_000)
  t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x95 })
})
