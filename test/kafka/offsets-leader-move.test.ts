// KafkaClient.topicOffsets right after a partition's leader moves, on a
// three-node cluster (test/kafka/cluster-harness.ts). kafkajs's admin keeps the
// metadata it read (metadata.max.age.ms, 5 min) and sends ListOffsets to the
// leaders it remembers; the old leader, still up, answers that it no longer
// leads, and the admin gives up at once (no retries: it also answers readiness
// probes). Every caller of topicOffsets (the hub, MQTT's retained messages and
// sessions, `sluice topics`) failed so until that metadata aged out. A node
// that is stopped is another case: kafkajs drops it and reads metadata again.
import t from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { KafkaUnknownTopicError } from '@sluice/kafka/errors'
import { unique } from '../helpers.ts'
import kafkajs from 'kafkajs'
import { startKafkaCluster, waitForPartitions, partitionStates } from './cluster-harness.ts'

/** Moves a partition to these replicas (kafkajs's admin, straight: the gateway's client is under test). */
async function reassign (brokers: string[], topic: string, partition: number, replicas: number[]): Promise<void> {
  const kafka = new kafkajs.Kafka({ brokers, clientId: 'test-reassign', logLevel: kafkajs.logLevel.NOTHING })
  const admin = kafka.admin()
  try {
    await admin.connect()
    await admin.alterPartitionReassignments({ topics: [{ topic, partitionAssignment: [{ partition, replicas }] }] })
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

const PARTITIONS = 3

const { cluster, startMs } = await startKafkaCluster(t)
t.comment(`three-node cluster ready in ${startMs} ms`)

t.test('topicOffsets answers right after the leaders of a topic move to other nodes', async t => {
  const topic = unique('offsets-leader-move')
  const kafka = new KafkaClient({ brokers: cluster.brokers, clientId: unique('offsets-leader-move') })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS, replicationFactor: 3 }])
  await waitForPartitions(cluster.brokers, topic, s => s.length === PARTITIONS && s.every(p => p.leader >= 0 && p.isr.length === 3), 60_000, 'every replica in sync')
  for (let p = 0; p < PARTITIONS; p++) {
    for (let i = 0; i <= p; i++) await kafka.produce(topic, { partition: p, value: `r${p}.${i}` })
  }
  // the shared admin reads the metadata now, and keeps it
  const before = await kafka.topicOffsets(topic)
  t.same(before.map(o => o.high), ['1', '2', '3'], 'the offsets before the move')

  // a reassignment that leaves the leader of partition 0 out: the controller moves its leadership to
  // another replica, and the old leader, still up, no longer leads it (what a rebalance by an operator
  // or Cruise Control does; a restarted node taking back its preferred leaderships does the same)
  const states = await partitionStates(cluster.brokers, topic)
  const old = states[0]!
  const kept = old.isr.filter(n => n !== old.leader)
  await reassign(cluster.brokers, topic, 0, kept)
  const after = await waitForPartitions(cluster.brokers, topic,
    s => s[0]!.leader >= 0 && s[0]!.leader !== old.leader && s[0]!.isr.length === kept.length, 60_000, `partition 0 led by one of ${kept.join(', ')}`)
  t.comment(`partition 0: node ${old.leader} led it, node ${after[0]!.leader} does now; node ${old.leader} is still up`)

  const started = Date.now()
  const offsets = await kafka.topicOffsets(topic)
  t.same(offsets.map(o => o.high), ['1', '2', '3'], `the offsets, asked once right after the move (${Date.now() - started} ms)`)
})

t.test('topicOffsets of a topic that does not exist fails at once with the unknown-topic error, not after retries', async t => {
  const kafka = new KafkaClient({ brokers: cluster.brokers, clientId: unique('offsets-unknown') })
  t.teardown(() => kafka.close())
  await kafka.listTopics()
  const started = Date.now()
  await t.rejects(kafka.topicOffsets(unique('offsets-no-such-topic')), KafkaUnknownTopicError)
  const took = Date.now() - started
  // the retry above is for moved leaders only: 5 s (the call's timeout) would mean it retried this too
  t.ok(took < 2000, `rejected in ${took} ms`)
})
