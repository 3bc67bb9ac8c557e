// The envelope MQTT sockets take the hub's records in, and the Outbox that
// delivers them at QoS 0 and 1 (plugins/mqtt/src/qos1.ts), without a socket.
import { test } from 'tap'
import mqttPacket, { type IPublishPacket } from 'mqtt-packet'
import type { ConsumedRecord } from '@sluice/kafka'
import { AS_PUBLISHED, envelopesOf, Outbox, qos1Packet, sessionFormat } from '../src/qos1.ts'
import { Mappings } from '../src/mapping.ts'

const mappings = new Mappings({ document: { products: { iot: { mqtt: [{ filter: 'sensors/{device}/temp', topic: 'sensors.temp', key: '{device}' }] } } } })

function record (device: string, offset: number, value: string, partition = 0): ConsumedRecord {
  return { topic: 'sensors.temp', partition, offset: String(offset), timestamp: '0', key: Buffer.from(device), value: Buffer.from(value), headers: {} }
}

function decode (bytes: Buffer, version: 4 | 5): IPublishPacket[] {
  const out: IPublishPacket[] = []
  const parser = mqttPacket.parser({ protocolVersion: version })
  parser.on('packet', p => out.push(p as IPublishPacket))
  parser.parse(bytes)
  return out
}

test('qos1Packet is the PUBLISH mqtt-packet encodes, with its packet id and DUP, on 3.1.1 and 5.0 [MQTT-3.3.1-1]', async t => {
  for (const version of [4, 5] as const) {
    for (const dup of [false, true]) {
      const payload = Buffer.alloc(200, 7)
      const ours = qos1Packet('sensors/d1/temp', payload, 4242, version, dup)
      const theirs = mqttPacket.generate({ cmd: 'publish', topic: 'sensors/d1/temp', payload, qos: 1, messageId: 4242, dup, retain: false, ...(version === 5 ? { properties: {} } : {}) }, { protocolVersion: version })
      t.same(ours, theirs, `version ${version}, dup ${dup}`)
    }
  }
})

test('an envelope carries the record\'s Kafka topic, partition and offset before the PUBLISH; a batch is read once', async t => {
  const format = sessionFormat(mappings, 5, 'tcp')
  const frames = [record('d1', 41, 'a'), record('d2', 7, 'b', 3)].map(r => format.frame(r, 'text')!)
  const batch = Buffer.concat(frames)
  const read = envelopesOf(batch, 'tcp', 5)
  t.same(read.map(e => [e.topic, e.partition, e.offset, e.name]), [['sensors.temp', 0, 41n, 'sensors/d1/temp'], ['sensors.temp', 3, 7n, 'sensors/d2/temp']])
  t.equal(envelopesOf(batch, 'tcp', 5), read, 'the same Buffer: read once')
  t.same(decode(batch.subarray(read[1]!.start, read[1]!.end), 5).map(p => p.payload.toString()), ['b'], 'the QoS 0 PUBLISH as it goes on the wire')
  t.equal(format.frame({ ...record('d1', 1, 'x'), key: null }, 'text'), undefined, 'a record no mapping names is no frame')
})

test('the Outbox keeps Receive Maximum in flight, the rest waiting; a position is the first unacknowledged record, else after the last seen', async t => {
  const written: Buffer[] = []
  let changes = 0
  const outbox = new Outbox({ version: 4, transport: 'tcp', receiveMaximum: 2, maxPacket: Infinity, write: b => { if (b.length > 0) written.push(b) }, cork () {}, uncork () {}, changed: () => { changes++ } })
  const format = sessionFormat(mappings, 4, 'tcp')
  outbox.started('sensors.temp', new Map([[0, 10n]]))
  const batch = Buffer.concat([10, 11, 12, 13].map(o => format.frame(record('d1', o, `m${o}`), 'text')!))
  outbox.write(batch, () => 1)
  t.equal(written.length, 2, 'two in flight')
  t.ok(outbox.waitingBytes > 0, 'the rest wait, counted')
  t.same(outbox.positions(['sensors.temp']), new Map([['sensors.temp', new Map([[0, 10n]])]]), 'nothing acknowledged: resume at 10')
  const ids = written.flatMap(b => decode(b, 4)).map(p => p.messageId!)
  t.ok(outbox.puback(ids[0]!), 'a known id')
  t.notOk(outbox.puback(999), 'an unknown one is ignored')
  t.equal(written.length, 3, 'one PUBACK lets one waiting out')
  t.same(outbox.positions(['sensors.temp']).get('sensors.temp'), new Map([[0, 11n]]))
  t.same(outbox.unacknowledged().map(u => u[2]), ['11', '12'])
  for (const id of written.slice(1).flatMap(b => decode(b, 4)).map(p => p.messageId!)) outbox.puback(id)
  const last = decode(written[written.length - 1]!, 4)[0]!
  outbox.puback(last.messageId!)
  t.equal(outbox.waitingBytes, 0)
  t.same(outbox.positions(['sensors.temp']).get('sensors.temp'), new Map([[0, 14n]]), 'all acknowledged: after the last seen')
  t.ok(changes > 0, 'every change is told to the session')

  const zero: Buffer[] = []
  const qos0 = new Outbox({ version: 4, transport: 'tcp', maxPacket: Infinity, write: b => { if (b.length > 0) zero.push(b) }, cork () {}, uncork () {}, changed () {} })
  qos0.write(batch, levels => levels[1] === 'd1' ? 0 : -1)
  t.same(zero.flatMap(b => decode(b, 4)).map(p => p.qos), [0, 0, 0, 0], 'QoS 0: the batch\'s own PUBLISH bytes')
  t.equal(zero.length, 1, 'consecutive QoS 0 deliveries in one write')
  const mixed = Buffer.concat([['d1', 20], ['d2', 21], ['d1', 22], ['d1', 23]].map(([d, o]) => format.frame(record(d as string, o as number, `x${o}`), 'text')!))
  zero.length = 0
  qos0.write(mixed, levels => levels[1] === 'd1' ? 0 : -1)
  t.same(zero.map(b => decode(b, 4).map(p => p.payload.toString())), [['x20'], ['x22', 'x23']], 'a record not wanted splits the run')
  t.same(qos0.positions(['sensors.temp']).get('sensors.temp'), new Map([[0, 24n]]), 'QoS 0 moves the position as delivered, and past records not wanted')
})

test('inherited unacknowledged deliveries go out again with DUP=1 and their packet ids when their records come [MQTT-4.4.0-1]', async t => {
  const written: Buffer[] = []
  const outbox = new Outbox({ version: 5, transport: 'tcp', maxPacket: Infinity, write: b => { if (b.length > 0) written.push(b) }, cork () {}, uncork () {}, changed () {} })
  outbox.inherit([['sensors.temp', 0, '5', 77]])
  const format = sessionFormat(mappings, 5, 'tcp')
  outbox.write(Buffer.concat([5, 6].map(o => format.frame(record('d1', o, `m${o}`), 'text')!)), () => 1)
  const sent = written.flatMap(b => decode(b, 5))
  t.same(sent.map(p => [p.messageId, p.dup]), [[77, true], [1, false]])
})

test('a record published retained (mqtt.retain 1) is sent with RETAIN 1 only where qosOf adds AS_PUBLISHED, over WebSocket and TCP, at QoS 0 and 1; the hub\'s batch is left as it was [MQTT-3.3.1-12] [MQTT-3.3.1-13]', async t => {
  for (const transport of ['ws', 'tcp'] as const) {
    const format = sessionFormat(mappings, 5, transport)
    const kept = { ...record('d1', 1, 'kept'), headers: { 'mqtt.retain': Buffer.from('1') } }
    const batch = Buffer.concat([kept, record('d1', 2, 'plain')].map(r => format.frame(r, 'text')!))
    const before = Buffer.from(batch)
    t.same(envelopesOf(batch, transport, 5).map(e => e.retained), [true, false], `${transport}: the envelope says which was published retained`)
    for (const qos of [0, 1]) {
      for (const rap of [true, false]) {
        const written: Buffer[] = []
        const outbox = new Outbox({ version: 5, transport, maxPacket: Infinity, write: b => { if (b.length > 0) written.push(b) }, cork () {}, uncork () {}, changed () {} })
        outbox.write(batch, (_levels, _publisher, retained) => qos | (retained && rap ? AS_PUBLISHED : 0))
        // on WebSocket each PUBLISH is in a binary frame: its 2-byte header (server frames are unmasked, short here)
        const packets = written.flatMap(b => transport === 'ws' ? unframe(b) : [b]).flatMap(b => decode(b, 5))
        t.same(packets.map(p => [p.payload.toString(), p.qos, p.retain]), [['kept', qos, rap], ['plain', qos, false]], `${transport}, QoS ${qos}, rap ${rap}`)
      }
    }
    t.same(batch, before, `${transport}: the batch every socket shares is not written to`)
  }
})

/** The payloads of a run of short unmasked WebSocket frames. */
function unframe (bytes: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < bytes.length;) {
    const length = bytes[at + 1]! & 0x7f
    out.push(bytes.subarray(at + 2, at + 2 + length))
    at += 2 + length
  }
  return out
}

test('a retained message sent at subscribe at QoS 1 has a packet id of its own, RETAIN 1, waits within Receive Maximum, and is not kept with the session [MQTT-3.8.4-8]', async t => {
  const written: Buffer[] = []
  const outbox = new Outbox({ version: 5, transport: 'tcp', receiveMaximum: 1, maxPacket: Infinity, write: b => { if (b.length > 0) written.push(b) }, cork () {}, uncork () {}, changed () {} })
  t.ok(outbox.retained('sensors/d1/temp', Buffer.from('one')))
  t.ok(outbox.retained('sensors/d2/temp', Buffer.from('two')))
  const first = written.flatMap(b => decode(b, 5))
  t.same(first.map(p => [p.topic, p.payload.toString(), p.qos, p.retain]), [['sensors/d1/temp', 'one', 1, true]], 'one in flight (Receive Maximum 1)')
  t.ok(outbox.waitingBytes > 0, 'the other waits, counted')
  t.same(outbox.unacknowledged(), [], 'not kept with a persistent session: it has no position of its own')
  t.same(outbox.positions(['sensors.temp']), new Map(), 'and moves no position')
  t.ok(outbox.puback(first[0]!.messageId!))
  const second = written.flatMap(b => decode(b, 5)).slice(1)
  t.same(second.map(p => [p.payload.toString(), p.qos, p.retain]), [['two', 1, true]], 'the PUBACK lets the next out')
  t.equal(outbox.waitingBytes, 0)
})
