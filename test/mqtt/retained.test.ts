// MQTT retained messages (plugins/mqtt/src/retained.ts) on the real gateway,
// Kafka and Redis: stored in a compacted Kafka topic keyed by MQTT topic name,
// sent on subscribe with RETAIN 1, deleted by an empty payload, read again by
// a second gateway, under the same ACL as live records; MQTT.js over
// WebSocket and Debian's mosquitto_pub / mosquitto_sub over TCP.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet'
import { test, type Test } from 'tap'
import mqtt, { type MqttClient, type IClientSubscribeOptions } from 'mqtt'
import { eventually, readRecords, unique } from '../helpers.ts'
import { DEV_TOKEN, RETAINED, TEMP, connect, deviceToken, gateway, granted, readAll, refusalCode } from './harness.ts'

interface Seen { topic: string, payload: string, retain: boolean }

/** What a client receives, with each PUBLISH's RETAIN flag. */
function received (client: MqttClient): Seen[] {
  const seen: Seen[] = []
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain }))
  return seen
}

/** A device name of the test's own: retained messages outlive the test in the file's retained topic. */
function device (): string {
  return `d${randomBytes(4).toString('hex')}`
}

/**
 * The gateway at `url` once its retained set is read from Kafka: a SUBSCRIBE made earlier gets its retained
 * messages when the set is read (up to 5 s later), after live ones published meanwhile, which would fool the
 * marker of subscribeThenMark. A probe retained message comes back only once the set is read.
 */
async function ready (t: Test, gw: { url: string }): Promise<string> {
  const probe = `sensors/${device()}/temp`
  const dash = await connect(t, gw.url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(probe, 'probe', { qos: 1, retain: true })
  const reader = await connect(t, gw.url, { protocolVersion: 5, password: DEV_TOKEN })
  const seen = received(reader)
  await reader.subscribeAsync(probe)
  await eventually(() => seen.length > 0, 30_000, 'the probe retained message')
  await Promise.all([dash.endAsync(), reader.endAsync()])
  return gw.url
}

/**
 * Subscribes `filter`, then publishes a live marker on `marker` (a topic the filter matches) and waits for
 * it: whatever retained message the SUBSCRIBE brought came before the marker, which bounds the wait for
 * one that must not come.
 */
async function subscribeThenMark (t: Test, url: string, client: MqttClient, seen: Seen[], filter: string, marker: string, options: Partial<IClientSubscribeOptions> = {}): Promise<Seen[]> {
  await client.subscribeAsync(filter, { qos: 0, ...options })
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const mark = `mark-${randomBytes(3).toString('hex')}`
  await dash.publishAsync(marker, mark, { qos: 1 })
  await eventually(() => seen.some(s => s.payload === mark), 30_000, `the marker on ${marker}`)
  return seen.slice(0, seen.findIndex(s => s.payload === mark))
}

test('[MQTT-3.3.1-5] a retained PUBLISH goes to its Kafka topic and is kept: a later subscriber gets it with RETAIN 1 (3.1.1 [MQTT-3.3.1-8]), live ones with RETAIN 0 ([MQTT-3.3.1-12], 3.1.1 [MQTT-3.3.1-9])', async t => {
  const url = await ready(t, await gateway(t))
  const d = device()
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const ack = await dash.publishAsync(`sensors/${d}/temp`, '20.5', { qos: 1, retain: true })
  t.equal((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0, 0, 'PUBACK 0x00 once Kafka holds both records')
  const records = await readRecords(t, TEMP, 1).then(all => all.filter(r => r.key?.toString() === d))
  t.same(records.map(r => r.value?.toString()), ['20.5'], 'the record of its mapped Kafka topic, as a plain PUBLISH writes it')

  for (const protocolVersion of [5, 4] as const) {
    const reader = await connect(t, url, { protocolVersion, password: DEV_TOKEN })
    const seen = received(reader)
    await reader.subscribeAsync(`sensors/${d}/temp`)
    await eventually(() => seen.length > 0, 30_000, 'the retained message')
    t.same(seen[0], { topic: `sensors/${d}/temp`, payload: '20.5', retain: true }, `MQTT ${protocolVersion}: the retained message, RETAIN 1`)
    await dash.publishAsync(`sensors/${d}/temp`, '20.6', { qos: 1 })
    await eventually(() => seen.length > 1, 30_000, 'the live message')
    t.same(seen[1], { topic: `sensors/${d}/temp`, payload: '20.6', retain: false }, `MQTT ${protocolVersion}: a live one, RETAIN 0`)
  }
})

test('[MQTT-3.3.1-6] [MQTT-3.3.1-7] a retained PUBLISH with an empty payload deletes the retained message (a Kafka tombstone) and is not kept itself', async t => {
  const url = await ready(t, await gateway(t))
  const d = device()
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(`sensors/${d}/temp`, '18.0', { qos: 1, retain: true })
  await dash.publishAsync(`sensors/${d}/temp`, '', { qos: 1, retain: true })
  const reader = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const before = await subscribeThenMark(t, url, reader, received(reader), `sensors/${d}/temp`, `sensors/${d}/temp`)
  t.same(before, [], 'no retained message after the empty one')

  // in Kafka: the message, then a tombstone under the same MQTT topic name
  const kept = (await readAll(RETAINED)).filter(r => r.key?.toString() === `sensors/${d}/temp`)
  t.same(kept.map(r => r.value?.toString() ?? null), ['18.0', null], 'a record, then a tombstone (value null) for compaction')
})

test('Retain Handling on 5.0: 0 sends the retained messages at every subscribe [MQTT-3.3.1-9], 1 only if the subscription is new [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11]', async t => {
  const url = await ready(t, await gateway(t))
  const d = device()
  const name = `sensors/${d}/temp`
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(name, '30.0', { qos: 1, retain: true })
  const retainedOf = (seen: Seen[]) => seen.filter(s => s.retain).map(s => s.payload)

  const never = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  t.same(retainedOf(await subscribeThenMark(t, url, never, received(never), name, name, { rh: 2 })), [], 'rh 2: none')

  const once = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const onceSeen = received(once)
  t.same(retainedOf(await subscribeThenMark(t, url, once, onceSeen, name, name, { rh: 1 })), ['30.0'], 'rh 1, a new subscription: sent')
  onceSeen.length = 0
  t.same(retainedOf(await subscribeThenMark(t, url, once, onceSeen, name, name, { rh: 1 })), [], 'rh 1, the same filter again: not sent')

  const every = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const everySeen = received(every)
  t.same(retainedOf(await subscribeThenMark(t, url, every, everySeen, name, name, { rh: 0 })), ['30.0'], 'rh 0: sent')
  everySeen.length = 0
  t.same(retainedOf(await subscribeThenMark(t, url, every, everySeen, name, name, { rh: 0 })), ['30.0'], 'rh 0, the same filter again: sent again')
})

test('5.0 Retain As Published: a live message published retained keeps RETAIN 1 through a rap subscription [MQTT-3.3.1-13], RETAIN 0 through the others and on 3.1.1 [MQTT-3.3.1-12], at QoS 0 and 1, and in a persistent session that resumes', async t => {
  const url = await ready(t, await gateway(t))
  const d = device()
  const name = `sensors/${d}/temp`
  // rh 2: no retained message at subscribe, so every message seen below is a live delivery
  const subscriber = async (protocolVersion: 4 | 5, options: Partial<IClientSubscribeOptions>) => {
    const client = await connect(t, url, { protocolVersion, password: DEV_TOKEN })
    const seen = received(client)
    await client.subscribeAsync(name, protocolVersion === 5 ? { rh: 2, ...options } : options)
    return seen
  }
  const rap0 = await subscriber(5, { qos: 0, rap: true })
  const rap1 = await subscriber(5, { qos: 1, rap: true })
  const plain = await subscriber(5, { qos: 1, rap: false })
  const v311 = await subscriber(4, { qos: 1 })
  // a persistent session with rap, away while both are published: its subscription's options are stored with it
  const keeperOptions = { protocolVersion: 5 as const, password: DEV_TOKEN, clientId: `rap-${d}`, clean: false, properties: { sessionExpiryInterval: 300 } }
  const keeper = await connect(t, url, keeperOptions)
  await keeper.subscribeAsync(name, { qos: 1, rap: true, rh: 2 })
  await keeper.endAsync()

  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(name, 'kept', { qos: 1, retain: true })
  await dash.publishAsync(name, 'plain', { qos: 1 })
  await eventually(() => [rap0, rap1, plain, v311].every(seen => seen.length >= 2), 30_000, 'both messages on every subscriber')
  const asPublished = [{ topic: name, payload: 'kept', retain: true }, { topic: name, payload: 'plain', retain: false }]
  const cleared = [{ topic: name, payload: 'kept', retain: false }, { topic: name, payload: 'plain', retain: false }]
  t.same(rap0, asPublished, 'rap, QoS 0: RETAIN as published')
  t.same(rap1, asPublished, 'rap, QoS 1: RETAIN as published')
  t.same(plain, cleared, 'without rap: RETAIN 0')
  t.same(v311, cleared, '3.1.1: RETAIN 0')

  // listening before the CONNACK: the session's messages come right after it
  const back = mqtt.connect(url, { reconnectPeriod: 0, username: 'any', ...keeperOptions })
  t.teardown(() => back.endAsync(true))
  const resumed = received(back)
  await eventually(() => resumed.length >= 2, 30_000, 'the resumed session\'s messages')
  t.same(resumed, asPublished, 'the resumed session: RETAIN as published')
})

test('[MQTT-3.8.4-8] a retained message goes at the lower of its QoS and the subscription\'s: QoS 1 to a QoS 1 subscription (PUBACKed), QoS 0 otherwise, on 5.0 and 3.1.1', async t => {
  const url = await ready(t, await gateway(t))
  const [d1, d2] = [device(), device()]
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  // the QoS 0 one first: it has no PUBACK, and the retained topic's records are acknowledged in order, so
  // once the QoS 1 one is PUBACKed both are kept
  await dash.publishAsync(`sensors/${d2}/temp`, 'at qos 0', { qos: 0, retain: true })
  await dash.publishAsync(`sensors/${d1}/temp`, 'at qos 1', { qos: 1, retain: true })
  for (const protocolVersion of [5, 4] as const) {
    for (const granted of [1, 0] as const) {
      const reader = await connect(t, url, { protocolVersion, password: DEV_TOKEN })
      const seen: Array<{ payload: string, qos: number, retain: boolean }> = []
      const acked: number[] = []
      reader.on('message', (_topic, payload, packet) => seen.push({ payload: payload.toString(), qos: packet.qos, retain: packet.retain }))
      reader.on('packetsend', packet => { if (packet.cmd === 'puback') acked.push(packet.messageId!) })
      await reader.subscribeAsync([`sensors/${d1}/temp`, `sensors/${d2}/temp`], { qos: granted })
      await eventually(() => seen.length === 2, 30_000, 'both retained messages')
      const byPayload = Object.fromEntries(seen.map(s => [s.payload, s]))
      const what = `MQTT ${protocolVersion}, subscription QoS ${granted}`
      t.same(byPayload['at qos 1'], { payload: 'at qos 1', qos: granted, retain: true }, `${what}: the QoS 1 message at QoS ${granted}`)
      t.same(byPayload['at qos 0'], { payload: 'at qos 0', qos: 0, retain: true }, `${what}: the QoS 0 message at QoS 0`)
      t.equal(acked.length, granted, `${what}: ${granted} PUBACK sent`)
      await reader.endAsync()
    }
  }
})

test('ACL applies to retained messages as to live ones: a wildcard brings only the retained messages of the Kafka topics the credential may subscribe', async t => {
  const gw = await gateway(t)
  const { app } = gw
  const url = await ready(t, gw)
  const d = device()
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(`sensors/${d}/temp`, '11.0', { qos: 1, retain: true })
  // READINGS: the dashboard publishes it, API keys may not read it
  await dash.publishAsync(`readings/${d}`, '12.0', { qos: 1, retain: true })

  const { key } = await app.credentials.apiKeys!.issue({ owner: 'dash', product: 'iot', plan: 'basic', expiresAt: Date.now() + 600_000 })
  const reader = await connect(t, url, { protocolVersion: 5, password: key })
  const seen = received(reader)
  const before = await subscribeThenMark(t, url, reader, seen, '#', `sensors/${d}/temp`)
  t.ok(before.some(s => s.topic === `sensors/${d}/temp` && s.payload === '11.0' && s.retain), 'the temperature it may read')
  t.notOk(before.some(s => s.topic.startsWith('readings/')), 'no retained reading: the API key may not subscribe that Kafka topic')

  // a device: its own retained state, never another device's (SUBACK 0x87 and nothing sent)
  const d1 = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1') })
  await d1.publishAsync('devices/d1/state', 'on', { qos: 1, retain: true })
  const d2 = await connect(t, url, { protocolVersion: 5, password: deviceToken('d2') })
  const d2Seen = received(d2)
  t.same(await granted(d2, ['devices/d1/state']), [0x87])
  await d1.publishAsync('devices/d1/state', 'on', { qos: 1, retain: true })
  const again = await connect(t, url, { protocolVersion: 5, password: deviceToken('d1') })
  const againSeen = received(again)
  await again.subscribeAsync('devices/d1/state')
  await eventually(() => againSeen.length > 0, 30_000, 'd1 its own retained state')
  t.same(againSeen[0], { topic: 'devices/d1/state', payload: 'on', retain: true })
  t.same(d2Seen, [], 'd2 got nothing of d1')
})

test('retained messages survive the gateway: a second gateway reads them from the Kafka topic', async t => {
  const first = await gateway(t)
  const d = device()
  const dash = await connect(t, first.url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(`sensors/${d}/temp`, '15.5', { qos: 1, retain: true })
  await dash.endAsync()
  await first.app.close()

  const second = await gateway(t)
  const reader = await connect(t, second.url, { protocolVersion: 5, password: DEV_TOKEN })
  const seen = received(reader)
  await reader.subscribeAsync('sensors/+/temp')
  await eventually(() => seen.some(s => s.topic === `sensors/${d}/temp`), 30_000, 'the retained message on the second gateway')
  t.same(seen.find(s => s.topic === `sensors/${d}/temp`), { topic: `sensors/${d}/temp`, payload: '15.5', retain: true })
})

test('the retained set is bounded: a new topic past retainedMaxBytes gets PUBACK 0x97 and nothing is written; replacing or deleting a kept one still works', async t => {
  // a topic of its own, so that only this test's messages count against the bound
  const retainedTopic = unique('mqtt-retained-bound')
  // 1,000 payload bytes + name + 256 of overhead each: one fits in 1,500, two do not
  const { url } = await gateway(t, { retainedTopic, retainedMaxBytes: 1500 })
  const [a, b] = [device(), device()]
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const big = 'x'.repeat(1000)
  t.equal(await refusalCode(dash.publishAsync(`sensors/${a}/temp`, big, { qos: 1, retain: true })), undefined, 'the first fits')
  t.equal(await refusalCode(dash.publishAsync(`sensors/${b}/temp`, big, { qos: 1, retain: true })), 0x97, 'a second topic: quota exceeded')
  t.equal(await refusalCode(dash.publishAsync(`sensors/${a}/temp`, 'small', { qos: 1, retain: true })), undefined, 'replacing the kept one')
  t.equal(await refusalCode(dash.publishAsync(`sensors/${a}/temp`, '', { qos: 1, retain: true })), undefined, 'deleting it')
  t.equal(await refusalCode(dash.publishAsync(`sensors/${b}/temp`, big, { qos: 1, retain: true })), undefined, 'then the other fits')

  const records = await readAll(retainedTopic)
  t.same(records.map(r => [r.key?.toString(), r.value === null ? null : r.value.length]), [
    [`sensors/${a}/temp`, 1000], [`sensors/${a}/temp`, 5], [`sensors/${a}/temp`, null], [`sensors/${b}/temp`, 1000]
  ], 'the refused one never reached the retained topic')
})

test('a subscription matching more retained messages than the socket queue holds gets every one, the sender waiting for a client that stops reading', async t => {
  const { url, tcpPort } = await gateway(t, { tcp: true, retainedTopic: unique('mqtt-retained-many') })
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  // 90 x 150 KiB: 13.5 MB, past the 256 KiB queue bound and what loopback's kernel buffers take (a few MB)
  // from a reader that stops; 90 publishes stay inside the plan's 100 a second
  const payload = 'r'.repeat(150 * 1024)
  const devices = Array.from({ length: 90 }, () => device())
  await Promise.all(devices.map(d => dash.publishAsync(`sensors/${d}/temp`, payload, { qos: 1, retain: true })))

  // a raw TCP client, so that not reading is not reading (MQTT.js's stream keeps taking bytes)
  const socket = netConnect(tcpPort!, '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  await new Promise<void>(resolve => socket.once('connect', () => resolve()))
  const packets: Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', p => packets.push(p))
  socket.on('data', chunk => parser.parse(chunk))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'many', clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN) }, { protocolVersion: 5 }))
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sensors/+/temp', qos: 0 }] }, { protocolVersion: 5 }))
  await eventually(() => packets.some(p => p.cmd === 'suback'), 30_000, 'the SUBACK')
  socket.pause()
  await new Promise(resolve => setTimeout(resolve, 1500))
  socket.resume()
  const retained = () => packets.filter((p): p is IPublishPacket => p.cmd === 'publish' && p.retain)
  await eventually(() => retained().length >= devices.length, 60_000, `${devices.length} retained messages (${retained().length})`)
  t.same(new Set(retained().map(p => p.topic)), new Set(devices.map(d => `sensors/${d}/temp`)), 'every one')
  t.equal(retained().length, devices.length, 'once')
  t.ok(retained().every(p => p.payload.length === payload.length), 'whole')
  t.notOk(packets.some(p => p.cmd === 'disconnect'), 'and the connection stands')
})

/** Runs a mosquitto client to its end: exit code and stdout. */
function run (command: string, args: string[]): Promise<{ code: number, stdout: string }> {
  return new Promise(resolve => {
    execFile(command, args, { timeout: 40_000 }, (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }))
  })
}

test('over TCP, mosquitto_pub -r keeps a message that mosquitto_sub prints with its retain flag; mosquitto_pub -r -n deletes it', async t => {
  const { tcpPort } = await gateway(t, { tcp: true })
  const d = device()
  const common = ['-h', '127.0.0.1', '-p', String(tcpPort), '-u', 'dash', '-P', DEV_TOKEN]
  const pub = await run('mosquitto_pub', [...common, '-V', 'mqttv311', '-q', '1', '-r', '-t', `sensors/${d}/temp`, '-m', '22.0'])
  t.equal(pub.code, 0, 'mosquitto_pub got its PUBACK')
  // -F '%r %t %p': the retain flag, topic and payload; -C 1: exits after one message
  const sub = await run('mosquitto_sub', [...common, '-V', 'mqttv5', '-t', `sensors/${d}/temp`, '-F', '%r %t %p', '-C', '1', '-W', '30'])
  t.equal(sub.stdout.trim(), `1 sensors/${d}/temp 22.0`)

  const del = await run('mosquitto_pub', [...common, '-V', 'mqttv5', '-q', '1', '-r', '-n', '-t', `sensors/${d}/temp`])
  t.equal(del.code, 0, 'the empty retained message got its PUBACK')
  // --retained-only: prints retained messages only and exits at the first live one, or after -W when none came
  const none = await run('mosquitto_sub', [...common, '-V', 'mqttv5', '-t', `sensors/${d}/temp`, '-F', '%r %t %p', '--retained-only', '-W', '3'])
  t.equal(none.stdout.trim(), '', 'nothing retained any more')
})
