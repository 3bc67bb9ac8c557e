// Group mode: a socket is one member of a Kafka consumer group (on any node);
// each record goes to one member. Unlike the hub's feeds, a member's reader is
// its socket's alone: it writes without drops, waiting for the socket, and
// commits the offsets once their frames are written. It alone joins a real
// group (and so waits out the broker's group.initial.rebalance.delay.ms).
import type { ConsumedRecord, KafkaClient, Logger, TopicConsumer } from '@sluice/kafka'
import { admitted, roomFor, type Outlet, type SubscriptionTerms } from './outlet.ts'
import type { HubStats } from './stats.ts'

interface Member {
  reader: TopicConsumer
  topics: number
  product: string | undefined
}

export class GroupMembers {
  readonly #kafka: KafkaClient
  readonly #log: Logger
  readonly #stats: HubStats
  readonly #members = new Map<Outlet, Member>()

  constructor (kafka: KafkaClient, log: Logger, stats: HubStats) {
    this.#kafka = kafka
    this.#log = log
    this.#stats = stats
  }

  /** Joins `groupId` for `outlet`; resolves once its reader started (joined the group). `start`: as Hub.joinGroup's. */
  async join (outlet: Outlet, groupId: string, topics: string[], terms: SubscriptionTerms, start: 'earliest' | 'latest'): Promise<void> {
    if (outlet.admitReady) await outlet.admitReady
    // closed while its delivery limit waited for its first tokens: remove() found no member then,
    // and one made now would read the group for good (subscribe-close-race.test.ts)
    if (outlet.closed) return
    const reader = this.#kafka.groupReader({
      groupId,
      topics,
      fromBeginning: start === 'earliest',
      autoCommit: false,
      onBatch: async batch => {
        let last: ConsumedRecord | undefined
        let written: Promise<void> = Promise.resolve()
        for (const record of batch.records) {
          if (outlet.closed) return
          const frame = outlet.format.frame(record, terms.encoding)
          if (frame) {
            await roomFor(outlet, frame.length)
            if (!await admitted(outlet, frame.length)) return
            written = new Promise((resolve, reject) => outlet.write(frame, err => err ? reject(err) : resolve()))
            this.#stats.deliveries++
            outlet.delivered?.(1, frame.length)
          }
          last = record
        }
        if (!last) return
        // socket writes complete in order: the last one done means all are
        await written
        await reader.commit([{ topic: last.topic, partition: last.partition, offset: last.offset }])
      },
      onCrash: (error, restarting) => this.#log.warn({ err: error, groupId, restarting }, 'group reader crashed')
    })
    const member: Member = { reader, topics: topics.length, product: terms.product }
    this.#members.set(outlet, member)
    this.#stats.groupSessions++
    try {
      await reader.start()
    } finally {
      // the socket closed while the reader was joining: remove() found it not yet
      // started, and a consumer stopped mid-join keeps its broker connection
      if (outlet.closed && this.#members.get(outlet) !== member) await reader.stop().catch(() => {})
    }
  }

  /** The socket closed: it leaves its group. */
  remove (outlet: Outlet): void {
    const member = this.#members.get(outlet)
    if (!member) return
    this.#members.delete(outlet)
    this.#stats.groupSessions--
    member.reader.stop().catch(err => this.#log.warn({ err }, 'group reader did not stop cleanly'))
  }

  /** Each member's product and how many topics its group reads (metrics count subscriptions by product). */
  * subscriptions (): Iterable<{ product: string | undefined, topics: number }> {
    for (const { product, topics } of this.#members.values()) yield { product, topics }
  }

  /** Stops every member's reader; resolves with their stops. */
  close (): Array<Promise<void>> {
    const stopping = [...this.#members.values()].map(member => member.reader.stop())
    this.#members.clear()
    return stopping
  }
}
