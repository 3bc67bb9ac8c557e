// A Kafka client that only hands the hub's consumers batches made by hand:
// for tests of the hub's pure logic (dispatch, lag, admission, waits). The
// suites in test/ run the hub against the real broker.
import type { ConsumedRecord, ConsumerOptions, KafkaClient, RecordBatch, TopicConsumer } from '@sluice/kafka/core'

export interface FakeKafka {
  kafka: KafkaClient
  /** a batch to the hub's live consumer of topic t */
  batch (b: Omit<RecordBatch, 'topic'>): Promise<void>
  /** a batch to the newest consumer whose group id starts with `group`: 'sluice-catchup.' for a catch-up reader, a group socket's own group */
  batchTo (group: string, b: Omit<RecordBatch, 'topic'>): Promise<void>
}

/** `high`: partition 0's high watermark when the hub's consumer starts */
export function fakeKafka (high = '0'): FakeKafka {
  const consumers: ConsumerOptions[] = []
  const kafka = {
    async topicOffsets () { return [{ partition: 0, low: '0', high }] },
    consumer (options: ConsumerOptions): TopicConsumer {
      consumers.push(options)
      return { groupId: options.groupId, async start () {}, async stop () {}, pause () {}, resume () {}, seek () {}, async commit () {} }
    }
  }
  const batchTo = (group: string, b: Omit<RecordBatch, 'topic'>) => {
    const consumer = consumers.findLast(c => c.groupId.startsWith(group))
    if (!consumer) throw new Error(`no consumer of a group ${group}*`)
    return consumer.onBatch({ topic: 't', ...b })
  }
  return { kafka: kafka as unknown as KafkaClient, batch: b => batchTo('sluice-hub.', b), batchTo }
}

/** records [from, to) of topic t, partition 0; each value is its offset */
export function records (from: number, to: number): ConsumedRecord[] {
  return Array.from({ length: to - from }, (_v, i) => ({ topic: 't', partition: 0, offset: String(from + i), timestamp: '0', key: null, value: Buffer.from(String(from + i)), headers: {} }))
}
