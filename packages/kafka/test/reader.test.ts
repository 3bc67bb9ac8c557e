// The group-less reader (reader.ts) against the real broker: offsets inside a
// batch, partitions added while reading, offsets out of range, and many topics
// over the same few connections, with no consumer group left on the broker.
import { test } from 'tap'
import { Kafka, logLevel } from 'kafkajs'
import { KafkaClient, type RecordBatch, type TopicReader } from '../src/kafka.ts'
import { connectionsTo, eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

function client (): KafkaClient {
  return new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('reader-test') })
}

/** Reads `topic` from `positions` into an array of "partition:offset:value". */
async function collect (kafka: KafkaClient, topic: string, positions: Map<number, bigint>, options: { follow?: boolean, metadataMaxAgeMs?: number } = {}) {
  const seen: string[] = []
  const errors: Error[] = []
  const reader: TopicReader = kafka.reader({
    topic,
    followNewPartitions: options.follow,
    metadataMaxAgeMs: options.metadataMaxAgeMs,
    onBatch: (batch: RecordBatch) => {
      for (const r of batch.records) seen.push(`${r.partition}:${r.offset}:${r.value?.toString() ?? ''}`)
    },
    onError: err => { errors.push(err) }
  })
  await reader.start(positions)
  return { seen, errors, reader }
}

test('a read from the middle of a batch starts at its offset: the records before it in the same batch are skipped', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const topic = unique('reader.mid')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  // one produce request: one record batch holding offsets 0-9
  await kafka.produceBatch(topic, Array.from({ length: 10 }, (_v, i) => ({ value: `r${i}`, partition: 0 })))
  const { seen, errors } = await collect(kafka, topic, new Map([[0, 4n]]))
  await eventually(() => seen.length >= 6, 10_000, 'six records')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(seen, ['0:4:r4', '0:5:r5', '0:6:r6', '0:7:r7', '0:8:r8', '0:9:r9'])
  t.same(errors, [])
})

test('a reader that follows new partitions reads a partition added after it started, from its first record', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const topic = unique('reader.grow')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const { seen } = await collect(kafka, topic, new Map([[0, 0n]]), { follow: true, metadataMaxAgeMs: 300 })
  await kafka.addPartitions(topic, 3)
  await kafka.ensureTopics([{ topic }])
  await eventually(async () => (await kafka.topicOffsets(topic)).length === 3, 10_000, 'three partitions')
  await kafka.produce(topic, { value: 'on-2', partition: 2 })
  await kafka.produce(topic, { value: 'on-0', partition: 0 })
  await eventually(() => seen.includes('2:0:on-2') && seen.includes('0:0:on-0'), 15_000, 'records of partitions 0 and 2')
  t.pass('read partition 2, added after start')
})

test('a reader not following new partitions reads only those it was given', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const topic = unique('reader.only')
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  const { seen } = await collect(kafka, topic, new Map([[1, 0n]]), { metadataMaxAgeMs: 300 })
  await kafka.produce(topic, { value: 'p0', partition: 0 })
  await kafka.produce(topic, { value: 'p1', partition: 1 })
  await eventually(() => seen.length >= 1, 10_000, 'the record of partition 1')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(seen, ['1:0:p1'])
})

test('an offset below the log start restarts the partition at the log start; one past the end, at the end', async t => {
  const kafka = client()
  const admin = new Kafka({ brokers: kafkaBrokers(), clientId: 'reader-test-admin', logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  t.teardown(async () => {
    await admin.disconnect()
    await kafka.close()
  })
  const topic = unique('reader.range')
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  await kafka.produceBatch(topic, Array.from({ length: 10 }, (_v, i) => ({ value: `a${i}`, partition: 0 })))
  await kafka.produceBatch(topic, Array.from({ length: 3 }, (_v, i) => ({ value: `b${i}`, partition: 1 })))
  // retention in a test's time: the log of partition 0 now starts at 6 (kafkajs's admin wants the topic's metadata first)
  await admin.fetchTopicMetadata({ topics: [topic] })
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '6' }] })
  const { seen } = await collect(kafka, topic, new Map([[0, 2n], [1, 50n]]))
  await eventually(() => seen.length >= 4, 10_000, 'records 6-9 of partition 0')
  t.same(seen, ['0:6:a6', '0:7:a7', '0:8:a8', '0:9:a9'], 'partition 0 from its log start, 6')
  await kafka.produce(topic, { value: 'b3', partition: 1 })
  await eventually(() => seen.includes('1:3:b3'), 10_000, 'the next record of partition 1')
  t.notOk(seen.some(s => s.startsWith('1:0') || s.startsWith('1:1') || s.startsWith('1:2')), 'partition 1 restarted at its end, not its start')
})

test('readers of 60 topics share one fetcher: at most four connections to the broker, and no consumer group', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const prefix = unique('reader.many')
  const topics = Array.from({ length: 60 }, (_v, i) => `${prefix}.${i}`)
  await kafka.ensureTopics(topics.map(topic => ({ topic, partitions: 1 })), 60_000)
  const groupsBefore = new Set(await kafka.listGroups())
  const before = connectionsTo(Number(kafkaBrokers()[0]!.split(':').pop()))
  const readers = await Promise.all(topics.map(topic => collect(kafka, topic, new Map([[0, 0n]]))))
  for (const topic of topics) await kafka.produce(topic, { value: topic, partition: 0 })
  await eventually(() => readers.every((r, i) => r.seen.includes(`0:0:${topics[i]}`)), 20_000, 'a record on every topic')
  const opened = connectionsTo(Number(kafkaBrokers()[0]!.split(':').pop())) - before
  t.ok(kafka.readerClients <= 3, `${kafka.readerClients} clients: two main clients and a start lane at most`)
  t.ok(opened <= 4, `connections opened by 60 readers: ${opened} (three clients, and a bootstrap connection at most)`)
  // once every reader has caught up, the start lane is quiet and the main fetch parks: 500 ms
  // polls for 5 s after the last partition joined, then 5 s ones
  await new Promise(resolve => setTimeout(resolve, 6000))
  const idle0 = kafka.readerRequests
  await new Promise(resolve => setTimeout(resolve, 2500))
  const idle = kafka.readerRequests
  t.equal(idle.lane - idle0.lane, 0, 'no start-lane fetch while idle')
  t.ok(idle.main - idle0.main <= 1, `main fetches in 2.5 s idle: ${idle.main - idle0.main} (one per 5 s)`)
  const created = (await kafka.listGroups()).filter(g => !groupsBefore.has(g))
  t.same(created.filter(g => g.includes('reader-test')), [], 'no group of this client on the broker')
  await Promise.all(readers.map(r => r.reader.stop()))
})

test('a batch handler that returns a promise holds its partition: batches come in order, one at a time', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const topic = unique('reader.slow')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  for (let i = 0; i < 5; i++) await kafka.produce(topic, { value: `s${i}`, partition: 0 })
  const seen: string[] = []
  let running = 0
  let overlap = false
  const reader = kafka.reader({
    topic,
    onBatch: async batch => {
      running++
      if (running > 1) overlap = true
      await new Promise(resolve => setTimeout(resolve, 30))
      for (const r of batch.records) seen.push(r.offset)
      running--
    }
  })
  await reader.start(new Map([[0, 0n]]))
  await eventually(() => seen.length >= 5, 10_000, 'five records')
  for (let i = 5; i < 8; i++) await kafka.produce(topic, { value: `s${i}`, partition: 0 })
  await eventually(() => seen.length >= 8, 10_000, 'eight records')
  t.same(seen, ['0', '1', '2', '3', '4', '5', '6', '7'])
  t.notOk(overlap, 'never two handlers at once')
  await reader.stop()
})

test('a reader of a topic that does not exist fails to start with SLUICE_KAFKA_UNKNOWN_TOPIC', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const reader = kafka.reader({ topic: unique('reader.none'), onBatch: () => {} })
  await t.rejects(reader.start(new Map([[0, 0n]])), { code: 'SLUICE_KAFKA_UNKNOWN_TOPIC' })
})

test('a topic deleted while read is reported to its readers with SLUICE_KAFKA_UNKNOWN_TOPIC, and fetching it stops', async t => {
  const kafka = client()
  const admin = new Kafka({ brokers: kafkaBrokers(), clientId: 'reader-test-admin', logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  t.teardown(async () => {
    await admin.disconnect()
    await kafka.close()
  })
  const topic = unique('reader.deleted')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const { errors, reader } = await collect(kafka, topic, new Map([[0, 0n]]), { metadataMaxAgeMs: 300 })
  await admin.deleteTopics({ topics: [topic] })
  await eventually(() => errors.length > 0, 15_000, 'the reader told')
  t.match(errors[0], { code: 'SLUICE_KAFKA_UNKNOWN_TOPIC' })
  const before = kafka.readerRequests
  await new Promise(resolve => setTimeout(resolve, 1000))
  const after = kafka.readerRequests
  t.ok(after.main - before.main + after.lane - before.lane <= 1, 'no fetch for it any more')
  await reader.stop()
})

test('start(\'latest\') starts every partition at its end and says where; readers started together share the requests', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const a = unique('reader.latest')
  const b = unique('reader.latest')
  await kafka.ensureTopics([{ topic: a, partitions: 3 }, { topic: b, partitions: 1 }])
  await kafka.produceBatch(a, [{ value: 'old0', partition: 0 }, { value: 'old0b', partition: 0 }, { value: 'old2', partition: 2 }])
  const seen: string[] = []
  const onBatch = (batch: RecordBatch) => { for (const r of batch.records) seen.push(`${r.topic}:${r.partition}:${r.offset}`) }
  const [startA, startB] = await Promise.all([
    kafka.reader({ topic: a, onBatch }).start('latest'),
    kafka.reader({ topic: b, onBatch }).start('latest')
  ])
  t.same([...startA].sort(), [[0, 2n], [1, 0n], [2, 1n]], 'the end of each partition of a')
  t.same([...startB], [[0, 0n]])
  await kafka.produce(a, { value: 'new', partition: 0 })
  await kafka.produce(b, { value: 'new', partition: 0 })
  await eventually(() => seen.length >= 2, 10_000, 'the two new records')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(seen.sort(), [`${a}:0:2`, `${b}:0:0`].sort(), 'only what was written after start')
  await t.rejects(kafka.reader({ topic: unique('reader.none'), onBatch }).start('latest'), { code: 'SLUICE_KAFKA_UNKNOWN_TOPIC' })
})
