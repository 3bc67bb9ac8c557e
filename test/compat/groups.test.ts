// group.id on /v2/broker/: sockets with the same group share the records the
// Kafka way (each record to one of them; the group's offsets carry over to a
// later socket); without a group every socket sees every record (the pooled
// live feed, the Java server's unique group per session).
import { test, type Test } from 'tap'
import { Kafka, logLevel, type Admin } from 'kafkajs'
import { groupIdFor } from '@sluice/stream'
import type { KafkaClient } from '@sluice/kafka'
import { gateway, LegacyClient, subscribed } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const POLICY = policyYaml({ legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] } })
const PARTITIONS = 4
// the dev credential's subject: groups are namespaced by it
const DEV = { kind: 'dev' as const, subject: 'dev', claims: { sub: 'dev' } }

async function admin (t: Test): Promise<Admin> {
  const client = new Kafka({ brokers: kafkaBrokers(), clientId: 'compat-groups-admin', logLevel: logLevel.NOTHING }).admin()
  await client.connect()
  t.teardown(() => client.disconnect())
  return client
}

// KafkaClient.groupState: group mode joins by KIP-848 on Kafka 4, and kafkajs's DescribeGroups lists such a group with no members
async function stableWith (kafka: KafkaClient, groupId: string, members: number): Promise<void> {
  await eventually(async () => {
    const group = await kafka.groupState(groupId)
    return group.state === 'Stable' && group.members.length === members
  }, 60_000, `group ${groupId} stable with ${members} members`)
}

const messages = (client: LegacyClient) => client.messages().map(r => String(r.text!.message))

test('two sessions with the same group.id receive each record exactly once', async t => {
  const topic = unique('legacy.group')
  const group = unique('workers')
  const groupId = groupIdFor(DEV, group)
  const gw = await gateway(t, { policy: POLICY })
  const kafkaAdmin = await admin(t)
  await gw.kafka.ensureTopics([{ topic, partitions: PARTITIONS }])
  // the group starts at the beginning of the (empty) topic: nothing produced after the members joined can be skipped by a late start
  await kafkaAdmin.setOffsets({ groupId, topic, partitions: Array.from({ length: PARTITIONS }, (_v, partition) => ({ partition, offset: '0' })) })

  const c1 = new LegacyClient(gw.url, `topics=${topic}&group.id=${group}`)
  const c2 = new LegacyClient(gw.url, `topics=${topic}&group.id=${group}`, 'kafka-binary')
  t.teardown(() => { c1.close(); c2.close() })
  await Promise.all([c1.opened, c2.opened])
  await stableWith(gw.kafka, groupId, 2)
  t.pass('both sockets are members of the group, namespaced by subject')

  const RECORDS = 400
  await gw.kafka.produceBatch(topic, Array.from({ length: RECORDS }, (_v, i) => ({ partition: i % PARTITIONS, value: `r${i}` })))
  // one end marker per partition: once a partition's marker arrived, everything before it on that partition did
  await gw.kafka.produceBatch(topic, Array.from({ length: PARTITIONS }, (_v, partition) => ({ partition, value: `end${partition}` })))
  const all = () => [...messages(c1), ...c2.messages().map(r => r.binary!.payload.toString())]
  await eventually(() => all().filter(m => m.startsWith('end')).length === PARTITIONS, 60_000, 'every partition\'s end marker')

  const data = all().filter(m => m.startsWith('r'))
  t.equal(data.length, RECORDS, 'as many deliveries as records')
  t.equal(new Set(data).size, RECORDS, 'each record to exactly one socket')
  t.ok(messages(c1).length > 0 && c2.messages().length > 0, `both sockets got a share (${messages(c1).length} and ${c2.messages().length})`)
})

test('a group\'s offsets outlive its sockets: a later socket of the group resumes where it stopped', async t => {
  const topic = unique('legacy.resume')
  const group = unique('resumers')
  const groupId = groupIdFor(DEV, group)
  const gw = await gateway(t, { policy: POLICY })
  const kafkaAdmin = await admin(t)
  await gw.kafka.ensureTopics([{ topic }])
  await kafkaAdmin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '0' }] })

  const first = new LegacyClient(gw.url, `topics=${topic}&group.id=${group}`)
  await first.opened
  await stableWith(gw.kafka, groupId, 1)
  await gw.kafka.produceBatch(topic, Array.from({ length: 10 }, (_v, i) => ({ value: `a${i}` })))
  await first.waitMessages(10)
  // offsets are committed once the frames are written; the broker shows them before the socket leaves
  await eventually(async () => (await kafkaAdmin.fetchOffsets({ groupId, topics: [topic] }))[0]?.partitions[0]?.offset === '10', 20_000, 'offset 10 committed')
  first.close()
  await first.closed

  await gw.kafka.produceBatch(topic, Array.from({ length: 10 }, (_v, i) => ({ value: `b${i}` })))
  const later = new LegacyClient(gw.url, `topics=${topic}&group.id=${group}`)
  t.teardown(() => later.close())
  await later.opened
  const got = (await later.waitMessages(10)).map(r => String(r.text!.message))
  t.same(got, Array.from({ length: 10 }, (_v, i) => `b${i}`), 'exactly what was produced while no socket was there, in order')
})

test('without group.id, every session receives every record, from one pooled consumer', async t => {
  const topic = unique('legacy.fanout')
  const gw = await gateway(t, { policy: POLICY })
  await gw.kafka.ensureTopics([{ topic, partitions: 2 }])
  const c1 = new LegacyClient(gw.url, `topics=${topic}`)
  const c2 = new LegacyClient(gw.url, `topics=${topic}&group.id=`, 'kafka-binary')
  t.teardown(() => { c1.close(); c2.close() })
  await Promise.all([c1.opened, c2.opened])
  await subscribed(gw, topic, 2)
  const RECORDS = 100
  await gw.kafka.produceBatch(topic, Array.from({ length: RECORDS }, (_v, i) => ({ value: `r${i}` })))
  const expected = new Set(Array.from({ length: RECORDS }, (_v, i) => `r${i}`))
  t.same(new Set((await c1.waitMessages(RECORDS)).map(r => r.text!.message)), expected, 'the first socket: every record')
  t.same(new Set((await c2.waitMessages(RECORDS)).map(r => r.binary!.payload.toString())), expected, 'the second (an empty group.id is no group): every record')
  t.equal(gw.app.hub.stats.groupSessions, 0, 'no per-session consumer group')
  t.equal(gw.app.hub.subscribers(topic), 2, 'one hub reader serves both')
})
