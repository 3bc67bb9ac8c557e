// A topic's live feed on this node and the subscriptions it serves, with the
// positions that make delivery gap-free and duplicate-free: per partition, the
// offset the feed dispatches next and, per subscription, the offset its socket
// is to receive next.
import type { RecordBatch, TopicReader } from '@sluice/kafka'
import type { Positions } from './cursor.ts'
import { cacheKeyOf } from './framed-batch.ts'
import type { Outlet, SubscriptionTerms } from './outlet.ts'
import type { TopicWindow } from './window.ts'

export class Subscription {
  readonly outlet: Outlet
  readonly topic: string
  readonly terms: SubscriptionTerms
  readonly cacheKey: string
  /** per partition, the next offset this socket is to receive */
  readonly next: Positions = new Map()
  /** partitions still being replayed, by a catch-up reader or from the window: the live feed skips them */
  readonly catchingUp = new Set<number>()
  /** set once the socket overflowed: records not delivered since */
  lag: { dropped: number } | undefined
  /** catch-up readers: one per resume, and one per partition whose window part went while the socket was full */
  readonly readers = new Set<TopicReader>()
  ended = false

  constructor (outlet: Outlet, topic: string, terms: SubscriptionTerms) {
    this.outlet = outlet
    this.topic = topic
    this.terms = terms
    this.cacheKey = cacheKeyOf(outlet.format.key, terms.encoding)
  }
}

export class TopicFeed {
  readonly topic: string
  /** per partition, the offset of the next record the hub will dispatch */
  readonly live: Positions = new Map()
  /** per partition, the highest high watermark seen: at start, then in every fetched batch (no extra request) */
  readonly high: Positions = new Map()
  readonly subs = new Set<Subscription>()
  /** the records this feed dispatched lately, per partition, with their frames */
  readonly window: TopicWindow
  /** the topic's live reader (group-less) */
  consumer: TopicReader | undefined
  ready: Promise<void> | undefined
  graceTimer: NodeJS.Timeout | undefined

  constructor (topic: string, window: TopicWindow) {
    this.topic = topic
    this.window = window
  }
}

/** Keeps the highest high watermark seen for a partition: one BigInt per batch, never per record. */
export function noteHighWatermark (feed: TopicFeed, batch: RecordBatch): void {
  const high = BigInt(batch.highWatermark)
  if (high > (feed.high.get(batch.partition) ?? -1n)) feed.high.set(batch.partition, high)
}

/** The offsets of a batch's records, as BigInts: once per batch, compared with positions many times. */
export function offsetsOf (batch: RecordBatch): bigint[] {
  const records = batch.records
  const count = records.length
  const offsets = new Array<bigint>(count)
  for (let i = 0; i < count; i++) offsets[i] = BigInt(records[i]!.offset)
  return offsets
}
