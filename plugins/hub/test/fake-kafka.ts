// A Kafka client that only hands the hub's readers and consumers batches made by hand:
// for tests of the hub's pure logic (dispatch, lag, admission, waits). The
// suites in test/ run the hub against the real broker.
import type { ConsumedRecord, ConsumerOptions, KafkaClient, PartitionOffsets, ReaderOptions, RecordBatch, TopicConsumer, TopicReader } from '@sluice/kafka'
import { nativeFormat } from '../src/frame.ts'
import type { Outlet } from '../src/outlet.ts'

export interface FakeKafka {
  kafka: KafkaClient
  /** a batch to the hub's live reader of topic t */
  batch (b: Omit<RecordBatch, 'topic'>): Promise<void>
  /**
   * A batch to the newest reader of a kind: 'sluice-hub.' the live reader (it follows new
   * partitions), 'sluice-catchup.' a catch-up reader; else the newest group consumer whose
   * group id starts with `group` (a group socket's own group).
   */
  batchTo (group: string, b: Omit<RecordBatch, 'topic'>): Promise<void>
}

/** `high`: partition 0's high watermark when the hub's consumer starts */
export function fakeKafka (high = '0'): FakeKafka {
  const consumers: ConsumerOptions[] = []
  const readers: ReaderOptions[] = []
  const kafka = {
    async topicOffsets () { return [{ partition: 0, low: '0', high }] },
    reader (options: ReaderOptions): TopicReader {
      readers.push(options)
      return {
        topic: options.topic,
        async start (positions) {
          return positions === 'latest' ? new Map([[0, BigInt(high)]]) : new Map([...positions].map(([p, o]) => [p, BigInt(o)]))
        },
        async stop () {},
        pause () {},
        resume () {},
        seek () {}
      }
    },
    consumer (options: ConsumerOptions): TopicConsumer {
      consumers.push(options)
      return { groupId: options.groupId, async start () {}, async stop () {}, pause () {}, resume () {}, seek () {}, async commit () {} }
    },
    groupReader (options: ConsumerOptions): TopicConsumer {
      return kafka.consumer(options)
    }
  }
  const batchTo = async (group: string, b: Omit<RecordBatch, 'topic'>) => {
    if (group === 'sluice-hub.' || group === 'sluice-catchup.') {
      const live = group === 'sluice-hub.'
      const reader = readers.findLast(r => (r.followNewPartitions ?? false) === live)
      if (!reader) throw new Error(`no ${live ? 'live' : 'catch-up'} reader`)
      return reader.onBatch({ topic: 't', ...b })
    }
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

/** A socket that keeps up: every frame written goes to `written`; `closed` is the test's to set. */
export function fakeOutlet (id: string, written: Buffer[] = []): Outlet & { closed: boolean } {
  return {
    id,
    format: nativeFormat,
    maxQueueBytes: 1 << 20,
    closed: false,
    queuedBytes: () => 0,
    drained: async () => {},
    lagging () {},
    evict () {},
    write (frame: Buffer) { written.push(frame) }
  }
}

/** Makes the fake's topicOffsets answer (partition 0: 0..10) when the test says, or fail; counts the asks. */
export function holdOffsets (kafka: KafkaClient): { answer (): void, fail (err: Error): void, asked (): number } {
  const fake = kafka as unknown as { topicOffsets: () => Promise<PartitionOffsets[]> }
  let answer!: () => void
  let fail!: (err: Error) => void
  let asked = 0
  fake.topicOffsets = () => {
    asked++
    return new Promise<PartitionOffsets[]>((resolve, reject) => {
      answer = () => resolve([{ partition: 0, low: '0', high: '10' }])
      fail = reject
    })
  }
  return { answer: () => answer(), fail: err => fail(err), asked: () => asked }
}
