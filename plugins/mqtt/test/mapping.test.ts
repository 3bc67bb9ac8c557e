// The policy's MQTT mappings both ways, and MQTT's topic matching rules.
import { test } from 'tap'
import { CompiledMapping, Mappings, matches, validFilter, validName } from '../src/mapping.ts'
import { framesOf, mqttFormat, publishPacket } from '../src/format.ts'
import mqttPacket, { type IPublishPacket } from 'mqtt-packet'

const temp = new CompiledMapping({ product: 'iot', filter: 'sensors/{device}/temp', topic: 'sensors.temp', key: '{device}' })
const devices = new CompiledMapping({ product: 'iot', filter: 'devices/{device}/{kind}', topic: 'devices.{device}', key: '{kind}' })

test('sensors/d1/temp is key d1 of sensors.temp, and back', async t => {
  t.same(temp.toRecord('sensors/d1/temp'), { topic: 'sensors.temp', key: 'd1' })
  t.equal(temp.toName('sensors.temp', 'd1'), 'sensors/d1/temp')
  t.equal(temp.toRecord('sensors/d1/hum'), undefined, 'another last level is another mapping')
  t.equal(temp.toRecord('sensors//temp'), undefined, 'an empty level fills no {name}')
  t.equal(temp.toName('sensors.temp', 'a/b'), undefined, 'a key with a slash would be two levels: not delivered')
  t.equal(temp.toName('sensors.temp', '#'), undefined, 'a key that would make a wildcard in a name is not delivered [MQTT-4.7.1-1]')
  t.equal(temp.toName('other', 'd1'), undefined)
})

test('a {name} in the Kafka topic takes one level, never a dot or another topic', async t => {
  t.same(devices.toRecord('devices/d7/state'), { topic: 'devices.d7', key: 'state' })
  t.equal(devices.toName('devices.d7', 'state'), 'devices/d7/state')
  t.equal(devices.toRecord('devices/a.b/state'), undefined)
  t.equal(devices.reachedBy('devices/d7/#'), 'devices.d7')
  t.equal(devices.reachedBy('devices/+/state'), 'open', 'a wildcard over the topic\'s own name is many topics')
})

test('a filter reaches the mappings whose names it can match', async t => {
  t.equal(temp.reachedBy('sensors/+/temp'), 'sensors.temp')
  t.equal(temp.reachedBy('sensors/#'), 'sensors.temp')
  t.equal(temp.reachedBy('#'), 'sensors.temp')
  t.equal(temp.reachedBy('sensors/+'), undefined)
  t.equal(temp.reachedBy('sensors/+/hum'), undefined)
  t.equal(temp.reachedBy('sensors/d1/temp/x'), undefined)
  const all = new Mappings({ document: { products: { iot: { mqtt: [{ filter: 'sensors/{device}/temp', topic: 'sensors.temp', key: '{device}' }, { filter: 'sensors/{device}/hum', topic: 'sensors.hum', key: '{device}' }] } } } })
  t.same(all.reachedBy('sensors/#'), { topics: ['sensors.temp', 'sensors.hum'], open: false })
  t.same(all.toRecord('sensors/x/hum'), { topic: 'sensors.hum', key: 'x', product: 'iot' })
})

test('wildcards as MQTT defines them; $-topics are never matched by a leading wildcard [MQTT-4.7.2-1]', async t => {
  t.ok(matches('sport/#', 'sport'), '# matches the parent level too')
  t.ok(matches('sport/#', 'sport/tennis/player1'))
  t.ok(matches('sport/+/player1', 'sport/tennis/player1'))
  t.notOk(matches('sport/+', 'sport/tennis/player1'))
  t.ok(matches('+/+', '/finance'))
  t.notOk(matches('#', '$SYS/x'))
  t.notOk(matches('+/monitor', '$SYS/monitor'))
  t.ok(matches('$SYS/#', '$SYS/x'))
})

test('filters and names are checked as [MQTT-4.7.1-2], [MQTT-4.7.1-3] and [MQTT-4.7.3-1] say', async t => {
  for (const f of ['#', 'a/#', '+', 'a/+/b', '+/+']) t.ok(validFilter(f), f)
  for (const f of ['', 'a/#/b', 'a#', 'a/b+', 'sport+']) t.notOk(validFilter(f), JSON.stringify(f))
  t.ok(validName('a/b'))
  for (const n of ['', 'a/+', 'a/#']) t.notOk(validName(n), JSON.stringify(n))
})

test('the PUBLISH frames are what mqtt-packet reads, for 3.1.1 and 5.0, and the batch splits back into them', async t => {
  for (const version of [4, 5] as const) {
    const parser = mqttPacket.parser({ protocolVersion: version })
    const seen: IPublishPacket[] = []
    parser.on('packet', p => seen.push(p as IPublishPacket))
    const big = Buffer.alloc(70_000, 1)
    parser.parse(publishPacket('sensors/d1/temp', Buffer.from('21.5'), version))
    parser.parse(publishPacket('s/é', big, version))
    t.equal(seen.length, 2)
    t.match(seen[0], { cmd: 'publish', topic: 'sensors/d1/temp', qos: 0, retain: false })
    t.equal(seen[0]?.payload.toString(), '21.5')
    t.equal(seen[1]?.topic, 's/é')
    t.equal(Buffer.compare(seen[1]!.payload as Buffer, big), 0)
  }
  const mappings = new Mappings({ document: { products: { iot: { mqtt: [{ filter: 'sensors/{device}/temp', topic: 'sensors.temp', key: '{device}' }] } } } })
  const format = mqttFormat(mappings, 5)
  const record = (key: string | null, value: Buffer) => ({ topic: 'sensors.temp', partition: 0, offset: '0', timestamp: '0', key: key === null ? null : Buffer.from(key), value, headers: {} })
  t.equal(format.frame(record(null, Buffer.from('x')), 'json'), undefined, 'a record without a key is no MQTT message')
  const frames = [format.frame(record('a', Buffer.from('1')), 'json')!, format.frame(record('b', Buffer.alloc(300)), 'json')!, format.frame(record('c', Buffer.alloc(70_000)), 'json')!]
  const batch = Buffer.concat(frames)
  t.same([...framesOf(batch)].map(f => f.topic), ['sensors/a/temp', 'sensors/b/temp', 'sensors/c/temp'])
  t.same([...framesOf(batch)].map(f => f.end - f.start), frames.map(f => f.length))
  // over TCP the packets are bare, end to end, and split back the same way
  const tcp = mqttFormat(mappings, 4, 'tcp')
  const bare = [tcp.frame(record('a', Buffer.from('1')), 'json')!, tcp.frame(record('c', Buffer.alloc(70_000)), 'json')!, tcp.frame(record('b', Buffer.alloc(300)), 'json')!]
  t.not(tcp.key, format.key, 'another frame cache than WebSocket sockets\' frames')
  t.same([...framesOf(Buffer.concat(bare), 'tcp')].map(f => [f.topic, f.end - f.start]), [['sensors/a/temp', bare[0]!.length], ['sensors/c/temp', bare[1]!.length], ['sensors/b/temp', bare[2]!.length]])
})
