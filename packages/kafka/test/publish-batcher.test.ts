// The publish batcher's bookkeeping, with a fake producer that keeps a log per
// topic-partition as a broker would: each caller's offset must be where its own
// record sits in that log. The real broker is in test/publish-batcher-kafka.test.ts.
import { test } from 'tap'
import { PublishBatcher, type PartitionAck, type TopicMessages } from '../src/publish-batcher.ts'
import { classifyError } from '../src/kafka.ts'

interface FakeOptions {
  partitions?: number
  /** topics the fake broker has */
  topics?: string[]
  /** partitions the fake leaves out of its answer, as kafkajs does for a partition it has no metadata for */
  skip?: number
  /** held before answering */
  hold?: (request: TopicMessages[]) => Promise<void>
}

function fakeProducer (options: FakeOptions = {}) {
  const partitions = options.partitions ?? 3
  const logs = new Map<string, string[][]>()
  const requests: TopicMessages[][] = []
  let inFlight = 0
  let maxInFlight = 0
  const send = async (request: TopicMessages[]): Promise<PartitionAck[]> => {
    requests.push(request)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    try {
      await options.hold?.(request)
      for (const { topic } of request) {
        if (options.topics && !options.topics.includes(topic)) throw Object.assign(new Error('This server does not host this topic-partition'), { type: 'UNKNOWN_TOPIC_OR_PARTITION' })
      }
      const acks: PartitionAck[] = []
      for (const { topic, messages } of request) {
        // 5 records already in each partition: offsets do not start at 0
        if (!logs.has(topic)) logs.set(topic, Array.from({ length: partitions }, () => ['old', 'old', 'old', 'old', 'old']))
        const log = logs.get(topic)!
        const byPartition = new Map<number, string[]>()
        for (const message of messages) {
          // as kafka.ts's partitioner: keep a partition already set, else choose and pin it
          message.partition ??= message.key ? Buffer.from(message.key).reduce((a, b) => a + b, 0) % partitions : 0
          if (!byPartition.has(message.partition)) byPartition.set(message.partition, [])
          byPartition.get(message.partition)!.push(String(message.value))
        }
        for (const [partition, values] of byPartition) {
          if (partition === options.skip) continue
          acks.push({ topicName: topic, partition, baseOffset: String(log[partition]!.length) })
          log[partition]!.push(...values)
        }
      }
      return acks
    } finally {
      inFlight--
    }
  }
  return { send, logs, requests, maxInFlight: () => maxInFlight }
}

test('each record of a shared request is told its own partition and offset, where the log holds it', async t => {
  const fake = fakeProducer()
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  // the first record of each topic goes alone (the topic is not known yet)
  await Promise.all([batcher.publish('a', { key: 'k', value: 'first-a' }), batcher.publish('b', { value: 'first-b' })])
  const calls = []
  for (let i = 0; i < 300; i++) {
    const topic = i % 3 === 0 ? 'b' : 'a'
    calls.push(batcher.publish(topic, { key: i % 2 === 0 ? null : `key-${i % 7}`, value: `${topic}-${i}` }).then(m => ({ i, topic, m })))
  }
  const answers = await Promise.all(calls)
  for (const { i, topic, m } of answers) {
    const held = fake.logs.get(topic)![m.partition]![Number(m.offset)]
    if (held !== `${topic}-${i}`) t.fail(`record ${i} of ${topic} is not at ${m.partition}/${m.offset} (found ${held})`)
    t.equal(m.topic, topic)
  }
  t.ok(answers.some(a => a.m.partition !== 0), 'records reached several partitions')
  // 300 records at once: two requests of at most 256 (after the two first ones), not 300
  t.equal(fake.requests.length, 4, `${fake.requests.length} requests`)
  t.same(fake.requests[2]!.map(r => r.topic).sort(), ['a', 'b'], 'both topics in one request')
  t.equal(fake.maxInFlight(), 2, 'the lane sends one request at a time (the two first records went beside it, as topics unknown until then)')
  // each partition holds its records in the order they were handed in
  for (const [topic, log] of fake.logs) {
    for (const partition of log) {
      const order = partition.filter(v => v !== 'old' && !v.startsWith('first')).map(v => Number(v.split('-')[1]))
      t.same(order, [...order].sort((x, y) => x - y), `${topic}: a partition keeps the order`)
    }
  }
})

test('records that come while a request is out go in the next one, in order', async t => {
  let release: () => void = () => {}
  let held = 0
  const fake = fakeProducer({ hold: () => held++ === 1 ? new Promise(resolve => { release = resolve }) : Promise.resolve() })
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  await batcher.publish('t', { value: 'v-0' })
  const first = batcher.publish('t', { value: 'v-1' })
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
  const rest = Array.from({ length: 50 }, (_, i) => batcher.publish('t', { value: `v-${i + 2}` }))
  t.equal(fake.requests.length, 2, 'the lane waits for the request out')
  t.equal(batcher.waiting, 50)
  release()
  const metas = await Promise.all([first, ...rest])
  t.equal(fake.requests.length, 3, 'the 50 that waited went in one request')
  t.same(metas.map(m => Number(m.offset)), Array.from({ length: 51 }, (_, i) => 6 + i), 'offsets follow the order they were handed in')
})

test('a record its partition is left out of the answer for is never reported written', async t => {
  const fake = fakeProducer({ skip: 2 })
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  await batcher.publish('t', { value: 'warm' })
  const outcomes = await Promise.allSettled([
    batcher.publish('t', { value: 'a', partition: 1 }),
    batcher.publish('t', { value: 'b', partition: 2 }),
    batcher.publish('t', { value: 'c', partition: 1 })
  ])
  t.match(outcomes[0], { status: 'fulfilled', value: { partition: 1, offset: '5' } })
  t.match(outcomes[1], { status: 'rejected', reason: { code: 'SLUICE_KAFKA_UNAVAILABLE' } })
  t.match(outcomes[2], { status: 'fulfilled', value: { partition: 1, offset: '6' } })
  t.equal(fake.requests.length, 2, 'the three shared one request')
})

test('a topic Kafka does not have fails its own records and never holds the others', async t => {
  // the fake takes 300 ms to refuse a missing topic, as kafkajs retries metadata first
  const fake = fakeProducer({
    topics: ['good'],
    hold: request => request.some(r => r.topic === 'missing') ? new Promise(resolve => setTimeout(resolve, 300)) : Promise.resolve()
  })
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  await batcher.publish('good', { value: 'warm' })
  const started = Date.now()
  const missing = Array.from({ length: 5 }, (_, i) => batcher.publish('missing', { value: `m-${i}` }).then(() => 'acked', (err: { code: string }) => err.code))
  const good = await Promise.all(Array.from({ length: 20 }, (_, i) => batcher.publish('good', { value: `g-${i}` })))
  t.ok(Date.now() - started < 200, `the good records were acked in ${Date.now() - started} ms, beside the missing topic's first request`)
  t.same(good.map(m => Number(m.offset)), Array.from({ length: 20 }, (_, i) => 6 + i))
  t.same(await Promise.all(missing), Array(5).fill('SLUICE_KAFKA_UNKNOWN_TOPIC'), 'each record of the missing topic is refused with its code')
  t.notOk(fake.requests.some(r => r.length > 1), 'the missing topic never shared a request')
})

test('a large record goes alone, so that a refusal of it is its own', async t => {
  const fake = fakeProducer({
    hold: async request => {
      if (request.some(r => r.messages.some(m => String(m.value).length > 1000))) throw Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE' })
    }
  })
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError, soloBytes: 1000 })
  await batcher.publish('t', { value: 'warm' })
  const outcomes = await Promise.allSettled([
    batcher.publish('t', { value: 'small-1' }),
    batcher.publish('t', { value: 'x'.repeat(2000) }),
    batcher.publish('t', { value: 'small-2' })
  ])
  t.match(outcomes.map(o => o.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.match(outcomes[1], { reason: { code: 'SLUICE_KAFKA_TOO_LARGE' } })
  t.same(fake.requests.slice(1).map(r => r[0]!.messages.length), [1, 1, 1], 'the large record split the run into three requests, in order')
})

test('a shared request never holds more than maxBytes of records', async t => {
  const fake = fakeProducer()
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError, maxBytes: 1000, soloBytes: 500 })
  await batcher.publish('t', { value: 'warm' })
  await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.publish('t', { key: 'k', value: `${i}`.padEnd(299, '.') })))
  t.same(fake.requests.slice(1).map(r => r[0]!.messages.length), [3, 3, 3, 1])
})

test('a topic deleted after it was known fails its shared request, then tries alone again without holding the others', async t => {
  const topics = ['a', 'b']
  const fake = fakeProducer({ topics })
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  await Promise.all([batcher.publish('a', { value: 'warm' }), batcher.publish('b', { value: 'warm' })])
  topics.pop()
  const shared = await Promise.allSettled([batcher.publish('a', { value: 'a-1' }), batcher.publish('b', { value: 'b-1' })])
  // kafkajs does not say which topic it did not find: neither record is blamed for it, both may be sent again
  t.match(shared, [{ status: 'rejected', reason: { code: 'SLUICE_KAFKA_UNAVAILABLE' } }, { status: 'rejected', reason: { code: 'SLUICE_KAFKA_UNAVAILABLE' } }])
  const after = await Promise.allSettled([batcher.publish('a', { value: 'a-2' }), batcher.publish('b', { value: 'b-2' })])
  t.match(after, [{ status: 'fulfilled', value: { topic: 'a' } }, { status: 'rejected', reason: { code: 'SLUICE_KAFKA_UNKNOWN_TOPIC' } }])
  t.same(fake.requests.at(-1)!.map(r => r.topic), ['b'], 'the deleted topic went alone')
})

test('records too large only together: none is told TOO_LARGE, the producer is recovered, and their topics\' records go alone from then on', async t => {
  const requests: TopicMessages[][] = []
  let recovered = 0
  let refuse = true
  const send = async (request: TopicMessages[]): Promise<PartitionAck[]> => {
    requests.push(request)
    for (const { messages } of request) messages.forEach((m, i) => { m.partition = i % 2 })
    if (refuse && request.some(r => r.topic === 'small') && request.reduce((n, r) => n + r.messages.length, 0) > 1) {
      refuse = false
      throw Object.assign(new Error('The request included message batch larger than the configured segment size on the server'), { type: 'MESSAGE_TOO_LARGE' })
    }
    return request.flatMap(({ topic, messages }) => [...new Set(messages.map(m => m.partition!))].map(partition => ({ topicName: topic, partition, baseOffset: '0' })))
  }
  const batcher = new PublishBatcher({ send, classify: classifyError, recover: async () => { recovered++ } })
  await batcher.publish('small', { value: 'warm' })
  await batcher.publish('other', { value: 'warm' })
  requests.length = 0
  const codes = await Promise.all(['small', 'small', 'other'].map(topic => batcher.publish(topic, { value: 'x' }).then(() => 'ok', (err: { code: string }) => err.code)))
  t.same(codes, ['SLUICE_KAFKA_UNAVAILABLE', 'SLUICE_KAFKA_UNAVAILABLE', 'SLUICE_KAFKA_UNAVAILABLE'], 'not acked, and none blamed as too large')
  t.equal(recovered, 1, 'the producer was recovered once, before the next request')
  requests.length = 0
  const again = await Promise.all(['small', 'small', 'other'].map(topic => batcher.publish(topic, { value: 'y' }).then(() => 'ok', () => 'refused')))
  t.same(again, ['ok', 'ok', 'ok'], 'sent again, they are acked')
  t.same(requests.map(r => r.map(m => `${m.topic}:${m.messages.length}`).join(' ')), ['small:1', 'small:1', 'other:1'], 'each record alone')
})

test('a publish with a timeout is answered SLUICE_KAFKA_TIMEOUT when Kafka has not acked it by then, by one timer for all', async t => {
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  const fake = fakeProducer({ hold: () => held })
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  // the batcher's timer does not hold the process open (a real request out holds its socket); the fake holds nothing
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(alive))
  // the topic's first request (its probe) is held: everything after waits behind it
  const started = Date.now()
  const outcome = (p: Promise<unknown>) => p.then(() => 'acked', (err: { code?: string }) => err.code)
  const probe = outcome(batcher.publish('t', { value: 'probe' }, 150))
  const short = Array.from({ length: 50 }, (_v, i) => outcome(batcher.publish('t', { value: `short-${i}` }, 150)))
  const long = outcome(batcher.publish('t', { value: 'long' }, 60_000))
  const none = outcome(batcher.publish('t', { value: 'none' }))
  t.equal(await probe, 'SLUICE_KAFKA_TIMEOUT', 'the record in the held request times out')
  const waited = Date.now() - started
  t.ok(waited >= 140 && waited < 2000, `after its timeout (${waited} ms)`)
  t.same(new Set(await Promise.all(short)), new Set(['SLUICE_KAFKA_TIMEOUT']), 'and so do the ones waiting behind it, with the same timeout')
  release()
  t.equal(await long, 'acked', 'a longer timeout is not cut short by the shorter ones')
  t.equal(await none, 'acked', 'nor is a publish without one')
  await batcher.settled()
  // the timed-out records were still sent (the error says they may be written): the log has all 53
  t.equal(fake.logs.get('t')!.flat().filter(v => v !== 'old').length, 53, 'every record still went to Kafka')
})

test('publishes acked within their timeout are never refused later', async t => {
  const fake = fakeProducer()
  const batcher = new PublishBatcher({ send: fake.send, classify: classifyError })
  const acks = await Promise.all(Array.from({ length: 2000 }, (_v, i) => batcher.publish('t', { value: String(i) }, 50)))
  t.equal(acks.length, 2000, 'all acked')
  // past the timeout of every one of them: none is refused late (a promise settles once; nothing throws)
  await new Promise(resolve => setTimeout(resolve, 120))
  t.pass('no late refusal')
})
