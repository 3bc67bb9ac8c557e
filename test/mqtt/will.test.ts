// MQTT will messages (plugins/mqtt/src/will.ts) on the real gateway, Kafka
// and Redis: published through the policy's mapping when a connection ends
// without a normal DISCONNECT (the client's socket destroyed, a keep-alive
// timeout, mosquitto_sub killed), not after a normal DISCONNECT, after one
// with reason 0x04, held by the Will Delay Interval; MQTT.js over WebSocket,
// mqtt-packet and Debian's mosquitto_sub over TCP.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import mqttPacket from 'mqtt-packet'
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { eventually } from '../helpers.ts'
import { DEV_TOKEN, DEVICES, connect, deviceToken, gateway, readAll } from './harness.ts'

interface Seen { topic: string, payload: string, retain: boolean, at: number }

function received (client: MqttClient): Seen[] {
  const seen: Seen[] = []
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain, at: Date.now() }))
  return seen
}

function id (prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`
}

/** A watcher of `topic` with the device d1's token (it may read devices/d1/#), and what it received. */
async function watch (t: Test, url: string, topic: string): Promise<{ watcher: MqttClient, seen: Seen[] }> {
  const watcher = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1'), clientId: id('watcher') })
  const seen = received(watcher)
  await watcher.subscribeAsync(topic)
  return { watcher, seen }
}

/** Until no session of `clientId` is left on the gateway (its close, and so its will, has been handled). */
async function gone (app: FastifyInstance, clientId: string): Promise<void> {
  await eventually(() => !app.sessions.list().some(s => (s as unknown as { clientId?: string }).clientId === clientId), 20_000, `${clientId} gone`)
}

/**
 * A marker published after a connection ended: a will written at its end is in the same Kafka partition
 * before it, so what arrived before the marker is everything the end published.
 */
async function beforeMarker (watcher: MqttClient, seen: Seen[], topic: string): Promise<Seen[]> {
  const mark = id('mark')
  await watcher.publishAsync(topic, mark, { qos: 1 })
  await eventually(() => seen.some(s => s.payload === mark), 30_000, 'the marker')
  return seen.slice(0, seen.findIndex(s => s.payload === mark))
}

test('[MQTT-3.1.2-8] the will is published when the connection ends without a DISCONNECT (its socket destroyed), on 5.0 and 3.1.1', async t => {
  const { url } = await gateway(t)
  const status = `devices/d1/${id('status')}`
  const { seen } = await watch(t, url, status)
  for (const protocolVersion of [5, 4] as const) {
    const device = await connect(t, url, { protocolVersion, password: deviceToken('d1'), clientId: id('dev'), will: { topic: status, payload: Buffer.from(`offline ${protocolVersion}`), qos: 1, retain: false } })
    device.stream.destroy()
    await eventually(() => seen.some(s => s.payload === `offline ${protocolVersion}`), 30_000, `the will of the ${protocolVersion} client`)
    t.match(seen.find(s => s.payload === `offline ${protocolVersion}`), { topic: status, retain: false }, `MQTT ${protocolVersion}`)
  }
})

test('[MQTT-3.1.2-10] a normal DISCONNECT deletes the will: nothing is published; MQTT 5 DISCONNECT 0x04 (disconnect with will message) publishes it', async t => {
  const { app, url } = await gateway(t)
  const status = `devices/d1/${id('status')}`
  const { watcher, seen } = await watch(t, url, status)

  const normal = id('normal')
  const polite = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1'), clientId: normal, will: { topic: status, payload: Buffer.from('should not'), qos: 0, retain: false } })
  await polite.endAsync()
  await gone(app, normal)
  t.same(await beforeMarker(watcher, seen, status), [], 'no will after DISCONNECT 0x00')

  const withWill = id('with-will')
  const leaving = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1'), clientId: withWill, will: { topic: status, payload: Buffer.from('left with will'), qos: 0, retain: false } })
  await new Promise<void>(resolve => leaving.end(false, { reasonCode: 0x04 }, () => resolve()))
  await eventually(() => seen.some(s => s.payload === 'left with will'), 30_000, 'the will after DISCONNECT 0x04')
  t.pass('DISCONNECT 0x04: published')
})

test('a keep-alive timeout (the server closes the connection, [MQTT-3.1.2-24]) publishes the will', async t => {
  const { app, url, tcpPort } = await gateway(t, { tcp: true })
  const status = `devices/d1/${id('status')}`
  const { seen } = await watch(t, url, status)
  const socket = netConnect(tcpPort!, '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  await new Promise<void>(resolve => socket.once('connect', () => resolve()))
  const clientId = id('quiet')
  // keep-alive 1 s and then silence: the gateway closes after 1.5 s (DISCONNECT 0x8D)
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId, clean: true, keepalive: 1, username: 'x', password: Buffer.from(deviceToken('d1')), will: { topic: status, payload: Buffer.from('timed out'), qos: 1, retain: false } }, { protocolVersion: 5 }))
  await eventually(() => seen.some(s => s.payload === 'timed out'), 30_000, 'the will after the keep-alive timeout')
  await gone(app, clientId)
  t.pass('published')
})

test('a will with retain 1 is published as a retained message [MQTT-3.1.2-17]: a later subscriber gets it with RETAIN 1', async t => {
  const { url } = await gateway(t)
  const status = `devices/d1/${id('status')}`
  const device = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1'), clientId: id('dev'), will: { topic: status, payload: Buffer.from('gone for good'), qos: 1, retain: true } })
  const { seen } = await watch(t, url, status)
  device.stream.destroy()
  await eventually(() => seen.length > 0, 30_000, 'the will, live')
  const late = await watch(t, url, status)
  await eventually(() => late.seen.length > 0, 30_000, 'the will, retained')
  t.match(late.seen[0], { topic: status, payload: 'gone for good', retain: true })
})

test('MQTT 5 3.1.3.2.2: the will waits its Will Delay Interval or the end of the session (the Session Expiry CONNACK announced), whichever comes first', async t => {
  const { url } = await gateway(t)
  const status = `devices/d1/${id('status')}`
  const { seen } = await watch(t, url, status)
  const options: IClientOptions = {
    protocolVersion: 5,
    username: 'any',
    password: deviceToken('d1'),
    clientId: id('delayed'),
    clean: false,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 60 },
    will: { topic: status, payload: Buffer.from('late'), qos: 0, retain: false, properties: { willDelayInterval: 3 } }
  }
  const device = mqtt.connect(url, options)
  t.teardown(() => device.end(true))
  const connack = await new Promise<{ properties?: { sessionExpiryInterval?: number } }>((resolve, reject) => {
    device.once('connect', resolve)
    device.once('error', reject)
  })
  // the server's announcement wins over the CONNECT's (3.2.2.3.2); absent, the CONNECT's applies
  const expiry = connack.properties?.sessionExpiryInterval ?? 60
  const expectedMs = Math.min(3, expiry) * 1000
  const ended = Date.now()
  device.stream.destroy()
  await eventually(() => seen.some(s => s.payload === 'late'), 30_000, 'the delayed will')
  const waited = seen.find(s => s.payload === 'late')!.at - ended
  t.ok(waited >= expectedMs - 100, `published after ${waited} ms, not before the ${expectedMs} ms due (session expiry announced: ${expiry} s)`)
})

/** An MQTT.js client and the CONNACK it got. */
async function connectWithConnack (t: Test, url: string, options: IClientOptions): Promise<{ client: MqttClient, expiry: number | undefined }> {
  const client = mqtt.connect(url, { username: 'any', reconnectPeriod: 0, ...options })
  t.teardown(() => client.end(true))
  const connack = await new Promise<{ properties?: { sessionExpiryInterval?: number } }>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  return { client, expiry: connack.properties?.sessionExpiryInterval }
}

test('[MQTT-3.1.3-9] a new connection of the client id within the Will Delay Interval (the old one already gone) cancels the will', async t => {
  const { app, url } = await gateway(t)
  const status = `devices/d1/${id('status')}`
  const { watcher, seen } = await watch(t, url, status)
  const clientId = id('back')
  const options: IClientOptions = {
    protocolVersion: 5,
    password: deviceToken('d1'),
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 60 },
    will: { topic: status, payload: Buffer.from('should not'), qos: 0, retain: false, properties: { willDelayInterval: 3 } }
  }
  const first = await connectWithConnack(t, url, options)
  t.equal(first.expiry, 60, 'the session outlives the connection: the delay applies')
  first.client.stream.destroy()
  await gone(app, clientId)
  const second = await connectWithConnack(t, url, { ...options, will: undefined })
  // past the delay of the first connection's will
  await new Promise(resolve => setTimeout(resolve, 4000))
  t.same(await beforeMarker(watcher, seen, status), [], 'no will')
  await second.client.endAsync()
})

test('MQTT 5 3.1.3.2.2: a session that ends before the Will Delay Interval publishes the will then (session expiry 1 s, will delay 10 s)', async t => {
  const { url } = await gateway(t)
  const status = `devices/d1/${id('status')}`
  const { seen } = await watch(t, url, status)
  const { client, expiry } = await connectWithConnack(t, url, {
    protocolVersion: 5,
    password: deviceToken('d1'),
    clientId: id('short'),
    clean: false,
    properties: { sessionExpiryInterval: 1 },
    will: { topic: status, payload: Buffer.from('session over'), qos: 0, retain: false, properties: { willDelayInterval: 10 } }
  })
  t.equal(expiry, 1)
  const ended = Date.now()
  client.stream.destroy()
  await eventually(() => seen.some(s => s.payload === 'session over'), 30_000, 'the will at the session\'s end')
  const waited = seen.find(s => s.payload === 'session over')!.at - ended
  t.ok(waited >= 900 && waited < 8000, `published after ${waited} ms: the session's 1 s, not the will's 10 s`)
})

test('a node going away (drain, DISCONNECT 0x8B) publishes the wills of its live connections that have no delay, drops the delayed ones (their clients reconnect elsewhere), and publishes the wills already waiting out a delay', async t => {
  const { app, url } = await gateway(t)
  const kinds = { now: id('now'), held: id('held'), waiting: id('waiting') }
  const clientIds = { now: id('now'), held: id('held'), waiting: id('waiting') }
  const device = (kind: keyof typeof kinds, delay: number) => connectWithConnack(t, url, {
    protocolVersion: 5,
    password: deviceToken('d1'),
    clientId: clientIds[kind],
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    will: { topic: `devices/d1/${kinds[kind]}`, payload: Buffer.from(kind), qos: 0, retain: false, properties: { willDelayInterval: delay } }
  })
  await device('now', 0)
  await device('held', 30)
  const waiting = await device('waiting', 30)
  waiting.client.stream.destroy()
  // its session closed: its will waits out its 30 s
  await gone(app, clientIds.waiting)
  await app.close()
  const written = (await readAll(`${DEVICES}.d1`)).map(r => r.key?.toString()).filter(k => k !== undefined && Object.values(kinds).includes(k))
  t.same(written.sort(), [kinds.now, kinds.waiting].sort(), 'the live one without delay and the waiting one; not the live one with a delay')
})

test('over TCP, mosquitto_sub killed (no DISCONNECT) has its --will-payload published; one that exits after its message (DISCONNECT) does not', async t => {
  const { app, url, tcpPort } = await gateway(t, { tcp: true })
  const device = `d${randomBytes(4).toString('hex')}`
  const willTopic = `sensors/${device}/temp`
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const seen = received(dash)
  await dash.subscribeAsync(willTopic)
  const common = ['-h', '127.0.0.1', '-p', String(tcpPort), '-u', 'dash', '-P', DEV_TOKEN, '-V', 'mqttv311', '-t', willTopic, '--will-topic', willTopic]

  // exits after one message, with a DISCONNECT: no will
  const polite = spawn('mosquitto_sub', [...common, '-i', id('polite'), '--will-payload', 'polite', '-C', '1', '-W', '30'])
  t.teardown(() => { polite.kill() })
  await eventually(() => app.sessions.list().filter(s => s.route === 'mqtt+tcp').length === 1, 30_000, 'the polite mosquitto_sub')
  await eventually(async () => { await dash.publishAsync(willTopic, 'one', { qos: 1 }); return polite.exitCode !== null }, 30_000, 'the polite mosquitto_sub exited')
  await eventually(() => app.sessions.list().filter(s => s.route === 'mqtt+tcp').length === 0, 30_000, 'its session gone')

  const killed = spawn('mosquitto_sub', [...common, '-i', id('killed'), '--will-payload', 'killed'])
  t.teardown(() => { killed.kill('SIGKILL') })
  await eventually(() => app.sessions.list().filter(s => s.route === 'mqtt+tcp').length === 1, 30_000, 'the second mosquitto_sub')
  killed.kill('SIGKILL')
  await eventually(() => seen.some(s => s.payload === 'killed'), 30_000, 'the will of the killed one')
  t.notOk(seen.some(s => s.payload === 'polite'), 'no will of the one that disconnected')
})
