// A subscription that starts behind the live position (a cursor, `earliest`)
// is given its gap by a reader of its own, then joins the live feed partition
// by partition at the moment it reaches the feed's position: no gap, no
// duplicate. A gap the feed's window covers is written from memory (replay),
// with no Kafka request; the rest is read from Kafka (catchUp), group-less
// (KafkaClient.reader(): no join, no commit, nothing left on the broker). Both
// serve one socket and wait for it instead of dropping.
import type { KafkaClient, Logger, RecordBatch, TopicReader } from '@sluice/kafka'
import { formatPositions, type Positions } from './cursor.ts'
import { writeHeld } from './dispatch.ts'
import { noteHighWatermark, offsetsOf, type Subscription, type TopicFeed } from './feed.ts'
import type { FramedBatch } from './framed-batch.ts'
import { frameBatch } from './framed-batch.ts'
import { waitFor, type Held } from './outlet.ts'
import type { HubStats } from './stats.ts'
import type { WindowRead } from './window.ts'

/** What the catch-up readers need of the hub. */
export interface CatchUpContext {
  readonly kafka: KafkaClient
  readonly log: Logger
  readonly stats: HubStats
  /** true once the hub closed (its windows closed with it) */
  closed (): boolean
  /** ends a subscription: stops its readers, leaves its feed */
  end (sub: Subscription): void
}

export class CatchUp {
  readonly #hub: CatchUpContext

  constructor (hub: CatchUpContext) {
    this.#hub = hub
  }

  /** The socket cannot be given its gap: end the subscription and say where to resume. */
  #giveUp (sub: Subscription): void {
    if (!sub.ended && !sub.outlet.closed) {
      const resume = formatPositions(sub.topic, sub.next)
      this.#hub.end(sub)
      sub.outlet.lagging(sub.topic, 0, resume)
    }
  }

  /**
   * Replays the gap of each partition in `partitions` from the feed's window, then hands it to
   * the live feed: the window reaches the live position, so the socket joins it with no gap and
   * no duplicate. Written on the next turn, after subscribe() resolved, so the subscribed frame
   * goes first. What the socket's queue or delivery budget does not take now waits for them, as
   * a catch-up reader does (this socket's alone: it waits instead of dropping), and is read from
   * the window again; a part the window let go meanwhile is read from Kafka.
   */
  replay (feed: TopicFeed, sub: Subscription, partitions: number[]): void {
    this.#hub.stats.windowReplays++
    const outlet = sub.outlet
    const run = async () => {
      for (const p of partitions) {
        for (;;) {
          // the hub closing closed the windows too: nothing to read from Kafka for either
          if (sub.ended || outlet.closed || this.#hub.closed()) return
          const next = sub.next.get(p) ?? 0n
          const read = feed.window.read(p, next, outlet.format, sub.terms.encoding)
          if (!read || read.end !== (feed.live.get(p) ?? 0n)) {
            this.catchUp(feed, sub, new Map([[p, next]]))
            break
          }
          const held = this.#writeReplay(sub, p, read)
          if (held === undefined) {
            // at the live position, in the same turn as the read: the live feed's from here
            sub.catchingUp.delete(p)
            break
          }
          await waitFor(outlet, held)
        }
      }
    }
    setImmediate(() => {
      run().catch(err => {
        this.#hub.log.warn({ err, topic: feed.topic }, 'replay from the window failed')
        this.#giveUp(sub)
      })
    })
  }

  /**
   * Writes a window read to the socket, one write per batch, as far as its queue room and
   * delivery budget reach. Returns what held it (the next frame's size; the budget or the room),
   * or undefined once the socket has all of it.
   */
  #writeReplay (sub: Subscription, p: number, read: WindowRead): Held | undefined {
    for (const { framed, offsets, first } of read.slices) {
      const count = offsets.length
      const { stop, held } = writeHeld(sub.outlet, framed, first, count, this.#hub.stats)
      sub.next.set(p, stop < count ? offsets[stop]! : offsets[count - 1]! + 1n)
      if (held) return held
    }
    sub.next.set(p, read.end)
    return undefined
  }

  /**
   * Replays [start, live) of each partition in `behind`, then hands each partition to the live feed.
   * A fetched batch is framed once and written as the window replay writes (writeHeld): one write
   * for the part of it the socket is to get, not an await and a write per record (a 1,000-client
   * cold resume spent 19 % of the gateway's CPU in that per-record path).
   */
  catchUp (feed: TopicFeed, sub: Subscription, behind: Positions): void {
    this.#hub.stats.catchUps++
    const outlet = sub.outlet
    // this reader's partitions: others of the subscription may be replayed from the window meanwhile
    const pending = new Set(behind.keys())
    let reader: TopicReader | undefined
    const finish = () => {
      // stopping inside the batch handler would wait for that handler: stop after it
      if (reader && sub.readers.delete(reader)) {
        const done = reader
        setImmediate(() => { done.stop().catch(() => {}) })
      }
    }
    const handOver = (p: number) => {
      sub.catchingUp.delete(p)
      pending.delete(p)
      if (pending.size === 0) finish()
    }
    const onBatch = async (batch: RecordBatch) => {
      const p = batch.partition
      noteHighWatermark(feed, batch)
      if (sub.ended || !pending.has(p)) return
      const records = batch.records
      const count = records.length
      const offsets = offsetsOf(batch)
      // built on first need: a batch entirely before the socket's position is not framed
      let framed: FramedBatch | undefined
      for (;;) {
        // a catch-up reader is this socket's alone: it waits for the socket instead of dropping
        if (sub.ended || outlet.closed) return
        const next = sub.next.get(p) ?? 0n
        // read again after every wait: the live feed moves on meanwhile
        const live = feed.live.get(p) ?? 0n
        let first = 0
        while (first < count && offsets[first]! < next) first++
        // a record the live feed has not dispatched yet is the live feed's to deliver
        if (next >= live || (first < count && offsets[first]! >= live)) {
          handOver(p)
          return
        }
        if (first === count) return
        let end = first + 1
        while (end < count && offsets[end]! < live) end++
        framed ??= frameBatch(records, outlet.format, sub.terms.encoding)
        const { stop, held } = writeHeld(outlet, framed, first, end, this.#hub.stats)
        sub.next.set(p, stop < end ? offsets[stop]! : offsets[end - 1]! + 1n)
        if (!held) {
          if (offsets[end - 1]! + 1n >= live) {
            handOver(p)
            return
          }
          // the rest of the batch is at or past the live position: the loop hands over
          if (end < count) continue
          return
        }
        await waitFor(outlet, held)
      }
    }
    // the log lost the start of the gap (retention ran meanwhile): the socket is told, then gets what is left
    const onGone = (p: number, from: bigint, to: bigint) => {
      if (sub.ended || outlet.closed || !pending.has(p)) return
      if ((sub.next.get(p) ?? 0n) < to) sub.next.set(p, to)
      this.#hub.stats.recordsGone += Number(to - from)
      this.#hub.log.info({ topic: feed.topic, partition: p, from: from.toString(), to: to.toString(), outlet: outlet.id }, 'resume gap: records gone from Kafka')
      outlet.gone?.(feed.topic, p, from, to)
    }
    const fail = (err: unknown) => {
      this.#hub.log.warn({ err, topic: feed.topic }, 'catch-up reader failed')
      this.#giveUp(sub)
    }
    const start = async () => {
      if (sub.ended) return
      // group-less, and only the partitions behind: no join to wait for, nothing left on the broker
      const started = this.#hub.kafka.reader({ topic: feed.topic, onBatch, onError: fail, onGone })
      reader = started
      sub.readers.add(started)
      await started.start(behind)
      // the subscription ended while the reader was starting: end() stopped it, and stopping again is harmless
      if (!sub.readers.has(started)) await started.stop()
    }
    start().catch(fail)
  }
}
