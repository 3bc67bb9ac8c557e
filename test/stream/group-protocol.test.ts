// Group mode joins by KIP-848 (Kafka 4's consumer protocol) where the broker offers it:
// the broker's ConsumerGroupDescribe knows the socket's group, which it does only for
// consumer-protocol groups (a kafkajs classic group answers GROUP_ID_NOT_FOUND there).
import { test } from 'tap'
import { consumerGroupState } from '@sluice/kafka/group-reader'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

test('a group-mode socket is a member of a KIP-848 group, gets what is produced once it owns the partitions, and leaves the group when it closes', async t => {
  const topic = unique('group.protocol')
  const group = unique('modern')
  const a = await streamApp({ access: allowAll(), nodeId: 'node-a' })
  t.teardown(() => a.app.close())
  await a.kafka.ensureTopics([{ topic, partitions: 2 }])
  const connection = { brokers: kafkaBrokers(), clientId: unique('group-protocol-test'), connectionTimeoutMs: 3000, requestTimeoutMs: 10_000 }

  const c = new Client(`${a.url}/v1/stream?topics=${topic}&group=${group}`)
  t.teardown(() => c.close())
  await c.next(f => f.op === 'subscribed')
  const groupId = (await a.kafka.listGroups()).find(g => g.endsWith(`.${group}`))
  t.ok(groupId, 'the group exists on the broker')
  await eventually(async () => (await consumerGroupState(connection, groupId!))?.state === 'Stable', 30_000, 'a stable consumer-protocol group')
  t.equal((await consumerGroupState(connection, groupId!))?.members.length, 1, 'with the socket as its one member')

  await a.kafka.produceBatch(topic, [{ value: JSON.stringify({ n: 1 }), partition: 0 }, { value: JSON.stringify({ n: 2 }), partition: 1 }])
  await eventually(() => c.messages().length >= 2, 20_000, 'both records delivered')
  t.same(c.messages().map(f => (f.value as { n: number }).n).sort(), [1, 2])

  c.close()
  await eventually(async () => (await consumerGroupState(connection, groupId!))?.members.length === 0, 20_000, 'the member left with its socket')
})
