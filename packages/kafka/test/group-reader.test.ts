// Group mode on @platformatic/kafka (group-reader.ts) against the real broker, with
// both protocols: members split a topic's partitions (each record to one member,
// none lost), a member that leaves hands its partitions over, and a new member
// starts after the group's last committed offset, as the hub's group mode needs.
import { test } from 'tap'
import { KafkaClient, type RecordBatch } from '../src/kafka.ts'
import { consumerGroupMembers, consumerGroupState, GroupReaders, type GroupProtocol, type GroupReader } from '../src/group-reader.ts'
import { eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

const PARTITIONS = 4

function connection () {
  return { brokers: kafkaBrokers(), clientId: unique('group-reader-test'), connectionTimeoutMs: 3000, requestTimeoutMs: 10_000 }
}

function readers (protocol?: GroupProtocol): GroupReaders {
  return new GroupReaders({ ...connection(), protocol })
}

interface Member { reader: GroupReader, seen: string[], assignments: Array<Record<string, number[]>> }

/** A member that records "partition:offset:value" and commits after each batch, as hub.joinGroup does. */
function member (group: GroupReaders, groupId: string, topic: string, fromBeginning = false): Member {
  const seen: string[] = []
  const assignments: Array<Record<string, number[]>> = []
  const reader: GroupReader = group.reader({
    groupId,
    topics: [topic],
    fromBeginning,
    onBatch: async (batch: RecordBatch) => {
      for (const r of batch.records) seen.push(`${r.partition}:${r.offset}:${r.value?.toString() ?? ''}`)
      const last = batch.records[batch.records.length - 1]
      if (last) await reader.commit([{ topic: last.topic, partition: last.partition, offset: last.offset }])
    },
    onGroupJoin: assignment => { assignments.push(assignment) }
  })
  return { reader, seen, assignments }
}

function owned (m: Member, topic: string): number[] {
  return m.reader.assignment[topic] ?? []
}

async function produce (kafka: KafkaClient, topic: string, from: number, count: number): Promise<string[]> {
  const values = Array.from({ length: count }, (_, i) => `v${from + i}`)
  await kafka.produceBatch(topic, values.map((value, i) => ({ value, partition: (from + i) % PARTITIONS })))
  return values
}

test('the broker (Kafka 4) offers KIP-848: members join with the consumer protocol unless told otherwise', async t => {
  const group = readers()
  t.equal(await group.protocol(), 'consumer')
  t.equal(await readers('classic').protocol(), 'classic')
})

for (const protocol of ['consumer', 'classic'] as const) {
  test(`${protocol} protocol: two members split a 4-partition topic, each record goes to exactly one of them and none is lost, and a member leaving hands its partitions to the other`, async t => {
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('group-reader-test') })
    const group = readers(protocol)
    t.teardown(async () => { await group.close(); await kafka.close() })
    const topic = unique(`group-reader.split.${protocol}`)
    const groupId = unique(`group-reader.g.${protocol}`)
    await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])

    const a = member(group, groupId, topic)
    await a.reader.start()
    t.equal(a.reader.protocol, protocol)
    await eventually(() => owned(a, topic).length === PARTITIONS, 60_000, 'the first member owns every partition')
    const b = member(group, groupId, topic)
    await b.reader.start()
    await eventually(() => owned(a, topic).length > 0 && owned(b, topic).length > 0 &&
      owned(a, topic).length + owned(b, topic).length === PARTITIONS, 60_000, 'the partitions are split between the two')
    t.same([...owned(a, topic), ...owned(b, topic)].sort(), [0, 1, 2, 3], 'every partition has exactly one owner')
    t.ok(a.assignments.length >= 2 && b.assignments.length >= 1, 'onGroupJoin reported each assignment')
    const members = await consumerGroupMembers(connection(), groupId)
    if (protocol === 'consumer') {
      t.equal(members?.length, 2, 'ConsumerGroupDescribe lists the two members')
      t.equal((await consumerGroupState(connection(), groupId))?.state, 'Stable', 'and the group is stable once both have their partitions')
    } else t.equal(members, undefined, 'a classic group is not a consumer-protocol group')

    const sent = await produce(kafka, topic, 0, 200)
    await eventually(() => a.seen.length + b.seen.length >= sent.length, 30_000, 'all 200 records delivered')
    // a moment for a duplicate to show
    await new Promise(resolve => setTimeout(resolve, 500))
    const all = [...a.seen, ...b.seen]
    t.equal(all.length, sent.length, 'no record twice')
    t.same(all.map(s => s.split(':')[2]).sort(), [...sent].sort(), 'every record once')
    const partitionsOf = (m: Member) => new Set(m.seen.map(s => Number(s.split(':')[0])))
    t.same([...partitionsOf(a)].sort(), owned(a, topic), 'the first member read its own partitions only')
    t.same([...partitionsOf(b)].sort(), owned(b, topic), 'the second member read its own partitions only')

    await b.reader.stop()
    await eventually(() => owned(a, topic).length === PARTITIONS, 30_000, 'the remaining member owns every partition again')
    const before = a.seen.length
    const more = await produce(kafka, topic, 200, 100)
    await eventually(() => a.seen.length - before >= more.length, 30_000, 'the remaining member reads all of them')
    await new Promise(resolve => setTimeout(resolve, 500))
    t.same(a.seen.slice(before).map(s => s.split(':')[2]).sort(), [...more].sort(), 'every later record once, from all four partitions')
  })

  test(`${protocol} protocol: a new member of the group starts after the last committed offset of each partition`, async t => {
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('group-reader-test') })
    const group = readers(protocol)
    t.teardown(async () => { await group.close(); await kafka.close() })
    const topic = unique(`group-reader.commit.${protocol}`)
    const groupId = unique(`group-reader.c.${protocol}`)
    await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])
    const first = await produce(kafka, topic, 0, 40)

    const a = member(group, groupId, topic, true)
    await a.reader.start()
    await eventually(() => a.seen.length >= first.length, 60_000, 'the first member reads the 40 records from the beginning')
    await a.reader.stop()
    t.equal(a.seen.length, first.length)

    const later = await produce(kafka, topic, 40, 20)
    // fromBeginning would replay all 60 if the commits were not honoured
    const b = member(group, groupId, topic, true)
    await b.reader.start()
    await eventually(() => b.seen.length >= later.length, 60_000, 'the new member reads the 20 new records')
    await new Promise(resolve => setTimeout(resolve, 500))
    t.same(b.seen.map(s => s.split(':')[2]).sort(), [...later].sort(), 'only what was produced after the commits')
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = b.seen.filter(s => s.startsWith(`${p}:`)).map(s => Number(s.split(':')[1]))
      t.equal(Math.min(...offsets), 10, `partition ${p} resumes at offset 10, the one after its last committed record`)
    }
  })
}

test('a kafkajs classic member (a node before this change) and a KIP-848 member share one group: the broker converts it and splits the partitions between them, each record to one', async t => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('group-reader-test') })
  const group = readers('consumer')
  t.teardown(async () => { await group.close(); await kafka.close() })
  const topic = unique('group-reader.mixed')
  const groupId = unique('group-reader.m')
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])
  const oldSeen: string[] = []
  let oldOwned: number[] = []
  const old = kafka.consumer({
    groupId,
    topics: [topic],
    onBatch: async batch => {
      for (const r of batch.records) oldSeen.push(r.value?.toString() ?? '')
      const last = batch.records[batch.records.length - 1]
      if (last) await old.commit([{ topic, partition: last.partition, offset: last.offset }])
    },
    onGroupJoin: assignment => { oldOwned = assignment[topic] ?? [] }
  })
  t.teardown(() => old.stop())
  await old.start()
  await eventually(() => oldOwned.length === PARTITIONS, 60_000, 'the classic member owns every partition')
  const b = member(group, groupId, topic)
  await b.reader.start()
  await eventually(() => owned(b, topic).length > 0 && oldOwned.length + owned(b, topic).length === PARTITIONS, 60_000, 'the partitions are split between the two')
  t.same([...oldOwned, ...owned(b, topic)].sort(), [0, 1, 2, 3], 'every partition has exactly one owner')
  t.equal((await consumerGroupMembers(connection(), groupId))?.length, 2, 'one consumer-protocol group with both members')

  const sent = await produce(kafka, topic, 0, 100)
  await eventually(() => oldSeen.length + b.seen.length >= sent.length, 30_000, 'all 100 records delivered')
  await new Promise(resolve => setTimeout(resolve, 500))
  t.same([...oldSeen, ...b.seen.map(s => s.split(':')[2])].sort(), [...sent].sort(), 'each record to exactly one member')
  t.ok(oldSeen.length > 0 && b.seen.length > 0, 'both members got a share')
})

test('a handler that fails gets a new member, as kafkajs restarts its consumer: onCrash says it restarts, and the records after the last commit come again', async t => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('group-reader-test') })
  const group = readers('consumer')
  t.teardown(async () => { await group.close(); await kafka.close() })
  const topic = unique('group-reader.crash')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  await kafka.produceBatch(topic, [{ value: 'a' }, { value: 'b' }])
  const seen: string[] = []
  const crashes: boolean[] = []
  let failed = false
  const reader = group.reader({
    groupId: unique('group-reader.crash'),
    topics: [topic],
    fromBeginning: true,
    onBatch: async batch => {
      for (const r of batch.records) seen.push(r.value?.toString() ?? '')
      if (!failed) {
        failed = true
        throw new Error('the socket went away mid-batch')
      }
      const last = batch.records[batch.records.length - 1]!
      await reader.commit([{ topic, partition: last.partition, offset: last.offset }])
    },
    onCrash: (_err, restarting) => { crashes.push(restarting) }
  })
  await reader.start()
  await eventually(() => seen.length >= 4, 30_000, 'both records again after the restart')
  t.same(crashes, [true], 'one crash, restarting')
  t.same(seen, ['a', 'b', 'a', 'b'], 'nothing was committed by the failed batch: the new member reads it again')
})
