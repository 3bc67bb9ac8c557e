// KafkaClient.produce shares produce requests among all the node's publishes
// (packages/kafka/src/publish-batcher.ts): with the real broker, each caller's
// partition and offset must be where a plain consumer reads its own record, a
// partition must hold its records in the order they were handed in, and a bad
// record (a topic Kafka does not have, one too large) fails alone.
import { test } from 'tap'
import { KafkaClient, type RecordMetadata } from '@sluice/kafka'
import { kafkaBrokers, readRecords, unique } from '../helpers.ts'

test('2,000 publishes from 20 publishers at once: each ack is where its own record is, in order per partition', async t => {
  const topic = unique('batched')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-batched' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  const PUBLISHERS = 20
  const EACH = 100
  const calls: Array<Promise<{ publisher: number, i: number, meta: RecordMetadata }>> = []
  // interleaved, as 20 sockets' frames reach the node: publisher p's i-th record, keyed by publisher
  // (odd publishers send no key: the partitioner's round robin is pinned on the record too)
  for (let i = 0; i < EACH; i++) {
    for (let publisher = 0; publisher < PUBLISHERS; publisher++) {
      const key = publisher % 2 === 0 ? `publisher-${publisher}` : null
      calls.push(kafka.produce(topic, { key, value: `${publisher}:${i}`, headers: { n: String(i) } }).then(meta => ({ publisher, i, meta })))
    }
  }
  const acks = await Promise.all(calls)
  const records = await readRecords(t, topic, PUBLISHERS * EACH)
  const at = new Map(records.map(r => [`${r.partition}/${r.offset}`, r]))
  let misplaced = 0
  for (const { publisher, i, meta } of acks) {
    const record = at.get(`${meta.partition}/${meta.offset}`)
    if (record?.value?.toString() !== `${publisher}:${i}` || record.headers.n?.toString() !== String(i)) misplaced++
  }
  t.equal(misplaced, 0, 'every ack names the partition and offset of its own record')
  t.equal(new Set(acks.map(a => `${a.meta.partition}/${a.meta.offset}`)).size, PUBLISHERS * EACH, 'no two acks name the same place')
  for (let publisher = 0; publisher < PUBLISHERS; publisher += 2) {
    const mine = acks.filter(a => a.publisher === publisher)
    t.equal(new Set(mine.map(a => a.meta.partition)).size, 1, `a keyed publisher's records share a partition (${publisher})`)
    const offsets = mine.map(a => BigInt(a.meta.offset))
    t.ok(offsets.every((o, n) => n === 0 || o > offsets[n - 1]!), `publisher ${publisher}'s records are in Kafka in the order it sent them`)
  }
  for (let partition = 0; partition < 3; partition++) {
    const inLog = records.filter(r => r.partition === partition).sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)))
    const order = inLog.map(r => Number(r.headers.n?.toString()))
    const byPublisher = new Map<string, number[]>()
    for (const [n, r] of inLog.entries()) {
      const p = r.value!.toString().split(':')[0]!
      byPublisher.set(p, [...(byPublisher.get(p) ?? []), order[n]!])
    }
    for (const [p, seq] of byPublisher) {
      if (!seq.every((v, n) => n === 0 || v > seq[n - 1]!)) t.fail(`publisher ${p}'s records in partition ${partition} are out of order`)
    }
  }
})

test('an unknown topic and a record too large, in the same turn as good records, fail only their own', async t => {
  const topic = unique('batched-good')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-batched-failures' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  // the topic is known to the node before the bad records come
  await kafka.produce(topic, { value: 'warm' })
  const outcome = (p: Promise<RecordMetadata>) => p.then(meta => meta, (err: { code: string }) => err.code)
  const good = []
  const bad = []
  for (let i = 0; i < 100; i++) {
    good.push(outcome(kafka.produce(topic, { key: `k${i % 5}`, value: `good-${i}` })))
    if (i === 10) bad.push(outcome(kafka.produce(unique('missing'), { value: 'nowhere' })))
    // over Kafka's default max.message.bytes (1 MiB)
    if (i === 50) bad.push(outcome(kafka.produce(topic, { key: 'k1', value: Buffer.alloc(1_200_000, 1) })))
  }
  const [missing, large] = await Promise.all(bad)
  t.equal(missing, 'SLUICE_KAFKA_UNKNOWN_TOPIC')
  t.equal(large, 'SLUICE_KAFKA_TOO_LARGE')
  const acked = await Promise.all(good)
  t.equal(acked.filter(a => typeof a === 'string').length, 0, `every good record acked (${acked.filter(a => typeof a === 'string').join(', ')})`)
  // after the refusals the producer is healthy on every partition (kafkajs rolls sequence numbers back on a failed request)
  const after = await Promise.all(Array.from({ length: 30 }, (_, i) => outcome(kafka.produce(topic, { key: `k${i % 5}`, value: `after-${i}` }))))
  t.equal(after.filter(a => typeof a === 'string').length, 0, 'publishes after them are acked')
  const records = await readRecords(t, topic, 131)
  const at = new Map(records.map(r => [`${r.partition}/${r.offset}`, r.value?.toString()]))
  for (const [i, meta] of [...acked, ...after].entries()) {
    const expected = i < 100 ? `good-${i}` : `after-${i - 100}`
    if (typeof meta === 'string' || at.get(`${meta.partition}/${meta.offset}`) !== expected) t.fail(`${expected} is not where its ack says`)
  }
  t.equal(records.length, 131, 'nothing else was written')
})

test('records that only together exceed a small topic limit do not wedge the producer: later publishes on every topic are acked', async t => {
  const small = unique('batched-small')
  const other = unique('batched-other')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-batched-small-limit' })
  t.teardown(() => kafka.close())
  // an operator's topic of 100 kB records at most; each record below is 40 kB, under the batcher's solo
  // threshold, so three of them share a request whose batch for that topic is over its limit
  await kafka.ensureTopics([{ topic: small, partitions: 1, config: { 'max.message.bytes': '100000' } }, { topic: other, partitions: 2 }])
  await kafka.produce(small, { value: 'warm' })
  await kafka.produce(other, { value: 'warm' })
  const outcome = (p: Promise<RecordMetadata>) => p.then(meta => meta, (err: { code: string }) => err.code)
  const first = await Promise.all([
    ...Array.from({ length: 3 }, () => outcome(kafka.produce(small, { value: Buffer.alloc(40_000, 1) }))),
    ...Array.from({ length: 10 }, (_, i) => outcome(kafka.produce(other, { key: `k${i}`, value: `shared-${i}` })))
  ])
  t.ok(first.every(o => typeof o !== 'string' || ['SLUICE_KAFKA_TOO_LARGE', 'SLUICE_KAFKA_UNAVAILABLE'].includes(o)), `refusals are TOO_LARGE or UNAVAILABLE: ${first.filter(o => typeof o === 'string').join(', ')}`)
  // what matters: the node goes on publishing, on both topics, and each ack is exact
  const after = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => outcome(kafka.produce(other, { key: `k${i}`, value: `after-${i}` }))),
    ...Array.from({ length: 3 }, () => outcome(kafka.produce(small, { value: Buffer.alloc(40_000, 2) })))
  ])
  t.same(after.filter(o => typeof o === 'string'), [], 'every later publish is acked')
  const records = await readRecords(t, other, 1 + first.slice(3).filter(o => typeof o !== 'string').length + 20)
  const at = new Map(records.map(r => [`${r.partition}/${r.offset}`, r.value?.toString()]))
  for (const [i, meta] of after.slice(0, 20).entries()) {
    if (typeof meta === 'string' || at.get(`${meta.partition}/${meta.offset}`) !== `after-${i}`) t.fail(`after-${i} is not where its ack says`)
  }
})
