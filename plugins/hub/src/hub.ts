// The fan-out hub. Per node, one Kafka reader per topic, started by the
// first subscriber and stopped a grace period after the last leaves; each
// record is framed once per protocol and the same bytes are written to every
// subscribed socket. The consumer never waits for a socket: a socket whose
// send queue is full loses its live feed of that topic (and later hears
// `lagging` with a resume cursor) or is evicted, as its product says.
//
// No gap, no duplicate: every subscription keeps, per partition, the next
// offset it expects. Live dispatch writes only records at or past it; a
// subscription that starts behind the live position (a cursor, `earliest`)
// reads the gap with its own catch-up reader and joins the live feed, partition
// by partition, at the moment it reaches the hub's position. A gap the feed's
// window covers (window.ts: what the feed dispatched lately, with its frames)
// is written from memory instead, with no Kafka request, and the socket joins
// the live feed in the same turn as it reads the window's end.
//
// Neither reader is a consumer group member (KafkaClient.reader(): no join, no
// commit, nothing left on the broker): a group join waits out the broker's
// group.initial.rebalance.delay.ms, 3 s by Kafka's default, at every first
// subscriber and every resume. Positions come from the high watermarks at start
// and from cursors. Group mode (joinGroup) alone still joins a real group.
//
// Any record Kafka holds is deliverable, whatever its size against a socket's
// queue bound (records up to 1 MiB by Kafka's default message.max.bytes, a
// 256 KiB queue by default): a frame larger than the bound is written to an
// empty queue, alone. The bound holds for the bytes queued ahead of a frame,
// not for the frame itself (README.md: the largest record).
import type { ConsumedRecord, KafkaClient, Logger, PartitionOffsets, RecordBatch, TopicConsumer, TopicReader } from '@sluice/kafka'
import type { SlowClientPolicy, ValueEncoding } from '@sluice/policy/access'
import { formatPositions, type Positions } from './cursor.ts'
import { HubClosedError } from './errors.ts'
import type { FrameFormat } from './frame.ts'
import { cacheKeyOf, frameBatch, type FramedBatch } from './framed-batch.ts'
import { boundsOf, DEFAULT_WINDOW_BOUNDS, WindowBudget, type ProductWindows, type TopicWindow, type WindowBounds, type WindowRead } from './window.ts'

/** One socket as the hub sees it. */
export interface Outlet {
  readonly id: string
  readonly format: FrameFormat
  /** the socket's send queue bound, in bytes: a frame is written when the queue holds at most this minus its size, or is empty */
  readonly maxQueueBytes: number
  readonly closed: boolean
  /** bytes accepted for this socket and not yet handed to the kernel */
  queuedBytes (): number
  write (frame: Buffer, onWritten?: (err?: Error | null) => void): void
  /** resolves once the send queue is at most `bytes` (default: half the bound; 0: empty), or the socket closed; never sooner */
  drained (bytes?: number): Promise<void>
  /** the subscription to `topic` has ended after drops; tell the client where to resume */
  lagging (topic: string, dropped: number, resume: string): void
  /** the product says evict: close the socket (4008) */
  evict (topic: string): void
  /**
   * The delivery rate limit, asked per frame and synchronously (a limiter
   * leases tokens in batches, never a round trip per message). false: over
   * the plan; the hub treats it as a full queue (drop and `lagging`, or evict).
   */
  admit? (bytes: number): boolean
  /**
   * Settles once `admit` holds its first tokens (or knows it gets none).
   * Subscriptions start after it: a lease still on its way from Redis is not
   * "over the plan", and reading it so dropped a new socket's first frames.
   */
  readonly admitReady?: Promise<unknown>
}

export interface SubscriptionTerms {
  encoding: ValueEncoding
  slowClient: SlowClientPolicy
  /** the API product the topic belongs to (metrics count subscriptions by it) */
  product?: string
}

/** A topic with a live consumer on this node, and how far its readers are behind its high watermark. */
export interface TopicLag {
  topic: string
  /** records in Kafka the live consumer has not dispatched yet, summed over partitions */
  live: number
  /** records in Kafka that catch-up readers (resumes, `earliest`) have not yet written to their socket, summed */
  catchUp: number
}

export type StartPosition =
  | { kind: 'latest' }
  | { kind: 'earliest' }
  | { kind: 'cursor', positions: Positions }

export interface HubOptions {
  kafka: KafkaClient
  /** this node's name in the hub's logs */
  nodeId: string
  /** how long a topic's consumer outlives its last subscriber; 5 s absorbs reconnect storms */
  graceMs?: number
  /** how often a live reader re-reads topic metadata, which is how it finds new partitions (read from their start) and moved leaders */
  metadataMaxAgeMs?: number
  /** how often the topic list is read while pattern subscriptions watch it: a new matching topic is picked up within this */
  topicRefreshMs?: number
  logger?: Logger
  /**
   * Each live feed's window of recent records (window.ts): a resume or `earliest` whose gap it
   * covers is written from memory, with no Kafka request. Per topic, bytes (1 MiB) and age (60 s);
   * per node, nodeMaxBytes (256 MiB) over all topics. maxBytes or nodeMaxBytes 0 turns it off.
   */
  window?: Partial<WindowBounds> & { nodeMaxBytes?: number }
}

/** Told the topics that appeared since the topic list was last read. */
export type TopicWatcher = (added: string[]) => void

export interface HubStats {
  deliveries: number
  drops: number
  evictions: number
  laggingNotices: number
  catchUps: number
  /** resumes and `earliest` served from a feed's window, wholly or in part */
  windowReplays: number
  groupSessions: number
}

const DEFAULT_GRACE_MS = 5000
const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }
// a reader of one socket's own (catch-up, group) over its plan waits for the lease to refill: 100 ms is a fifth of a lease
const ADMIT_RETRY_MS = 100

/** what held a write to a socket that waits: the next frame's size, and whether its delivery budget (else its queue room) held it */
interface Held { bytes: number, admit: boolean }

// a topic gone quiet gives its window back within a second of its age bound; a sweep visits each partition once
const WINDOW_SWEEP_MS = 1000

/**
 * For readers that serve one socket (catch-up, group): resolves once a frame
 * of `bytes` fits the send queue, that is once the queue holds at most
 * maxQueueBytes - bytes; for a frame larger than the bound (a 600 KB record
 * against 256 KiB), once the queue is empty. Each turn waits for the outlet to
 * drain to that threshold, an event that comes (the client reads, or the
 * socket closes); the check is made again only because the socket's other
 * subscriptions may have queued frames in the meantime. Waiting for half the
 * bound instead, as this did, resolved at once and re-checked the same
 * condition without end: a frame over the bound spun the process at 100 %.
 */
async function roomFor (outlet: Outlet, bytes: number): Promise<void> {
  const threshold = Math.max(0, outlet.maxQueueBytes - bytes)
  while (outlet.queuedBytes() > threshold && !outlet.closed) await outlet.drained(threshold)
}

/**
 * The delivery limit for readers that serve one socket: instead of dropping,
 * they wait until the plan admits the frame (a daily quota that ran out stalls
 * them for the day). false once the socket closed.
 */
async function admitted (outlet: Outlet, bytes: number): Promise<boolean> {
  while (!outlet.closed && outlet.admit !== undefined && !outlet.admit(bytes)) {
    await new Promise(resolve => setTimeout(resolve, ADMIT_RETRY_MS))
  }
  return !outlet.closed
}

class Subscription {
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

interface GroupReader {
  reader: TopicConsumer
  topics: number
  product: string | undefined
}

/** Keeps the highest high watermark seen for a partition: one BigInt per batch, never per record. */
function noteHighWatermark (feed: TopicFeed, batch: RecordBatch): void {
  const high = BigInt(batch.highWatermark)
  if (high > (feed.high.get(batch.partition) ?? -1n)) feed.high.set(batch.partition, high)
}

class TopicFeed {
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

export class Hub {
  readonly stats: HubStats = { deliveries: 0, drops: 0, evictions: 0, laggingNotices: 0, catchUps: 0, windowReplays: 0, groupSessions: 0 }
  /** the memory every feed's window holds, against the node's budget */
  readonly windows: WindowBudget
  /** a topic's window bounds where no product's `resume` says otherwise */
  readonly windowBounds: Readonly<WindowBounds>
  readonly #windowSweep: NodeJS.Timeout
  #products: ProductWindows | undefined
  #unwatchProducts: (() => void) | undefined
  readonly #kafka: KafkaClient
  readonly #nodeId: string
  readonly #graceMs: number
  readonly #metadataMaxAgeMs: number
  readonly #log: Logger
  readonly #feeds = new Map<string, TopicFeed>()
  readonly #byOutlet = new Map<Outlet, Map<string, Subscription>>()
  readonly #groupReaders = new Map<Outlet, GroupReader>()
  #closed = false
  readonly #topicRefreshMs: number
  readonly #topicWatchers = new Set<TopicWatcher>()
  #knownTopics: Set<string> | undefined
  #topicTimer: NodeJS.Timeout | undefined

  constructor (options: HubOptions) {
    this.#kafka = options.kafka
    this.#nodeId = options.nodeId
    this.#graceMs = options.graceMs ?? DEFAULT_GRACE_MS
    // 30 s: a Metadata request per consumer per half minute is noise; a new partition waits at most that long
    this.#metadataMaxAgeMs = options.metadataMaxAgeMs ?? 30_000
    // 5 s: one Metadata request per node per 5 s, however many sockets watch patterns
    this.#topicRefreshMs = options.topicRefreshMs ?? 5000
    this.#log = options.logger ?? silent
    const { nodeMaxBytes, ...bounds } = options.window ?? {}
    this.windows = new WindowBudget({ maxBytes: nodeMaxBytes })
    this.windowBounds = { ...DEFAULT_WINDOW_BOUNDS, ...bounds }
    this.#windowSweep = setInterval(() => { this.windows.sweep() }, WINDOW_SWEEP_MS).unref()
  }

  /**
   * Sizes each topic's window from the products that serve it (`fastify.policy`): a product's
   * `resume` over the node's bounds, the largest among a topic's products (window.ts boundsOf).
   * Running feeds are resized now and after each change of the products, a smaller window evicting
   * at once. Without it, every topic gets the node's bounds (HubOptions.window).
   */
  sizeWindowsBy (products: ProductWindows): void {
    this.#unwatchProducts?.()
    this.#products = products
    this.#unwatchProducts = products.onChange(() => { this.#resizeWindows() })
    this.#resizeWindows()
  }

  #resizeWindows (): void {
    for (const feed of this.#feeds.values()) feed.window.resize(this.#windowBoundsOf(feed.topic))
  }

  #windowBoundsOf (topic: string): WindowBounds {
    return boundsOf(this.#products?.resumeWindows(topic) ?? [], this.windowBounds)
  }

  /**
   * The topics Kafka has now. Every read also tells the watchers which topics
   * appeared since the previous read, so that a watcher registered before it
   * reads the list misses no topic created after that read.
   */
  async topicNames (): Promise<string[]> {
    const names = await this.#kafka.listTopics()
    const known = this.#knownTopics
    this.#knownTopics = new Set(names)
    if (known && this.#topicWatchers.size > 0) {
      const added = names.filter(name => !known.has(name))
      if (added.length > 0) {
        for (const watcher of [...this.#topicWatchers]) {
          try {
            watcher(added)
          } catch (err) {
            this.#log.warn({ err }, 'a topic watcher failed')
          }
        }
      }
    }
    return names
  }

  /** Reads the topic list every topicRefreshMs while anyone watches; returns the way to stop watching. */
  watchTopics (watcher: TopicWatcher): () => void {
    this.#topicWatchers.add(watcher)
    if (!this.#topicTimer && !this.#closed) this.#pollTopics()
    return () => {
      this.#topicWatchers.delete(watcher)
      if (this.#topicWatchers.size === 0) {
        clearTimeout(this.#topicTimer)
        this.#topicTimer = undefined
      }
    }
  }

  #pollTopics (): void {
    const timer: NodeJS.Timeout = setTimeout(() => {
      this.topicNames().catch(err => this.#log.warn({ err }, 'could not read the topic list for pattern subscriptions'))
        .finally(() => {
          // the same loop only: watchers that all left and came back started another
          if (this.#topicTimer === timer && this.#topicWatchers.size > 0 && !this.#closed) this.#pollTopics()
        })
    }, this.#topicRefreshMs)
    this.#topicTimer = timer
  }

  /** Topics with a running live reader on this node. */
  get consumers (): number {
    let n = 0
    for (const feed of this.#feeds.values()) if (feed.consumer) n++
    return n
  }

  /**
   * Per topic with a live consumer: how many records in Kafka its readers
   * have yet to read. Computed when metrics are scraped, from the high
   * watermarks fetch batches carry (no admin request).
   */
  lag (): TopicLag[] {
    const out: TopicLag[] = []
    for (const feed of this.#feeds.values()) {
      if (!feed.consumer) continue
      let live = 0n
      let catchUp = 0n
      for (const [p, high] of feed.high) {
        const at = feed.live.get(p)
        if (at !== undefined && high > at) live += high - at
      }
      for (const sub of feed.subs) {
        for (const p of sub.catchingUp) {
          const high = feed.high.get(p)
          const next = sub.next.get(p) ?? 0n
          if (high !== undefined && high > next) catchUp += high - next
        }
      }
      out.push({ topic: feed.topic, live: Number(live), catchUp: Number(catchUp) })
    }
    return out
  }

  /** Subscriptions on this node by product (a group member counts once per topic of its group). */
  subscriptionsByProduct (): Map<string, number> {
    const counts = new Map<string, number>()
    const add = (product: string | undefined, n: number) => {
      const key = product ?? 'none'
      counts.set(key, (counts.get(key) ?? 0) + n)
    }
    for (const feed of this.#feeds.values()) for (const sub of feed.subs) add(sub.terms.product, 1)
    for (const group of this.#groupReaders.values()) add(group.product, group.topics)
    return counts
  }

  subscribers (topic: string): number {
    return this.#feeds.get(topic)?.subs.size ?? 0
  }

  /** Topics `outlet` is subscribed to. */
  topicsOf (outlet: Outlet): string[] {
    return [...(this.#byOutlet.get(outlet)?.keys() ?? [])]
  }

  /**
   * Subscribes a socket to a topic. Resolves once the live position is fixed:
   * every record written to the topic after that is delivered. Throws
   * SLUICE_KAFKA_UNKNOWN_TOPIC for a topic that does not exist.
   */
  /**
   * Subscribes `outlet` to `topic` from `from`. Resolves with where the socket starts on every
   * partition of the topic (a subscribed frame carries it: a client can then resume exactly, even
   * on partitions it never heard from), or undefined when the outlet closed meanwhile.
   */
  async subscribe (outlet: Outlet, topic: string, terms: SubscriptionTerms, from: StartPosition = { kind: 'latest' }): Promise<Positions | undefined> {
    if (this.#closed) throw new HubClosedError()
    if (outlet.admitReady) await outlet.admitReady
    let subs = this.#byOutlet.get(outlet)
    const existing = subs?.get(topic)
    if (existing) return new Map(existing.next)
    const feed = await this.#feed(topic)
    if (outlet.closed) return undefined
    // the feed's copy of the name: one string per topic, not one per socket
    const sub = new Subscription(outlet, feed.topic, terms)
    subs = this.#byOutlet.get(outlet)
    if (!subs) {
      subs = new Map()
      this.#byOutlet.set(outlet, subs)
    }
    const raced = subs.get(topic)
    if (raced) return new Map(raced.next)
    subs.set(feed.topic, sub)
    clearTimeout(feed.graceTimer)
    feed.graceTimer = undefined

    // Where this socket starts, per partition; behind the live position means catch-up.
    const behind = new Map<number, bigint>()
    if (from.kind === 'latest') {
      for (const [p, o] of feed.live) sub.next.set(p, o)
    } else {
      const low = from.kind === 'earliest' ? await this.#lowWatermarks(topic) : undefined
      for (const [p, liveAt] of feed.live) {
        // a partition the cursor does not name was created after it: all of it is new
        const start = from.kind === 'cursor' ? (from.positions.get(p) ?? 0n) : (low?.get(p) ?? 0n)
        sub.next.set(p, start)
        if (start < liveAt) {
          behind.set(p, start)
          sub.catchingUp.add(p)
        }
      }
    }
    const start = new Map(sub.next)
    feed.subs.add(sub)
    // the gaps the feed's window covers are written from memory; the others are read from Kafka
    const fromWindow: number[] = []
    for (const [p, offset] of behind) {
      if (feed.window.covers(p, offset)) {
        fromWindow.push(p)
        behind.delete(p)
      }
    }
    if (fromWindow.length > 0) this.#replay(feed, sub, fromWindow)
    if (behind.size > 0) this.#catchUp(feed, sub, behind)
    return start
  }

  unsubscribe (outlet: Outlet, topic: string): boolean {
    const subs = this.#byOutlet.get(outlet)
    const sub = subs?.get(topic)
    if (!sub) return false
    this.#end(sub)
    return true
  }

  /** Removes every subscription of a socket (it closed). */
  remove (outlet: Outlet): void {
    for (const sub of [...(this.#byOutlet.get(outlet)?.values() ?? [])]) this.#end(sub)
    this.#byOutlet.delete(outlet)
    const group = this.#groupReaders.get(outlet)
    if (group) {
      this.#groupReaders.delete(outlet)
      this.stats.groupSessions--
      group.reader.stop().catch(err => this.#log.warn({ err }, 'group reader did not stop cleanly'))
    }
  }

  #end (sub: Subscription): void {
    if (sub.ended) return
    sub.ended = true
    const subs = this.#byOutlet.get(sub.outlet)
    subs?.delete(sub.topic)
    if (subs?.size === 0) this.#byOutlet.delete(sub.outlet)
    for (const reader of sub.readers) reader.stop().catch(err => this.#log.warn({ err }, 'catch-up reader did not stop cleanly'))
    sub.readers.clear()
    const feed = this.#feeds.get(sub.topic)
    if (!feed) return
    feed.subs.delete(sub)
    if (feed.subs.size === 0 && !this.#closed) {
      feed.graceTimer = setTimeout(() => { this.#stopFeed(feed) }, this.#graceMs)
      feed.graceTimer.unref()
    }
  }

  async #lowWatermarks (topic: string): Promise<Positions> {
    const offsets = await this.#topicOffsets(topic)
    return new Map(offsets.map(o => [o.partition, BigInt(o.low)]))
  }

  async #feed (topic: string): Promise<TopicFeed> {
    let feed = this.#feeds.get(topic)
    if (!feed) {
      const created = new TopicFeed(topic, this.windows.window(topic, this.#windowBoundsOf(topic)))
      feed = created
      this.#feeds.set(topic, created)
      created.ready = this.#startFeed(created).catch(err => {
        if (this.#feeds.get(topic) === created) this.#feeds.delete(topic)
        created.window.close()
        throw err
      })
    }
    await feed.ready
    return feed
  }

  /**
   * A topic created a moment ago can still be unknown to this node's metadata,
   * or its leader not yet elected (seen under load: the upgrade check found
   * it, the offsets request failed; the admin client does not retry, so that
   * readiness probes fail fast): ask again for about a second before failing.
   */
  async #topicOffsets (topic: string): Promise<PartitionOffsets[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#kafka.topicOffsets(topic)
      } catch (err) {
        if (attempt === 5 || this.#closed) throw err
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    }
  }

  async #startFeed (feed: TopicFeed): Promise<void> {
    // The live position is fixed here: the reader starts at today's end of each
    // partition (topics started in the same tick share one Metadata and one
    // ListOffsets request). Partitions added later start at their beginning: all of them is new.
    const reader = this.#kafka.reader({
      topic: feed.topic,
      followNewPartitions: true,
      metadataMaxAgeMs: this.#metadataMaxAgeMs,
      // synchronous: the reader goes on fetching while sockets drain
      onBatch: batch => { this.#dispatch(feed, batch) },
      onError: err => this.#log.warn({ err, topic: feed.topic }, 'hub reader failed')
    })
    feed.consumer = reader
    let start: Map<number, bigint>
    try {
      start = await reader.start('latest')
    } catch (err) {
      feed.consumer = undefined
      await reader.stop()
      throw err
    }
    // before the reader's first batch, which comes with a fetch response (I/O), never in this turn
    for (const [partition, high] of start) {
      feed.live.set(partition, high)
      feed.high.set(partition, high)
      feed.window.open(partition, high)
    }
    this.#log.debug({ topic: feed.topic, node: this.#nodeId }, 'hub reader started')
  }

  #stopFeed (feed: TopicFeed): void {
    if (feed.subs.size > 0 || this.#feeds.get(feed.topic) !== feed) return
    this.#feeds.delete(feed.topic)
    feed.window.close()
    const consumer = feed.consumer
    feed.consumer = undefined
    consumer?.stop().catch(err => this.#log.warn({ err, topic: feed.topic }, 'hub reader did not stop cleanly'))
  }

  /**
   * The hot path: one batch of one partition to every subscriber, synchronously.
   * The batch's frames are built once per protocol and encoding and joined into
   * one buffer; each socket gets one write of that buffer, or of the part of it
   * from its own position on (a view, no copy). One write per socket and batch
   * is one send to the kernel, and no per-frame stream bookkeeping.
   */
  #dispatch (feed: TopicFeed, batch: RecordBatch): void {
    const records = batch.records
    const count = records.length
    if (count === 0) return
    const p = batch.partition
    noteHighWatermark(feed, batch)
    const offsets = new Array<bigint>(count)
    for (let i = 0; i < count; i++) offsets[i] = BigInt(records[i]!.offset)
    const end = offsets[count - 1]! + 1n
    // the batch framed per protocol and encoding, built on first need and shared by every socket
    const framed = new Map<string, FramedBatch>()

    for (const sub of feed.subs) {
      if (sub.catchingUp.has(p)) continue
      const next = sub.next.get(p) ?? 0n
      if (sub.lag) {
        // lost too, until the socket hears `lagging`: counted in the notice and in the drops metric alike
        for (let i = 0; i < count; i++) {
          if (offsets[i]! >= next) {
            sub.lag.dropped++
            this.stats.drops++
          }
        }
        continue
      }
      if (next >= end) continue
      const outlet = sub.outlet
      let batchFrames = framed.get(sub.cacheKey)
      if (!batchFrames) {
        batchFrames = frameBatch(records, outlet.format, sub.terms.encoding)
        framed.set(sub.cacheKey, batchFrames)
      }
      const { joined, starts } = batchFrames
      let first = 0
      while (offsets[first]! < next) first++
      // how far this socket's queue room and delivery budget reach, frame by frame
      const queued = outlet.queuedBytes()
      const room = outlet.maxQueueBytes - queued
      const admit = outlet.admit
      const from = starts[first]!
      let stop = count
      // the usual case, no delivery budget and room for the rest of the batch, needs no walk over its frames
      if (admit !== undefined || joined.length - from > room) {
        // A write to an empty queue takes frames larger than the bound whatever their size, and
        // does not count them against it: such a frame would otherwise never fit, and a socket
        // that keeps up would hear `lagging` for it and for its neighbours in the batch. What
        // this lets past the bound is bounded by the batch (Kafka's max.partition.fetch.bytes).
        let credit = 0
        for (let i = first; i < count; i++) {
          const bytes = starts[i + 1]! - starts[i]!
          if (bytes === 0) continue // filtered out: nothing to send, the position still moves past it
          if (queued === 0 && bytes > outlet.maxQueueBytes) credit += bytes
          const fits = starts[i + 1]! - from - credit <= room
          if (!fits || (admit !== undefined && !admit(bytes))) {
            stop = i
            break
          }
        }
      }
      const to = starts[stop]!
      if (to > from) {
        outlet.write(from === 0 && to === joined.length ? joined : joined.subarray(from, to))
        this.stats.deliveries += batchFrames.framesBefore[stop]! - batchFrames.framesBefore[first]!
      }
      if (stop < count) {
        sub.next.set(p, offsets[stop]!)
        this.#overflow(sub, count - stop)
      } else {
        sub.next.set(p, end)
      }
    }
    // kept for resumes, with the frames built for the live sockets (the window skips what it has)
    feed.window.append(p, records, offsets, framed)
    // never backwards: a reader moved back (out of range, a leader's truncated log) may repeat records the subscriptions already have
    if (end > (feed.live.get(p) ?? 0n)) feed.live.set(p, end)
  }

  #overflow (sub: Subscription, dropped: number): void {
    this.stats.drops += dropped
    if (sub.terms.slowClient === 'evict') {
      this.stats.evictions++
      this.remove(sub.outlet)
      sub.outlet.evict(sub.topic)
      return
    }
    sub.lag = { dropped }
    sub.outlet.drained().then(() => {
      if (sub.ended || sub.outlet.closed) return
      const resume = formatPositions(sub.topic, sub.next)
      const lost = sub.lag?.dropped ?? dropped
      this.#end(sub)
      this.stats.laggingNotices++
      sub.outlet.lagging(sub.topic, lost, resume)
    }, () => {})
  }

  /**
   * Replays the gap of each partition in `partitions` from the feed's window, then hands it to
   * the live feed: the window reaches the live position, so the socket joins it with no gap and
   * no duplicate. Written on the next turn, after subscribe() resolved, so the subscribed frame
   * goes first. What the socket's queue or delivery budget does not take now waits for them, as
   * a catch-up reader does (this socket's alone: it waits instead of dropping), and is read from
   * the window again; a part the window let go meanwhile is read from Kafka.
   */
  #replay (feed: TopicFeed, sub: Subscription, partitions: number[]): void {
    this.stats.windowReplays++
    const outlet = sub.outlet
    const run = async () => {
      for (const p of partitions) {
        for (;;) {
          // the hub closing closed the windows too: nothing to read from Kafka for either
          if (sub.ended || outlet.closed || this.#closed) return
          const next = sub.next.get(p) ?? 0n
          const read = feed.window.read(p, next, outlet.format, sub.terms.encoding)
          if (!read || read.end !== (feed.live.get(p) ?? 0n)) {
            this.#catchUp(feed, sub, new Map([[p, next]]))
            break
          }
          const held = this.#writeReplay(sub, p, read)
          if (held === undefined) {
            // at the live position, in the same turn as the read: the live feed's from here
            sub.catchingUp.delete(p)
            break
          }
          if (held.admit) await new Promise(resolve => setTimeout(resolve, ADMIT_RETRY_MS))
          else await roomFor(outlet, held.bytes)
        }
      }
    }
    setImmediate(() => {
      run().catch(err => {
        this.#log.warn({ err, topic: feed.topic }, 'replay from the window failed')
        if (!sub.ended && !outlet.closed) {
          const resume = formatPositions(sub.topic, sub.next)
          this.#end(sub)
          outlet.lagging(sub.topic, 0, resume)
        }
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
      const { stop, held } = this.#writeHeld(sub.outlet, framed, first, count)
      sub.next.set(p, stop < count ? offsets[stop]! : offsets[count - 1]! + 1n)
      if (held) return held
    }
    sub.next.set(p, read.end)
    return undefined
  }

  /**
   * For a socket that waits instead of dropping (a window replay, a catch-up reader): writes frames
   * [first, end) of a framed batch in one write, as far as the socket's queue room and delivery
   * budget reach (the live dispatch's rule: a frame larger than the bound goes to an empty queue).
   * Returns the first frame not written (end when all were) and, if one was held, what held it.
   */
  #writeHeld (outlet: Outlet, framed: FramedBatch, first: number, end: number): { stop: number, held?: Held } {
    const { joined, starts, framesBefore } = framed
    const admit = outlet.admit
    const queued = outlet.queuedBytes()
    const room = outlet.maxQueueBytes - queued
    const from = starts[first]!
    let stop = end
    let held: Held | undefined
    let credit = 0
    for (let i = first; i < end; i++) {
      const bytes = starts[i + 1]! - starts[i]!
      if (bytes === 0) continue
      if (queued === 0 && bytes > outlet.maxQueueBytes) credit += bytes
      if (starts[i + 1]! - from - credit > room) held = { bytes, admit: false }
      else if (admit !== undefined && !admit(bytes)) held = { bytes, admit: true }
      if (held) {
        stop = i
        break
      }
    }
    const to = starts[stop]!
    if (to > from) {
      outlet.write(from === 0 && to === joined.length ? joined : joined.subarray(from, to))
      this.stats.deliveries += framesBefore[stop]! - framesBefore[first]!
    }
    return { stop, held }
  }

  /**
   * Replays [start, live) of each partition in `behind`, then hands each partition to the live feed.
   * A fetched batch is framed once and written as the window replay writes (#writeHeld): one write
   * for the part of it the socket is to get, not an await and a write per record (a 1,000-client
   * cold resume spent 19 % of the gateway's CPU in that per-record path).
   */
  #catchUp (feed: TopicFeed, sub: Subscription, behind: Positions): void {
    this.stats.catchUps++
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
      const offsets = new Array<bigint>(count)
      for (let i = 0; i < count; i++) offsets[i] = BigInt(records[i]!.offset)
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
        const { stop, held } = this.#writeHeld(outlet, framed, first, end)
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
        if (held.admit) await new Promise(resolve => setTimeout(resolve, ADMIT_RETRY_MS))
        else await roomFor(outlet, held.bytes)
      }
    }
    const fail = (err: unknown) => {
      this.#log.warn({ err, topic: feed.topic }, 'catch-up reader failed')
      // the socket cannot be given its gap: end the subscription and say where to resume
      if (!sub.ended && !outlet.closed) {
        const resume = formatPositions(sub.topic, sub.next)
        this.#end(sub)
        outlet.lagging(sub.topic, 0, resume)
      }
    }
    const start = async () => {
      if (sub.ended) return
      // group-less, and only the partitions behind: no join to wait for, nothing left on the broker
      const started = this.#kafka.reader({ topic: feed.topic, onBatch, onError: fail })
      reader = started
      sub.readers.add(started)
      await started.start(behind)
      // the subscription ended while the reader was starting: #end stopped it, and stopping again is harmless
      if (!sub.readers.has(started)) await started.stop()
    }
    start().catch(fail)
  }

  /**
   * Group mode: this socket is one member of a Kafka consumer group (on any
   * node); each record goes to one member. Records are written without drops
   * (the consumer is this socket's alone and waits for it) and the offsets are
   * committed once the frames are written to the socket.
   */
  async joinGroup (outlet: Outlet, groupId: string, topics: string[], terms: SubscriptionTerms): Promise<void> {
    if (this.#closed) throw new HubClosedError()
    if (outlet.admitReady) await outlet.admitReady
    const reader = this.#kafka.groupReader({
      groupId,
      topics,
      fromBeginning: false,
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
            this.stats.deliveries++
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
    const group: GroupReader = { reader, topics: topics.length, product: terms.product }
    this.#groupReaders.set(outlet, group)
    this.stats.groupSessions++
    try {
      await reader.start()
    } finally {
      // the socket closed while the reader was joining: remove() found it not yet
      // started, and a consumer stopped mid-join keeps its broker connection
      if (outlet.closed && this.#groupReaders.get(outlet) !== group) await reader.stop().catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#windowSweep)
    this.#unwatchProducts?.()
    clearTimeout(this.#topicTimer)
    this.#topicTimer = undefined
    this.#topicWatchers.clear()
    const stopping: Array<Promise<void>> = []
    for (const feed of this.#feeds.values()) {
      clearTimeout(feed.graceTimer)
      for (const sub of feed.subs) for (const reader of sub.readers) stopping.push(reader.stop())
      feed.window.close()
      if (feed.consumer) stopping.push(feed.consumer.stop())
    }
    for (const group of this.#groupReaders.values()) stopping.push(group.reader.stop())
    this.#feeds.clear()
    this.#byOutlet.clear()
    this.#groupReaders.clear()
    await Promise.allSettled(stopping)
  }
}
