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
// the live feed in the same turn as it reads the window's end. A feed that a
// resume starts reads that resume's gap into its window before it answers
// (#backfill): the resumes that come with it (a drained node's clients) are
// window replays, not a catch-up reader each.
//
// This file holds the feeds' lifecycle and the subscriptions' bookkeeping;
// the rest of the job is beside it: dispatch.ts (the live write, the hot
// path), catch-up.ts (the gap, from the window or from Kafka), group.ts (group
// mode), topic-watch.ts (the topic list and pattern subscriptions' watch),
// feed.ts (the feed and subscription state), outlet.ts (what the hub asks of a
// socket).
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
import { gatewayDefaults } from '@sluice/config/gateway'
import type { KafkaClient, Logger, PartitionOffsets } from '@sluice/kafka'
import { CatchUp } from './catch-up.ts'
import { formatPositions, type Positions } from './cursor.ts'
import { dispatch } from './dispatch.ts'
import { HubClosedError } from './errors.ts'
import { offsetsOf, Subscription, TopicFeed } from './feed.ts'
import { GroupMembers } from './group.ts'
import type { Outlet, StartPosition, SubscriptionTerms } from './outlet.ts'
import { newStats, type HubStats, type TopicLag } from './stats.ts'
import { TopicWatch, type TopicWatcher } from './topic-watch.ts'
import { boundsOf, DEFAULT_WINDOW_BOUNDS, WindowBudget, type ProductWindows, type WindowBounds } from './window.ts'

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
  /** how long a feed a resume starts reads the resume's gap into its window (#backfill): 250 ms */
  backfillTimeoutMs?: number
}

// stream.consumerGraceMs and stream.topicRefreshMs: the gateway's schema's (packages/config/src/gateway.ts)
const { consumerGraceMs: DEFAULT_GRACE_MS, topicRefreshMs: DEFAULT_TOPIC_REFRESH_MS } = gatewayDefaults.stream
const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }

// a topic gone quiet gives its window back within a second of its age bound; a sweep visits each partition once
const WINDOW_SWEEP_MS = 1000
// how long a feed started by a resume reads the resume's gap into its window (#backfill) before it
// gives up and starts as before: a fetch of data the broker has takes a few ms here, and every
// subscriber of the topic waits for it
const BACKFILL_TIMEOUT_MS = 250

export class Hub {
  readonly stats: HubStats = newStats()
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
  readonly #backfillTimeoutMs: number
  readonly #metadataMaxAgeMs: number
  readonly #log: Logger
  readonly #feeds = new Map<string, TopicFeed>()
  readonly #byOutlet = new Map<Outlet, Map<string, Subscription>>()
  readonly #groups: GroupMembers
  readonly #topics: TopicWatch
  readonly #catchUp: CatchUp
  #closed = false

  constructor (options: HubOptions) {
    this.#kafka = options.kafka
    this.#nodeId = options.nodeId
    this.#graceMs = options.graceMs ?? DEFAULT_GRACE_MS
    this.#backfillTimeoutMs = options.backfillTimeoutMs ?? BACKFILL_TIMEOUT_MS
    // 30 s: a Metadata request per consumer per half minute is noise; a new partition waits at most that long
    this.#metadataMaxAgeMs = options.metadataMaxAgeMs ?? 30_000
    this.#log = options.logger ?? silent
    // 5 s: one Metadata request per node per 5 s, however many sockets watch patterns
    this.#topics = new TopicWatch(this.#kafka, this.#log, options.topicRefreshMs ?? DEFAULT_TOPIC_REFRESH_MS)
    this.#groups = new GroupMembers(this.#kafka, this.#log, this.stats)
    this.#catchUp = new CatchUp({ kafka: this.#kafka, log: this.#log, stats: this.stats, closed: () => this.#closed, end: sub => { this.#end(sub) } })
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
   * appeared since the previous read (topic-watch.ts).
   */
  async topicNames (): Promise<string[]> {
    return await this.#topics.names()
  }

  /** Reads the topic list every topicRefreshMs while anyone watches; returns the way to stop watching. */
  watchTopics (watcher: TopicWatcher): () => void {
    return this.#topics.watch(watcher)
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
    for (const group of this.#groups.subscriptions()) add(group.product, group.topics)
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
   * Subscribes `outlet` to `topic` from `from`. Resolves once the live position is fixed (every
   * record written to the topic after that is delivered), with where the socket starts on every
   * partition of the topic (a subscribed frame carries it: a client can then resume exactly, even
   * on partitions it never heard from), or undefined when the outlet closed meanwhile. Throws
   * SLUICE_KAFKA_UNKNOWN_TOPIC for a topic that does not exist.
   */
  async subscribe (outlet: Outlet, topic: string, terms: SubscriptionTerms, from: StartPosition = { kind: 'latest' }): Promise<Positions | undefined> {
    if (this.#closed) throw new HubClosedError()
    if (outlet.admitReady) await outlet.admitReady
    let subs = this.#byOutlet.get(outlet)
    const existing = subs?.get(topic)
    if (existing) return new Map(existing.next)
    const feed = await this.#feed(topic, from.kind === 'cursor' ? from.positions : undefined)
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
      let low: Positions | undefined
      if (from.kind === 'earliest') {
        // The socket is in #byOutlet but not yet in the feed while the watermarks are read. A read
        // that fails must not leave it there (a second subscribe would find it and never be
        // delivered to), nor one the socket closed during (remove() ended it; added to the feed
        // after that, it stayed for good: 282 sessions of 2,439 fuzzed sockets, stream-frames).
        try {
          low = await this.#lowWatermarks(topic)
        } catch (err) {
          this.#end(sub)
          throw err
        }
        if (sub.ended || outlet.closed) {
          this.#end(sub)
          return undefined
        }
      }
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
    if (fromWindow.length > 0) this.#catchUp.replay(feed, sub, fromWindow)
    if (behind.size > 0) this.#catchUp.catchUp(feed, sub, behind)
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
    this.#groups.remove(outlet)
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

  /** The topic's feed, started if it is not running; `gap`: where the resume that starts it begins (#backfill). */
  async #feed (topic: string, gap?: Positions): Promise<TopicFeed> {
    let feed = this.#feeds.get(topic)
    if (!feed) {
      const created = new TopicFeed(topic, this.windows.window(topic, this.#windowBoundsOf(topic)))
      feed = created
      this.#feeds.set(topic, created)
      created.ready = this.#startFeed(created, gap).catch(err => {
        if (this.#feeds.get(topic) === created) this.#feeds.delete(topic)
        created.window.close()
        throw err
      })
    }
    await feed.ready
    return feed
  }

  /**
   * A topic created a moment ago can still be unknown to this node's metadata
   * (seen under load: the upgrade check found it, the offsets request failed;
   * the admin client does not retry, so that readiness probes fail fast): ask
   * again for about a second before failing. Only that: a leader that moved or
   * is being elected, KafkaClient.topicOffsets asks again itself, within its
   * timeout; asked again here too, a call could take five of them (25 s).
   */
  async #topicOffsets (topic: string): Promise<PartitionOffsets[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#kafka.topicOffsets(topic)
      } catch (err) {
        if (attempt === 5 || this.#closed || (err as { code?: unknown }).code !== 'SLUICE_KAFKA_UNKNOWN_TOPIC') throw err
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    }
  }

  async #startFeed (feed: TopicFeed, gap?: Positions): Promise<void> {
    // The live position is fixed here: the reader starts at today's end of each
    // partition (topics started in the same tick share one Metadata and one
    // ListOffsets request). Partitions added later start at their beginning: all of them is new.
    // A feed a resume starts reads the resume's gap into its window first (#backfill), from the
    // ends read before it, and the reader starts at those ends.
    const reader = this.#kafka.reader({
      topic: feed.topic,
      followNewPartitions: true,
      metadataMaxAgeMs: this.#metadataMaxAgeMs,
      // synchronous: the reader goes on fetching while sockets drain
      onBatch: batch => { dispatch(feed, batch, this.stats, (sub, dropped) => { this.#overflow(sub, dropped) }) },
      onError: err => this.#log.warn({ err, topic: feed.topic }, 'hub reader failed')
    })
    feed.consumer = reader
    let start: Map<number, bigint>
    try {
      const ends = gap && gap.size > 0 ? await this.#backfillEnds(feed.topic) : undefined
      if (gap && ends) {
        start = new Map(ends.map(o => [o.partition, BigInt(o.high)]))
        const wanted = new Map<number, bigint>()
        for (const o of ends) {
          const from = gap.get(o.partition)
          if (from !== undefined && from >= BigInt(o.low) && from < BigInt(o.high)) wanted.set(o.partition, from)
        }
        if (wanted.size > 0) await this.#backfill(feed, wanted, start)
        await reader.start(start)
      } else {
        start = await reader.start('latest')
      }
    } catch (err) {
      feed.consumer = undefined
      await reader.stop()
      throw err
    }
    // before the reader's first batch, which comes with a fetch response (I/O), never in this turn
    for (const [partition, high] of start) {
      feed.live.set(partition, high)
      feed.high.set(partition, high)
      // a partition backfilled holds its window already, up to `high`
      feed.window.open(partition, high)
    }
    this.#log.debug({ topic: feed.topic, node: this.#nodeId }, 'hub reader started')
  }

  /**
   * The partitions' ends and starts for a backfill, or undefined when Kafka does not give them
   * within backfillTimeoutMs (a leader being elected, a broker down: counted as a backfill cut
   * short): the feed then starts as it does without one, its reader waiting out the election.
   */
  async #backfillEnds (topic: string): Promise<PartitionOffsets[] | undefined> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>(resolve => { timer = setTimeout(() => resolve(undefined), this.#backfillTimeoutMs) })
    const asked = this.#kafka.topicOffsets(topic).catch((err: unknown) => {
      this.#log.debug({ err, topic }, 'no offsets for a window backfill: the feed starts without one')
      return undefined
    })
    const ends = await Promise.race([asked, late])
    clearTimeout(timer)
    if (!ends) this.stats.backfillsCut++
    return ends
  }

  /**
   * Reads [from, end) of each partition of `wanted` into the feed's window before the live reader
   * starts at `ends`, so that the resume that starts the feed, and every resume from there on that
   * arrives meanwhile, is a window replay. Without it each of them read its gap with a catch-up
   * reader of its own: a node that took over 5,000 clients of a topic it did not serve started
   * 5,000 readers on Kafka for the same record, and took 2.3-2.6 s to have them all live against
   * 2.0 s without (bench/drain-resume.ts, cold rounds). A partition not read up to its end within
   * backfillTimeoutMs (a slow broker, a log that ends in transaction markers, which come as no
   * record) starts its window at its end instead, as before, and its resumes read from Kafka. So
   * does one whose gap the window cannot hold (it let go of the gap's start): the cursor is the
   * client's, and a gap back to the log's start must not be read further than the window's bytes.
   */
  async #backfill (feed: TopicFeed, wanted: Positions, ends: Map<number, bigint>): Promise<void> {
    const pending = new Map(wanted)
    // partitions given up before the end: the gap is larger than the window holds
    const outgrown = new Set<number>()
    for (const [p, from] of wanted) feed.window.open(p, from)
    let done = false
    let finish!: () => void
    const finished = new Promise<void>(resolve => {
      finish = () => {
        done = true
        resolve()
      }
    })
    const filler = this.#kafka.reader({
      topic: feed.topic,
      onBatch: batch => {
        if (done) return
        const p = batch.partition
        const end = ends.get(p)
        if (end === undefined || !pending.has(p)) return
        const offsets = offsetsOf(batch)
        let n = 0
        while (n < offsets.length && offsets[n]! < end) n++
        if (n > 0) feed.window.append(p, n === offsets.length ? batch.records : batch.records.slice(0, n), n === offsets.length ? offsets : offsets.slice(0, n))
        if (!feed.window.covers(p, wanted.get(p)!)) {
          pending.delete(p)
          outgrown.add(p)
          filler.pause([p])
        } else if (n < offsets.length || (n > 0 && offsets[n - 1]! + 1n >= end)) pending.delete(p)
        if (pending.size === 0) finish()
      },
      // retention took the gap's start after the offsets were read: the window must not claim it (it
      // would replay the rest with no word); given up, the resume reads from Kafka and is told (a gap frame)
      onGone: p => {
        if (done || !pending.delete(p)) return
        outgrown.add(p)
        filler.pause([p])
        if (pending.size === 0) finish()
      },
      onError: err => {
        this.#log.warn({ err, topic: feed.topic }, 'window backfill failed')
        finish()
      }
    })
    const timer = setTimeout(finish, this.#backfillTimeoutMs)
    try {
      await filler.start(wanted)
      await finished
    } finally {
      clearTimeout(timer)
      // stopping inside the batch handler would wait for it: after it
      setImmediate(() => { filler.stop().catch(() => {}) })
    }
    // a partition read to its end can still have lost its gap's start since: the topic's bytes are for all
    // its partitions, and a later partition's batch evicts the oldest chunk, whichever partition holds it
    // (a resume of 2,500 records of 3 partitions lost the first one's, and its resumes read from Kafka)
    for (const [p, from] of wanted) if (!pending.has(p) && !feed.window.covers(p, from)) outgrown.add(p)
    for (const p of [...pending.keys(), ...outgrown]) feed.window.restart(p, ends.get(p)!)
    if (pending.size === 0 && outgrown.size === 0) this.stats.backfills++
    else this.stats.backfillsCut++
  }

  #stopFeed (feed: TopicFeed): void {
    if (feed.subs.size > 0 || this.#feeds.get(feed.topic) !== feed) return
    this.#feeds.delete(feed.topic)
    feed.window.close()
    const consumer = feed.consumer
    feed.consumer = undefined
    consumer?.stop().catch(err => this.#log.warn({ err, topic: feed.topic }, 'hub reader did not stop cleanly'))
  }

  /** A socket the live dispatch could not give a whole batch: evicted, or told `lagging` once its queue drained, as its product says. */
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
   * Group mode: this socket is one member of a Kafka consumer group (on any
   * node); each record goes to one member. Records are written without drops
   * (the consumer is this socket's alone and waits for it) and the offsets are
   * committed once the frames are written to the socket. `start` is where the group starts on a
   * partition it has no committed offset for (Kafka's auto.offset.reset): latest unless told.
   */
  async joinGroup (outlet: Outlet, groupId: string, topics: string[], terms: SubscriptionTerms, start: 'earliest' | 'latest' = 'latest'): Promise<void> {
    if (this.#closed) throw new HubClosedError()
    await this.#groups.join(outlet, groupId, topics, terms, start)
  }

  /** The socket leaves its group and keeps its other subscriptions (an MQTT UNSUBSCRIBE of its shared subscription). */
  leaveGroup (outlet: Outlet): void {
    this.#groups.remove(outlet)
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#windowSweep)
    this.#unwatchProducts?.()
    this.#topics.close()
    const stopping: Array<Promise<void>> = []
    for (const feed of this.#feeds.values()) {
      clearTimeout(feed.graceTimer)
      for (const sub of feed.subs) for (const reader of sub.readers) stopping.push(reader.stop())
      feed.window.close()
      if (feed.consumer) stopping.push(feed.consumer.stop())
    }
    stopping.push(...this.#groups.close())
    this.#feeds.clear()
    this.#byOutlet.clear()
    await Promise.allSettled(stopping)
  }
}
