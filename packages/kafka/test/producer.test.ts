// The shared producer on @platformatic/kafka (src/producer.ts), with the real broker:
// keys land where kafkajs and the Java client put them, concurrent sends keep their
// order per partition, a publish is acked only once Kafka has it, and a partition
// the producer does not know is never written elsewhere.
import { test } from 'tap'
import { Partitioners } from 'kafkajs'
import { KafkaClient, type RecordMetadata } from '../src/kafka.ts'
import { murmur2 } from '../src/murmur2.ts'
import { SharedProducer } from '../src/producer.ts'
import { kafkaBrokers, readRecords, unique } from '../../../test/helpers.ts'

const PARTITIONS = 7

test('a keyed record lands on the partition kafkajs and the Java client give its key, through produce and produceBatch', async t => {
  const topic = unique('producer-keys')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-producer-keys' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])
  // kafkajs's default partitioner (the Java client's rule: murmur2 of the key, sign bit masked, modulo the partitions)
  const kafkajs = Partitioners.DefaultPartitioner()
  const partitionMetadata = Array.from({ length: PARTITIONS }, (_v, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }))
  const expected = (key: string) => kafkajs({ topic, partitionMetadata, message: { key, value: null } })
  const keys = Array.from({ length: 200 }, (_v, i) => `key-${i}`)
  // @platformatic/kafka's own default takes the hash unsigned (>>> 0): these keys would land elsewhere with it
  const moved = keys.filter(key => (murmur2(key) >>> 0) % PARTITIONS !== expected(key))
  t.ok(moved.length > 20, `${moved.length} of the keys tell the two rules apart`)

  const acks = await Promise.all(keys.map(key => kafka.produce(topic, { key, value: `p:${key}` })))
  t.same(acks.map(a => a.partition), keys.map(expected), 'produce: every key on its kafkajs partition')
  await kafka.produceBatch(topic, keys.map(key => ({ key, value: `b:${key}` })))
  const records = await readRecords(t, topic, keys.length * 2)
  const wrong = records.filter(r => r.partition !== expected(r.key!.toString()))
  t.same(wrong.map(r => r.value?.toString()), [], 'produce and produceBatch: every record read back from its kafkajs partition')
})

test('produceBatch calls made at once, and publishes among them, keep their order in the partition', async t => {
  const topic = unique('producer-order')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-producer-order' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  await kafka.produce(topic, { value: 'warm-up', partition: 0 })
  const CALLS = 20
  const EACH = 50
  const sends: Array<Promise<unknown>> = []
  const publishes: Array<Promise<RecordMetadata>> = []
  for (let call = 0; call < CALLS; call++) {
    // one key: all on one partition; nothing awaited in between
    sends.push(kafka.produceBatch(topic, Array.from({ length: EACH }, (_v, i) => ({ key: 'one', value: `${call}:${i}` }))))
    publishes.push(kafka.produce(topic, { key: 'other', value: String(call) }))
  }
  await Promise.all(sends)
  const acked = await Promise.all(publishes)
  const records = await readRecords(t, topic, 1 + CALLS * EACH + CALLS)
  const batched = records.filter(r => r.key?.toString() === 'one').sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)))
  t.same(batched.map(r => r.value!.toString()), Array.from({ length: CALLS * EACH }, (_v, n) => `${Math.floor(n / EACH)}:${n % EACH}`), 'the batches are in the partition in the order of the calls, each in its own order')
  const offsets = acked.map(a => BigInt(a.offset))
  t.ok(offsets.every((o, n) => n === 0 || o > offsets[n - 1]!), 'the publishes among them too')
})

test('the shared producer sends one request at a time per topic, whoever sends it: a request the client retries is never overtaken', async t => {
  // the client retries a request (NOT_LEADER while a leader moves) after a delay; one sent behind it and
  // written first made the broker refuse the retry as OUT_OF_ORDER_SEQUENCE, and the client wrote it again
  // with a new producer id, after the later records (producer.ts's head)
  const topic = unique('producer-one-request')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-producer-one-request' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const producer = new SharedProducer({ brokers: kafkaBrokers(), clientId: 'test-producer-one-request', connectionTimeoutMs: 5000, requestTimeoutMs: 30_000, retries: 4, initialRetryMs: 100, maxRetryMs: 2000 })
  t.teardown(() => producer.close())
  await producer.connect()
  const sends = Array.from({ length: 20 }, (_v, call) => producer.send([{ topic, messages: Array.from({ length: 10 }, (_w, i) => ({ value: `${call}:${i}` })) }]))
  const acks = await Promise.all(sends)
  t.equal(producer.peakInFlightPerTopic, 1, 'never more than one request in flight to the topic')
  t.same(acks.map(a => a[0]!.baseOffset), Array.from({ length: 20 }, (_v, call) => String(call * 10)), 'each call\'s records where its turn puts them')

  // per topic: a topic Kafka does not have fails only after the client's metadata retries, and holds no other topic
  const unknown = producer.send([{ topic: unique('producer-no-such-topic'), messages: [{ value: 'x' }] }]).then(() => -1, () => Date.now())
  await producer.send([{ topic, messages: [{ value: 'meanwhile' }] }])
  const writtenAt = Date.now()
  const refusedAt = await unknown
  t.ok(refusedAt > writtenAt, `a request to another topic was written ${refusedAt - writtenAt} ms before the unknown topic's was refused`)
})

test('a publish is acked only once Kafka has it: at every ack the partition ends past the acked offset', async t => {
  const topic = unique('producer-acked')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-producer-acked' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  // the high watermark of a partition; asked again (at most twice more) when the admin request fails: a
  // fresh topic's partition can answer NOT_LEADER for a moment, and a failed call resets the shared admin
  // under the others in flight (seen in a clean-clone run)
  const highOf = async (partition: number): Promise<bigint> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return BigInt((await kafka.topicOffsets(topic))[partition]!.high)
      } catch (err) {
        if (attempt === 3) throw err
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }
  const checks: Array<Promise<boolean>> = []
  await Promise.all(Array.from({ length: 60 }, (_v, i) => kafka.produce(topic, { value: String(i) }).then(ack => {
    // asked the moment the ack arrives: the high watermark (what readers may read) is already past it
    const check = highOf(ack.partition).then(high => high > BigInt(ack.offset))
    check.catch(() => {})
    checks.push(check)
  })))
  const past = await Promise.all(checks)
  t.equal(past.filter(Boolean).length, 60, 'every acked record is below its partition\'s high watermark')
})

test('a partition the producer does not know is read again once, then refused without writing elsewhere', async t => {
  const topic = unique('producer-partitions')
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-producer-partitions' })
  const admin = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-producer-partitions-admin' })
  t.teardown(() => Promise.all([kafka.close(), admin.close()]))
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  await kafka.produceBatch(topic, [{ value: 'first', partition: 0 }])
  const err = await kafka.produceBatch(topic, [{ value: 'nowhere', partition: 5 }]).then(() => undefined, e => e as { code?: string })
  t.equal(err?.code, 'SLUICE_KAFKA_UNAVAILABLE', 'partition 5 of 3 is refused')
  // a partition created a moment ago may not answer ListOffsets yet ("This server is not the leader for that
  // topic-partition", 1 run in 8 here): topicOffsets asks again itself
  const ends = await kafka.topicOffsets(topic)
  t.same(ends.map(e => e.high), ['1', '0', '0'], 'and nothing was written (the client alone would have written it to 5 mod 3)')
  // another client grows the topic (addPartitions waits until the broker's metadata has the 6): this
  // producer's cached metadata does not have partition 5 yet
  await admin.addPartitions(topic, 6)
  await kafka.produceBatch(topic, [{ value: 'there', partition: 5 }])
  const [record] = await readRecords(t, topic, 2).then(rs => rs.filter(r => r.partition === 5))
  t.equal(record?.value?.toString(), 'there', 'once the partition exists, the metadata is read again and the record goes to it')
})
