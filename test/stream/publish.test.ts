// Publishing over /v1/stream: acked only after Kafka acks, with the partition
// and offset at which a plain consumer then reads the record; refused with an
// error naming the id otherwise.
import { test } from 'tap'
import { KafkaClient, type ConsumedRecord } from '@sluice/kafka'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { kafkaBrokers, unique } from '../helpers.ts'

test('an ack carries the partition and offset where a plain consumer reads the record', async t => {
  const topic = unique('publish')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())

  const acks = []
  for (let i = 0; i < 6; i++) {
    client.send({ op: 'publish', id: `p${i}`, topic, key: `k${i % 3}`, value: { n: i, big: '12345678901234567890' }, headers: { source: 'test' } })
    acks.push(await client.next(f => f.id === `p${i}`))
  }
  for (const [i, ack] of acks.entries()) {
    t.match(ack, { op: 'ack', id: `p${i}`, topic, partition: Number, offset: String }, `ack ${i}`)
  }

  const reader = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-plain-consumer' })
  t.teardown(() => reader.close())
  const seen: ConsumedRecord[] = []
  await new Promise<void>(resolve => {
    const consumer = reader.consumer({
      groupId: unique('plain'),
      topics: [topic],
      fromBeginning: true,
      async onBatch (batch) {
        seen.push(...batch.records)
        if (seen.length >= 6) resolve()
      }
    })
    t.teardown(() => consumer.stop())
    consumer.start()
  })
  for (const [i, ack] of acks.entries()) {
    const record = seen.find(r => r.partition === ack.partition && r.offset === ack.offset)
    t.ok(record, `record ${i} is where its ack says`)
    t.same(JSON.parse(record?.value?.toString() ?? 'null'), { n: i, big: '12345678901234567890' })
    t.equal(record?.key?.toString(), `k${i % 3}`)
    t.equal(record?.headers.source?.toString(), 'test')
  }
})

test('publishes sent without waiting are written in the order they were sent', async t => {
  const topic = unique('publish-order')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())
  const COUNT = 200
  for (let i = 0; i < COUNT; i++) client.send({ op: 'publish', id: `o${i}`, topic, value: i })
  await client.next(f => f.id === `o${COUNT - 1}`, 60_000)
  await new Promise(resolve => setTimeout(resolve, 200))
  const acks = client.frames.filter(f => f.op === 'ack')
  t.equal(acks.length, COUNT, 'every publish acked')
  const offsets = acks.map(a => Number(a.offset))
  const ids = acks.map(a => Number(String(a.id).slice(1)))
  t.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'acks come in sending order')
  t.ok(ids.every((id, i) => i === 0 || offsets[i]! > offsets[i - 1]!), 'and so do the offsets: Kafka holds them in sending order')
})

test('publish errors name the id: unknown topic, forbidden, too large, wrong value type', async t => {
  const topic = unique('publish-err')
  const textTopic = unique('publish-text')
  const access = {
    authorize (identity: never, action: string, name: string) {
      if (name === 'forbidden.topic') return { allowed: false as const, reason: 'no rule allows it' }
      return { ...allowAll().authorize(identity, action as 'publish', name), ...(name === textTopic ? { encoding: 'text' as const } : {}) }
    },
    onChange () { return () => {} }
  }
  const { app, url, kafka } = await streamApp({ access })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }, { topic: textTopic, config: { 'max.message.bytes': '2000' } }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())

  client.send({ op: 'publish', id: 'missing', topic: unique('nope'), value: 1 })
  t.match(await client.next(f => f.id === 'missing', 20_000), { op: 'error', code: 'UNKNOWN_TOPIC' })

  client.send({ op: 'publish', id: 'forbidden', topic: 'forbidden.topic', value: 1 })
  t.match(await client.next(f => f.id === 'forbidden'), { op: 'error', code: 'FORBIDDEN' })

  client.send({ op: 'publish', id: 'big', topic: textTopic, value: 'x'.repeat(5000) })
  t.match(await client.next(f => f.id === 'big', 20_000), { op: 'error', code: 'TOO_LARGE' })

  client.send({ op: 'publish', id: 'type', topic: textTopic, value: { not: 'text' } })
  t.match(await client.next(f => f.id === 'type'), { op: 'error', code: 'BAD_REQUEST' })

  client.send({ op: 'publish', id: 'ok', topic, value: 'still works' })
  t.match(await client.next(f => f.id === 'ok'), { op: 'ack', topic })
})
