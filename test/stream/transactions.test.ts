// Topics written by transactional producers (Kafka Streams' exactly-once,
// Flink, Debezium): a client sees the committed records once, in order, and
// none of an aborted transaction's, live, resumed from a cursor (window and
// Kafka), from earliest and in group mode. Each commit or abort leaves a marker
// that takes an offset and is no record of anyone's.
import { test, type Test } from 'tap'
import { Producer, ProduceAcks, stringSerializers } from '@platformatic/kafka'
import { streamApp } from '../harness/stream.ts'
import { Client, type Frame } from '../harness/client.ts'
import { kafkaBrokers, unique } from '../helpers.ts'

const PARTITIONS = 2

async function transactional (t: Test, id: string): Promise<Producer<string, string, string, string>> {
  const producer = new Producer({ clientId: id, bootstrapBrokers: kafkaBrokers(), serializers: stringSerializers, idempotent: true, transactionalId: id, acks: ProduceAcks.ALL })
  t.teardown(() => producer.close())
  return producer
}

test('committed records reach every reader once and in order, aborted ones none', async t => {
  const topic = unique('txn')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])

  const live = new Client(`${url}/v1/stream?topics=${topic}`)
  await live.opened
  t.teardown(() => live.close())
  const subscribed = await live.next(f => f.op === 'subscribed')

  const producer = await transactional(t, unique('txn-producer'))
  const committed: string[] = []
  for (let round = 0; round < 3; round++) {
    const aborted = await producer.beginTransaction()
    await aborted.send({ messages: [0, 1, 2, 3].map(i => ({ topic, partition: i % PARTITIONS, value: `"aborted ${round}.${i}"` })) })
    await aborted.abort()
    const kept = await producer.beginTransaction()
    const values = [0, 1, 2, 3].map(i => `"committed ${round}.${i}"`)
    await kept.send({ messages: values.map((value, i) => ({ topic, partition: i % PARTITIONS, value })) })
    await kept.commit()
    committed.push(...values)
  }
  // a plain producer's record after the markers
  await kafka.produce(topic, { value: Buffer.from('"plain"'), partition: 0 })
  committed.push('"plain"')

  const partitionOf = (i: number): number => i === committed.length - 1 ? 0 : i % PARTITIONS
  /** `frames` are the committed records from the `from`th on, once each, in order per partition */
  const expected = (frames: Frame[], from = 0): void => {
    const values = frames.map(m => JSON.stringify(m.value))
    const want = committed.slice(from)
    t.same(values.filter(v => v.includes('aborted')), [], 'no record of an aborted transaction')
    t.same([...values].sort(), [...want].sort(), 'every committed record, once')
    for (let p = 0; p < PARTITIONS; p++) {
      const mine = frames.filter(m => m.partition === p).map(m => JSON.stringify(m.value))
      t.same(mine, want.filter((_, i) => partitionOf(i + from) === p), `partition ${p} in the order committed`)
    }
  }

  expected(await live.waitMessages(committed.length, 15_000, topic))

  // resumed from the cursor of the subscribed frame: served from the window
  const resumed = new Client(`${url}/v1/stream?topics=${topic}&from=${encodeURIComponent(subscribed.cursor as string)}`)
  await resumed.opened
  t.teardown(() => resumed.close())
  expected(await resumed.waitMessages(committed.length, 15_000, topic))

  // earliest on a node that never read the topic: read from Kafka
  const other = await streamApp()
  t.teardown(() => other.app.close())
  const earliest = new Client(`${other.url}/v1/stream?topics=${topic}&from=earliest`)
  await earliest.opened
  t.teardown(() => earliest.close())
  expected(await earliest.waitMessages(committed.length, 15_000, topic))

  // a client that received the first round resumes past its last records: its cursor names the
  // offsets of the commit markers, which are no records; from the window and from Kafka (the
  // other node's window starts where its live feed did, after all of it)
  const firstRound = live.messages(topic).filter(m => String(m.value).startsWith('committed 0.'))
  t.equal(firstRound.length, 4)
  const cursor = `${topic}@` + [0, 1].map(p => `${p}:${BigInt(firstRound.filter(m => m.partition === p).at(-1)!.offset as string) + 1n}`).join(',')
  const afterMarkers: Client[] = []
  for (const [where, base] of [['window', url], ['Kafka', other.url]] as const) {
    const after = new Client(`${base}/v1/stream?topics=${topic}&from=${encodeURIComponent(cursor)}`)
    await after.opened
    t.teardown(() => after.close())
    t.comment(`resumed from ${cursor}, ${where}`)
    expected(await after.waitMessages(committed.length - 4, 15_000, topic), 4)
    afterMarkers.push(after)
  }

  // group mode reads through a consumer group
  const group = new Client(`${other.url}/v1/stream?topics=${topic}&group=${unique('txn-group')}&from=earliest`)
  await group.opened
  t.teardown(() => group.close())
  expected(await group.waitMessages(committed.length, 30_000, topic))

  await new Promise(resolve => setTimeout(resolve, 300))
  for (const [name, client] of [['live', live], ['resumed', resumed], ['earliest', earliest], ['group', group]] as const) {
    t.equal(client.messages(topic).length, committed.length, `${name}: nothing more arrived`)
  }
  for (const [i, client] of afterMarkers.entries()) t.equal(client.messages(topic).length, committed.length - 4, `resumed past the markers (${i === 0 ? 'window' : 'Kafka'}): nothing more arrived`)
})

test('a transaction still open holds its partition\'s later records until it ends, then they come in offset order', async t => {
  const topic = unique('txn-open')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const live = new Client(`${url}/v1/stream?topics=${topic}`)
  await live.opened
  t.teardown(() => live.close())
  await live.next(f => f.op === 'subscribed')

  const producer = await transactional(t, unique('txn-open-producer'))
  const open = await producer.beginTransaction()
  await open.send({ messages: [{ topic, partition: 0, value: '"in the transaction"' }] })
  await kafka.produce(topic, { value: Buffer.from('"after it"'), partition: 0 })
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.same(live.messages(topic).map(m => m.value), [], 'read-committed: nothing past the open transaction yet')
  await open.commit()
  const got = await live.waitMessages(2, 15_000, topic)
  t.same(got.map(m => m.value), ['in the transaction', 'after it'], 'both, in offset order, once it committed')
})
