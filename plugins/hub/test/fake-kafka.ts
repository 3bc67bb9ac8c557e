// A Kafka client that only hands the hub's live consumer batches made by hand:
// for tests of the hub's pure logic (dispatch, lag, admission). The suites in
// test/ run the hub against the real broker.
import type { ConsumedRecord, ConsumerOptions, KafkaClient, RecordBatch, TopicConsumer } from '@sluice/kafka/core'

/** `high`: partition 0's high watermark when the hub's consumer starts */
export function fakeKafka (high = '0'): { kafka: KafkaClient, batch (b: Omit<RecordBatch, 'topic'>): Promise<void> } {
  let onBatch: ConsumerOptions['onBatch'] | undefined
  const kafka = {
    async topicOffsets () { return [{ partition: 0, low: '0', high }] },
    consumer (options: ConsumerOptions): TopicConsumer {
      onBatch = options.onBatch
      return { groupId: options.groupId, async start () {}, async stop () {}, pause () {}, resume () {}, seek () {}, async commit () {} }
    }
  }
  return { kafka: kafka as unknown as KafkaClient, batch: b => onBatch!({ topic: 't', ...b }) }
}

/** records [from, to) of topic t, partition 0; each value is its offset */
export function records (from: number, to: number): ConsumedRecord[] {
  return Array.from({ length: to - from }, (_v, i) => ({ topic: 't', partition: 0, offset: String(from + i), timestamp: '0', key: null, value: Buffer.from(String(from + i)), headers: {} }))
}
