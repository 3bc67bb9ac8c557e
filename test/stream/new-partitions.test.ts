// A topic that grows partitions while sockets are subscribed: the hub's
// consumer finds them on its next metadata refresh and delivers their records.
import { test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

test('partitions added to a subscribed topic are picked up', async t => {
  const topic = unique('grow')
  const { app, url, kafka } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const c = new Client(`${url}/v1/stream?topics=${topic}`)
  t.teardown(() => c.close())
  await c.next(f => f.op === 'subscribed')
  await kafka.produceBatch(topic, [{ value: JSON.stringify({ n: 0 }), partition: 0 }])
  await c.waitMessages(1, 20_000)

  await kafka.addPartitions(topic, 3)
  // a producer that has the new metadata (kafkajs' own producer would refuse until its cache expires)
  const writer = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-grow-writer' })
  t.teardown(() => writer.close())
  // records keep arriving on every partition until the consumer has them all (metadata refresh: 2 s here)
  let n = 1
  await eventually(async () => {
    await writer.produceBatch(topic, [1, 2].map(partition => ({ value: JSON.stringify({ n: n++ }), partition })))
    return new Set(c.messages().map(m => m.partition)).size === 3
  }, 60_000, 'records from the new partitions')
  const fromNew = c.messages().filter(m => m.partition !== 0)
  t.ok(fromNew.length > 0, 'records of the new partitions were delivered')
  t.equal(fromNew[0]?.offset, '0', 'from the start of the new partition: nothing written to it is missed')

  // a producer whose metadata predates the new partitions reads it again before it gives up: the record is written, not lost
  await kafka.produceBatch(topic, [{ value: JSON.stringify({ n: 'stale' }), partition: 2 }])
  const delivered = () => c.messages().some(m => m.partition === 2 && (m.value as { n: unknown }).n === 'stale')
  await eventually(delivered, 20_000, 'the stale producer\'s record')
  t.ok(delivered(), 'a record for a partition the producer did not know yet is written after a metadata refresh, and delivered')
  // a partition the topic does not have is an error, never a silent loss
  const missing = await kafka.produceBatch(topic, [{ value: 'x', partition: 7 }]).then(() => undefined, (e: { code: string }) => e)
  t.equal(missing?.code, 'SLUICE_KAFKA_UNAVAILABLE', 'a record for a partition the topic does not have is an error')
})
