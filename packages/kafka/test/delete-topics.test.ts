// KafkaClient.deleteTopics with the real broker: the topics named go, the others stay.
import { test } from 'tap'
import { KafkaClient } from '../src/kafka.ts'
import { eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

test('deleteTopics deletes the topics named and no other', async t => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-delete-topics' })
  t.teardown(() => kafka.close())
  const gone = [unique('delete-a'), unique('delete-b')]
  const kept = unique('delete-kept')
  await kafka.ensureTopics([...gone, kept].map(topic => ({ topic, partitions: 2 })))
  const before = new Set(await kafka.listTopics())
  t.ok([...gone, kept].every(topic => before.has(topic)), 'the three topics exist')
  await kafka.deleteTopics(gone)
  await eventually(async () => {
    const after = new Set(await kafka.listTopics())
    return gone.every(topic => !after.has(topic))
  }, 15_000, 'the deleted topics leave the broker\'s metadata')
  t.pass('the deleted topics leave the broker\'s metadata')
  t.ok((await kafka.listTopics()).includes(kept), 'the other topic stays')
  await kafka.deleteTopics([])
  t.pass('an empty list asks nothing')
  await kafka.deleteTopics([kept])
})
