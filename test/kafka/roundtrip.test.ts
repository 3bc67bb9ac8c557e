// The shared Kafka module against the real broker: what goes in comes out
// byte for byte (keys, headers, binary values), with the offsets Kafka reports.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { KafkaClient, type ConsumedRecord, type OutgoingRecord } from '@sluice/kafka'
import { kafkaBrokers, unique } from '../helpers.ts'

test('records produced through the shared module are consumed back byte for byte', async t => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-roundtrip' })
  t.teardown(() => kafka.close())
  const topic = unique('roundtrip')
  await kafka.ensureTopics([{ topic, partitions: 3 }])

  const sent: OutgoingRecord[] = [
    { key: 'text-key', value: 'plain UTF-8 text: zürich 東京 🚀' },
    { key: Buffer.from([0x00, 0xff, 0x80, 0x7f]), value: randomBytes(1024), headers: { 'content-type': 'application/octet-stream', bin: Buffer.from([0, 1, 2, 255]) } },
    { key: null, value: Buffer.alloc(0) },
    { key: 'null-value', value: null, headers: { empty: '' } },
    // every byte value, in a record larger than a typical TCP segment
    { key: 'all-bytes', value: Buffer.from(Array.from({ length: 4096 * 4 }, (_v, i) => i % 256)) }
  ]
  const acks = []
  for (const record of sent) acks.push(await kafka.produce(topic, record))
  t.ok(acks.every(a => a.topic === topic && a.partition >= 0 && /^\d+$/.test(a.offset)), 'each ack names a partition and a decimal offset')

  const received: ConsumedRecord[] = []
  const done = new Promise<void>(resolve => {
    const consumer = kafka.consumer({
      groupId: unique('roundtrip-group'),
      topics: [topic],
      fromBeginning: true,
      async onBatch (batch) {
        received.push(...batch.records)
        if (received.length >= sent.length) resolve()
      }
    })
    t.teardown(() => consumer.stop())
    consumer.start()
  })
  await done

  t.equal(received.length, sent.length, 'nothing lost, nothing added')
  for (const [i, record] of sent.entries()) {
    const ack = acks[i]!
    const got = received.find(r => r.partition === ack.partition && r.offset === ack.offset)
    t.ok(got, `record ${i} is at the partition and offset its ack named`)
    if (!got) continue
    const asBuffer = (v: Buffer | string | null | undefined) => v === null || v === undefined ? null : Buffer.from(v)
    t.same(got.key, asBuffer(record.key), `record ${i}: key`)
    t.same(got.value, asBuffer(record.value), `record ${i}: value`)
    const headers = Object.fromEntries(Object.entries(record.headers ?? {}).map(([k, v]) => [k, Buffer.from(v)]))
    t.same(got.headers, headers, `record ${i}: headers`)
  }
})

test('topic offsets and batch produce', async t => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-offsets' })
  t.teardown(() => kafka.close())
  const topic = unique('offsets')
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  await kafka.produceBatch(topic, Array.from({ length: 10 }, (_v, i) => ({ value: `r${i}`, partition: i % 2 })))
  const offsets = await kafka.topicOffsets(topic)
  t.same(offsets, [{ partition: 0, low: '0', high: '5' }, { partition: 1, low: '0', high: '5' }])
})

test('producing to a topic that does not exist fails with UNKNOWN_TOPIC in bounded time', async t => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-unknown' })
  t.teardown(() => kafka.close())
  const err = await kafka.produce(unique('missing'), { value: 'x' }).then(() => undefined, e => e as { code: string })
  t.equal(err?.code, 'SLUICE_KAFKA_UNKNOWN_TOPIC')
})
