// Group-less reads: partitions read at explicit offsets, with no consumer group,
// no join and no commit (issue 14). A node's readers all share one Fetcher: per
// broker, one main fetch carrying every partition of every topic that broker leads
// (a KIP-227 fetch session keeps the requests small), parked up to 5 s in its long
// poll, plus a start lane whose fetches return at once: a reader added while the
// main fetch is parked would otherwise wait for it (bench/README.md: p50 505 ms
// against 2 ms with the lane). A partition the parked fetch does not carry (one
// that caught up in the lane, one resumed) is taken at once by a second main
// client, whose fetch, carrying everything, becomes the main one; the parked one
// is not sent again when it comes back. Three clients, so three connections per
// broker, whatever the number of topics (a kafkajs group consumer kept two per topic).
//
// Everything a group consumer's client did for us is done here: partitions are
// grouped by leader; records of a batch below the fetch offset are skipped (a
// batch comes whole) and so are control batches; the clients' fetch() drops aborted
// transactions' records and stamps LogAppendTime records (java-reads.ts); NOT_LEADER_OR_FOLLOWER and its kin re-read the metadata
// and regroup; OFFSET_OUT_OF_RANGE moves the partition
// to the log start (or the end, when the log was truncated below it); new
// partitions are found by re-reading the metadata every metadataMaxAgeMs.
//
// With group-reader.ts (group mode) and java-reads.ts, the modules that import @platformatic/kafka;
// kafka.ts exposes them as KafkaClient.reader() and groupReader(), and nothing
// outside packages/kafka sees the client library.
import { Consumer } from '@platformatic/kafka'
import type { ConsumedRecord, Logger, RecordBatch } from './kafka.ts'
import { KafkaClosedError, KafkaUnavailableError, KafkaUnknownTopicError } from './errors.ts'
import { CONTROL_BATCH } from './aborted.ts'
import { JavaReadsConsumer } from './java-reads.ts'
import { platformaticSecurity, type KafkaSecurity } from './security.ts'

type PltFetchResponse = Awaited<ReturnType<Consumer['fetch']>>
type PltFetchTopic = Parameters<Consumer['fetch']>[0]['topics'][number]
type PltPartitionResponse = PltFetchResponse['responses'][number]['partitions'][number]

export interface ReaderOptions {
  topic: string
  /**
   * Called with each partition's new records, in offset order. A promise holds
   * that partition (and the reader's next batches, which wait their turn) until it
   * settles; a handler that returns nothing holds nothing (the hub's live feed).
   */
  onBatch (batch: RecordBatch): void | Promise<void>
  /**
   * Read partitions that appear after start() (from their first offset), found by
   * re-reading the metadata every metadataMaxAgeMs. A catch-up reader reads only
   * the partitions it was given.
   */
  followNewPartitions?: boolean
  /** how often the topic's metadata is re-read (new partitions, moved leaders); 30 s */
  metadataMaxAgeMs?: number
  /** told what the reader cannot get past on its own (the topic was deleted, a handler threw) */
  onError? (error: Error): void
  /**
   * Told that the records [from, to) of a partition this reader was at are gone from the log
   * (retention, or DeleteRecords) and that it goes on at `to`, the log's start now; before
   * any of the records from `to` are handed over.
   */
  onGone? (partition: number, from: bigint, to: bigint): void
}

export interface TopicReader {
  readonly topic: string
  /**
   * Starts reading each partition at its offset (the next record wanted), or every
   * partition at its end with 'latest'; resolves with where each partition starts,
   * once leaders are known. Readers started in the same tick share one Metadata
   * request and, for 'latest', one ListOffsets request (a node whose 1,000 topics
   * got their first subscriber at once asked the kafkajs admin 1,000 times, and
   * some of those failed: "write after end").
   */
  start (positions: Map<number, bigint | string> | 'latest'): Promise<Map<number, bigint>>
  stop (): Promise<void>
  pause (partitions?: number[]): void
  resume (partitions?: number[]): void
  /** Reads `partition` from `offset` on; a batch in flight from elsewhere is not delivered. */
  seek (partition: number, offset: bigint | string): void
}

export interface FetcherOptions {
  brokers: string[]
  clientId: string
  connectionTimeoutMs: number
  requestTimeoutMs: number
  security?: KafkaSecurity
  logger: Logger
}

// How long the broker may hold the main fetch when it has nothing to return (kafkajs's
// maxWaitTimeInMs): an idle node sends one request per broker per 5 s. Each walks every
// partition the node reads, here and in the client's fetch session: 1,000 idle topics
// cost 0.96 % of a core in fetches at 500 ms, 0.17 % at 5 s (bench/README.md). A part
// the parked fetch does not carry does not wait for it: the other main client takes it.
const MAIN_MAX_WAIT_MS = 5000
// ... except within MAIN_MAX_WAIT_MS of a part joining (a burst of subscribes): then 500 ms
// (Kafka's fetch.max.wait.ms), as while both main clients are parked the lane polls the
// parts that join, every LANE_IDLE_WAIT_MS. 1,000 subscribes at once left it polling
// ~400 times over the 5 s the two clients stayed parked, 3.4-4.6 % of a core in the
// bench's idle window after them.
const JOIN_WAIT_MS = 500
// The start lane's wait once every partition in it has caught up and waits for a main
// client to take it (only while both main clients are parked): short, as a new reader's
// first fetch queues behind it. bench/first-record.ts, one resume, subscribed -> first replayed
// record, p50: 23-47 ms at 20 ms here, 9-11 ms at 5 ms and at 2 ms; 5 ms keeps the
// lane's polling while a partition waits for the main fetch at most ~200 requests/s.
const LANE_IDLE_WAIT_MS = 5
// A main client that carried no fetch for three long polls is closed, with its broker
// connections: the other one carries every partition again once the join that opened it is
// over (the next fetch takes them all), and the next join opens it again. Without this a
// node that had one join while its fetch was parked held five connections per broker for
// good once it also published (the Kafka admin's, the lane's, both main clients' and the
// producer's; a gateway at 23:16 UTC on 2026-12-06); issue 14 allows four.
const MAIN_IDLE_POLLS = 3
// kafkajs's defaults, so a fetch brings what a group consumer's did
const MAX_BYTES = 10 * 1024 * 1024
const MAX_BYTES_PER_PARTITION = 1024 * 1024
// after a failed fetch or metadata request: 100 ms doubling to 2 s, as kafkajs's consumer retried
const BACKOFF_MIN_MS = 100
const BACKOFF_MAX_MS = 2000
const DEFAULT_METADATA_MAX_AGE_MS = 30_000
// A start at 'latest' asks for the end offsets again, 250 ms doubling to 1 s apart, for up to 20 s
// before its readers fail: a just-created topic lacks leaders for about a second, and a partition
// whose leader was killed has none for the failover (Kafka's broker.session.timeout.ms, 9 s, then
// the election: 8.0-12.7 s from the kill on the three-node suite). A subscribe waits that out and
// is served, instead of a refusal (1013) that sends every client arriving meanwhile into backoff.
const LIST_OFFSETS_DEADLINE_MS = 20_000
const LIST_OFFSETS_RETRY_MS = 250
const LIST_OFFSETS_RETRY_MAX_MS = 1000
// and the metadata of a topic it does not know, as often (the hub's topicOffsets retry did the same)
const UNKNOWN_TOPIC_ATTEMPTS = 5
const UNKNOWN_TOPIC_RETRY_MS = 250
// Kafka protocol error codes the reader answers itself
const OFFSET_OUT_OF_RANGE = 1
// FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH
const FETCH_SESSION_ERRORS = new Set([70, 71])
// no handler has a reader's batch: the next one runs at once
const RESOLVED: Promise<void> = Promise.resolve()

interface TopicState {
  name: string
  id: string | undefined
  partitions: Map<number, TopicPartition>
  /** per partition, its leader at the last metadata read (for partitions no reader reads yet) */
  leaders: number[]
  /** readers of this topic (a live feed, catch-up readers) */
  readers: Set<Reader>
}

interface TopicPartition {
  topic: TopicState
  partition: number
  /** broker node id of the leader; -1 until metadata names one */
  leader: number
  /** the last high watermark a fetch reported */
  high: bigint | undefined
  parts: Set<Part>
}

/** One reader's position in one partition. */
interface Part {
  reader: Reader
  tp: TopicPartition
  next: bigint
  /** in the start lane: fetched at once until caught up, then taken by the main fetch */
  lane: boolean
  paused: boolean
  /** the reader's handler has this partition's last batch */
  busy: boolean
  /** when a fetch last carried this part's offset: parts of one partition take turns */
  servedAt: number
}

/** What a request asked for: per partition, the offset fetched from */
type Sent = Map<TopicPartition, bigint>

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

/** The partition errors of a failed fetch, and the response they came in (the other partitions' records are good). */
function responseOf (error: unknown): PltFetchResponse | undefined {
  // ResponseError carries the response; a retried one is wrapped in MultipleErrors (errors[])
  const seen = new Set<unknown>()
  const stack = [error]
  while (stack.length > 0) {
    const e = stack.pop()
    if (!isRecord(e) || seen.has(e)) continue
    seen.add(e)
    const response = e.response
    if (isRecord(response) && Array.isArray(response.responses)) return response as unknown as PltFetchResponse
    if (Array.isArray(e.errors)) stack.push(...e.errors)
  }
  return undefined
}

function errorText (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

class Reader implements TopicReader {
  readonly topic: string
  readonly options: ReaderOptions
  readonly #fetcher: Fetcher
  readonly parts = new Map<number, Part>()
  /** handlers run one at a time per reader, in the order their batches came */
  chain: Promise<void> = RESOLVED
  stopped = false
  started = false
  /** start() has its leaders: errors from now on are the reader's to hear */
  resolved = false

  constructor (fetcher: Fetcher, options: ReaderOptions) {
    this.#fetcher = fetcher
    this.options = options
    this.topic = options.topic
  }

  async start (positions: Map<number, bigint | string> | 'latest'): Promise<Map<number, bigint>> {
    if (this.started) return new Map([...this.parts].map(([p, part]) => [p, part.next]))
    this.started = true
    return this.#fetcher.add(this, positions)
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.#fetcher.remove(this)
  }

  pause (partitions?: number[]): void {
    for (const part of this.#select(partitions)) part.paused = true
  }

  resume (partitions?: number[]): void {
    for (const part of this.#select(partitions)) part.paused = false
    this.#fetcher.kick()
  }

  seek (partition: number, offset: bigint | string): void {
    const part = this.parts.get(partition)
    if (!part) return
    part.next = BigInt(offset)
    part.lane = true
    this.#fetcher.kick()
  }

  #select (partitions?: number[]): Part[] {
    if (!partitions) return [...this.parts.values()]
    return partitions.map(p => this.parts.get(p)).filter(p => p !== undefined)
  }
}

/** Every group-less read of one KafkaClient: see the header. */
export class Fetcher {
  readonly #options: FetcherOptions
  readonly #log: Logger
  /** the two clients that take turns at the long poll (see the header), and the start lane */
  readonly #mains: Array<Consumer | undefined> = [undefined, undefined]
  /** per main client, the timer that closes it once it has carried no fetch for MAIN_IDLE_POLLS long polls */
  readonly #idleTimers: Array<NodeJS.Timeout | undefined> = [undefined, undefined]
  #lane: Consumer | undefined
  readonly #topics = new Map<string, TopicState>()
  readonly #byId = new Map<string, TopicState>()
  /** per node, the main clients' fetches in flight (what each asked for) and which of them is the current one */
  readonly #mainInFlight = new Map<number, { current: number, sent: Array<Sent | undefined>, joinedAt: number }>()
  /** nodes with a lane fetch in flight */
  readonly #laneInFlight = new Set<number>()
  /** nodes whose next fetch waits out a backoff */
  readonly #backoff = new Map<number, { ms: number, timer: NodeJS.Timeout | undefined }>()
  readonly #pending = new Set<string>()
  /** of #pending, the topics whose end offsets are wanted too */
  readonly #latest = new Set<string>()
  #resolving: Promise<Map<string, bigint[]>> | undefined
  #refreshTimer: NodeJS.Timeout | undefined
  #refreshing = false
  #closed = false
  /** failed fetches and metadata requests, for tests and logs */
  errors = 0
  /** fetch requests sent, by the main clients and by the lane: an idle node's lane sends none */
  readonly requests = { main: 0, lane: 0 }
  /** MAIN_MAX_WAIT_MS, or less when the request timeout would cut the long poll short */
  readonly #mainWaitMs: number

  constructor (options: FetcherOptions) {
    this.#options = options
    this.#log = options.logger
    this.#mainWaitMs = Math.min(MAIN_MAX_WAIT_MS, Math.floor(options.requestTimeoutMs / 2))
  }

  /** Broker connections this fetcher holds (tests: many topics share few). */
  get clients (): number {
    return this.#mains.filter(c => c !== undefined).length + (this.#lane ? 1 : 0)
  }

  /** the start lane, or main client 0 or 1 */
  #client (which: 'lane' | number): Consumer {
    if (this.#closed) throw new KafkaClosedError()
    let client = which === 'lane' ? this.#lane : this.#mains[which]
    if (client) return client
    client = new JavaReadsConsumer({
      clientId: `${this.#options.clientId}-${which === 'lane' ? 'lane' : which === 0 ? 'main' : 'main-b'}`,
      bootstrapBrokers: this.#options.brokers,
      ...platformaticSecurity(this.#options.security),
      // required by the constructor and never sent: no consume(), joinGroup() or commit() is called
      groupId: `${this.#options.clientId}.no-group`,
      autocommit: false,
      connectTimeout: this.#options.connectionTimeoutMs,
      timeout: this.#options.requestTimeoutMs,
      // the fetcher retries itself, with the metadata re-read in between (the client would repeat the same request)
      retries: 0
    })
    if (which === 'lane') this.#lane = client
    else this.#mains[which] = client
    return client
  }

  reader (options: ReaderOptions): TopicReader {
    if (this.#closed) throw new KafkaClosedError()
    return new Reader(this, options)
  }

  async add (reader: Reader, positions: Map<number, bigint | string> | 'latest'): Promise<Map<number, bigint>> {
    const latest = positions === 'latest'
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new KafkaClosedError()
      const topic = this.#topic(reader.topic)
      topic.readers.add(reader)
      if (!latest) for (const [partition, offset] of positions) this.#addPart(reader, topic, partition, BigInt(offset))
      if (!latest && topic.id !== undefined && [...reader.parts.values()].every(p => p.tp.leader >= 0)) break
      // readers added in the same tick share one Metadata request (and one ListOffsets)
      this.#pending.add(topic.name)
      if (latest) this.#latest.add(topic.name)
      this.#resolving ??= new Promise(resolve => setImmediate(resolve)).then(() => this.#resolve())
      let ends: Map<string, bigint[]>
      try {
        ends = await this.#resolving
      } catch (err) {
        this.remove(reader)
        throw err
      }
      if (topic.id !== undefined && (!latest || ends.has(topic.name))) {
        if (latest) ends.get(topic.name)!.forEach((end, partition) => this.#addPart(reader, topic, partition, end))
        break
      }
      this.remove(reader)
      // a topic created a moment ago can be unknown to the broker's metadata still: ask again for about a second
      if (attempt === UNKNOWN_TOPIC_ATTEMPTS || reader.stopped) throw new KafkaUnknownTopicError(topic.name)
      await new Promise(resolve => setTimeout(resolve, UNKNOWN_TOPIC_RETRY_MS))
    }
    const start = new Map([...reader.parts].map(([p, part]) => [p, part.next]))
    if (reader.stopped) {
      this.remove(reader)
      return start
    }
    reader.resolved = true
    this.#scheduleRefresh()
    this.kick()
    return start
  }

  remove (reader: Reader): void {
    const topic = this.#topics.get(reader.topic)
    for (const part of reader.parts.values()) part.tp.parts.delete(part)
    reader.parts.clear()
    if (!topic) return
    topic.readers.delete(reader)
    if (topic.readers.size === 0) {
      this.#topics.delete(topic.name)
      if (topic.id !== undefined) this.#byId.delete(topic.id)
    }
  }

  #topic (name: string): TopicState {
    let topic = this.#topics.get(name)
    if (!topic) {
      topic = { name, id: undefined, partitions: new Map(), leaders: [], readers: new Set() }
      this.#topics.set(name, topic)
    }
    return topic
  }

  #addPart (reader: Reader, topic: TopicState, partition: number, next: bigint): void {
    let tp = topic.partitions.get(partition)
    if (!tp) {
      tp = { topic, partition, leader: topic.leaders[partition] ?? -1, high: undefined, parts: new Set() }
      topic.partitions.set(partition, tp)
    }
    const part: Part = { reader, tp, next, lane: true, paused: false, busy: false, servedAt: 0 }
    reader.parts.set(partition, part)
    tp.parts.add(part)
  }

  async #resolve (): Promise<Map<string, bigint[]>> {
    const names = [...this.#pending]
    const latest = [...this.#latest].filter(name => this.#topics.get(name)?.readers.size)
    this.#pending.clear()
    this.#latest.clear()
    this.#resolving = undefined
    const failed = await this.#readMetadata(names, false)
    // not an unknown topic: the broker did not answer (starting readers hear it; running ones retry)
    if (failed) throw failed
    const known = latest.filter(name => this.#topics.get(name)?.id !== undefined)
    if (known.length === 0) return new Map()
    // a topic created a moment ago, or a partition whose leader is gone, lacks a leader still: ask again (LIST_OFFSETS_DEADLINE_MS)
    const deadline = Date.now() + LIST_OFFSETS_DEADLINE_MS
    for (let wait = LIST_OFFSETS_RETRY_MS; ; wait = Math.min(wait * 2, LIST_OFFSETS_RETRY_MAX_MS)) {
      try {
        return await this.#client('lane').listOffsets({ topics: known, timestamp: -1n })
      } catch (err) {
        this.errors++
        if (Date.now() + wait > deadline || this.#closed) throw new KafkaUnavailableError(errorText(err))
        await new Promise(resolve => setTimeout(resolve, wait))
        // a leader gone (killed, moved): the client would ask the cached one again; the next attempt asks the new one
        await this.#client('lane').metadata({ topics: known, forceUpdate: true, autocreateTopics: false }).catch(() => {})
      }
    }
  }

  /**
   * Reads the metadata of `names` (on the lane's connection: on the main one it
   * would queue behind a parked fetch) and records topic ids and leaders; a
   * following reader gets the partitions it has not seen. A topic the broker does
   * not know any more is reported to its readers, which stop.
   */
  async #readMetadata (names: string[], forceUpdate: boolean): Promise<Error | undefined> {
    if (names.length === 0 || this.#closed) return undefined
    let metadata
    try {
      metadata = await this.#client('lane').metadata({ topics: names, forceUpdate, autocreateTopics: false })
    } catch (err) {
      if (this.#closed) return undefined
      this.errors++
      this.#log.debug({ err, topics: names.length }, 'group-less reader: metadata request failed')
      // a broker down or moving: the fetches retry after their backoff, and read the metadata again then
      if (!this.#unknownTopic(err) && !/UNKNOWN_TOPIC|unknown topic|does not host this topic/i.test(errorText(err))) return new KafkaUnavailableError(errorText(err))
      // one request for several topics fails whole on one unknown topic: ask for each alone
      if (names.length > 1) {
        const errors = await Promise.all(names.map(name => this.#readMetadata([name], forceUpdate)))
        return errors.find(e => e !== undefined)
      }
      this.#topicGone(names[0]!)
      return undefined
    }
    for (const name of names) {
      const topic = this.#topics.get(name)
      const meta = metadata.topics.get(name)
      if (!topic) continue
      if (!meta) {
        this.#topicGone(name)
        continue
      }
      if (topic.id !== meta.id) {
        if (topic.id !== undefined) this.#byId.delete(topic.id)
        topic.id = meta.id
        this.#byId.set(meta.id, topic)
      }
      topic.leaders = meta.partitions.map(pm => pm?.leader ?? -1)
      meta.partitions.forEach((pm, partition) => {
        let tp = topic.partitions.get(partition)
        if (!tp) {
          // a partition added since the readers started: all of it is new to those that follow
          // (a reader still starting gets its partitions from its start)
          for (const reader of topic.readers) {
            if (reader.resolved && reader.options.followNewPartitions && !reader.parts.has(partition)) this.#addPart(reader, topic, partition, 0n)
          }
          tp = topic.partitions.get(partition)
          if (!tp) return
        }
        tp.leader = pm?.leader ?? -1
      })
    }
  }

  #unknownTopic (err: unknown): boolean {
    const seen = new Set<unknown>()
    const stack = [err]
    while (stack.length > 0) {
      const e = stack.pop()
      if (!isRecord(e) || seen.has(e)) continue
      seen.add(e)
      if (e.apiId === 'UNKNOWN_TOPIC_OR_PARTITION' || e.apiId === 'UNKNOWN_TOPIC_ID') return true
      if (Array.isArray(e.errors)) stack.push(...e.errors)
      if (e.cause) stack.push(e.cause)
    }
    return false
  }

  #topicGone (name: string): void {
    const topic = this.#topics.get(name)
    if (!topic) return
    for (const reader of [...topic.readers]) {
      this.remove(reader)
      if (!reader.resolved) continue // its start() throws instead
      reader.stopped = true
      reader.options.onError?.(new KafkaUnknownTopicError(name))
    }
  }

  /** Re-reads every topic's metadata every metadataMaxAgeMs (the shortest a reader asks for) while any is read. */
  #scheduleRefresh (): void {
    if (this.#refreshTimer || this.#closed || this.#topics.size === 0) return
    let age = DEFAULT_METADATA_MAX_AGE_MS
    for (const topic of this.#topics.values()) {
      for (const reader of topic.readers) age = Math.min(age, reader.options.metadataMaxAgeMs ?? DEFAULT_METADATA_MAX_AGE_MS)
    }
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined
      this.#refresh(true).finally(() => this.#scheduleRefresh())
    }, age)
    this.#refreshTimer.unref()
  }

  async #refresh (forceUpdate: boolean): Promise<void> {
    if (this.#refreshing || this.#closed) return
    this.#refreshing = true
    try {
      await this.#readMetadata([...this.#topics.keys()], forceUpdate)
    } finally {
      this.#refreshing = false
    }
    this.kick()
  }

  /**
   * Sends a fetch to every node that has partitions to read and none in flight.
   * A part the current main fetch does not carry (a lane part that caught up, a
   * part resumed or done with its handler) is taken by the other main client,
   * in a fetch that carries everything; that one becomes the current one, and
   * the one it replaced is not sent again when it comes back. With both in
   * flight, such parts wait in the start lane until one of them returns.
   */
  kick (): void {
    if (this.#closed) return
    const main = new Set<number>()
    const lane = new Set<number>()
    const uncovered = new Map<number, Part[]>()
    for (const topic of this.#topics.values()) {
      if (topic.id === undefined) continue
      for (const tp of topic.partitions.values()) {
        if (tp.leader < 0) continue
        const state = this.#mainInFlight.get(tp.leader)
        const current = state?.sent[state.current]
        for (const part of tp.parts) {
          if (part.paused || part.busy) continue
          if (part.lane && !this.#caughtUp(part)) {
            lane.add(tp.leader)
            continue
          }
          main.add(tp.leader)
          if (current === undefined) continue
          // carried at or below its offset: the fetch in flight returns with its records
          const at = current.get(tp)
          if (at !== undefined && part.next >= at) continue
          const parts = uncovered.get(tp.leader) ?? []
          parts.push(part)
          uncovered.set(tp.leader, parts)
        }
      }
    }
    for (const node of main) {
      if (this.#backoff.has(node)) continue
      let state = this.#mainInFlight.get(node)
      if (!state) {
        state = { current: 0, sent: [undefined, undefined], joinedAt: -Infinity }
        this.#mainInFlight.set(node, state)
      }
      if (state.sent[state.current] === undefined) {
        // both free: back to client 0, so that after a join client 1 goes idle on every broker and is closed
        if (state.sent[0] === undefined) state.current = 0
        this.#fetch(node, state.current)
        continue
      }
      const waiting = uncovered.get(node)
      if (!waiting) continue
      const other = 1 - state.current
      state.joinedAt = performance.now()
      if (state.sent[other] === undefined) {
        state.current = other
        this.#fetch(node, other)
        continue
      }
      // both parked: the lane polls these until a main client is free (at most MAIN_MAX_WAIT_MS)
      for (const part of waiting) part.lane = true
      lane.add(node)
    }
    for (const node of lane) if (!this.#laneInFlight.has(node) && !this.#backoff.has(node)) this.#fetch(node, 'lane')
  }

  #caughtUp (part: Part): boolean {
    return part.tp.high !== undefined && part.next >= part.tp.high
  }

  /**
   * The request for one node: each partition once (a fetch cannot name one twice),
   * at the offset of the part whose turn it is; parts of the same partition at
   * other offsets get theirs in the next requests.
   */
  #request (node: number, lane: boolean): { topics: PltFetchTopic[], sent: Sent, behind: boolean } {
    const topics: PltFetchTopic[] = []
    const sent: Sent = new Map()
    let behind = false
    for (const topic of this.#topics.values()) {
      if (topic.id === undefined) continue
      let request: PltFetchTopic | undefined
      for (const tp of topic.partitions.values()) {
        if (tp.leader !== node) continue
        let turn: Part | undefined
        for (const part of tp.parts) {
          if (part.paused || part.busy) continue
          // the main fetch takes lane parts that have caught up; the lane keeps them until then
          const wanted = lane ? part.lane : (!part.lane || this.#caughtUp(part))
          if (!wanted) continue
          if (!turn || part.servedAt < turn.servedAt) turn = part
        }
        if (!turn) continue
        if (!lane) {
          for (const part of tp.parts) if (part.lane && this.#caughtUp(part)) part.lane = false
        } else if (!this.#caughtUp(turn)) {
          behind = true
        }
        request ??= { topicId: topic.id, partitions: [] }
        request.partitions.push({ partition: tp.partition, fetchOffset: turn.next, partitionMaxBytes: MAX_BYTES_PER_PARTITION, currentLeaderEpoch: -1, lastFetchedEpoch: -1 })
        sent.set(tp, turn.next)
      }
      if (request) topics.push(request)
    }
    return { topics, sent, behind }
  }

  /** One fetch to `node`: on the start lane, or on main client 0 or 1. */
  #fetch (node: number, which: 'lane' | number): void {
    if (this.#closed) return
    const lane = which === 'lane'
    const { topics, sent, behind } = this.#request(node, lane)
    if (topics.length === 0) return
    let client: Consumer
    try {
      client = this.#client(which)
    } catch {
      return
    }
    const state = this.#mainInFlight.get(node)
    if (lane) {
      this.#laneInFlight.add(node)
    } else {
      state!.sent[which] = sent
      clearTimeout(this.#idleTimers[which])
      this.#idleTimers[which] = undefined
    }
    this.requests[lane ? 'lane' : 'main']++
    // the lane answers at once while a part in it is behind; caught-up parts wait there briefly for a main client
    const joining = state !== undefined && performance.now() - state.joinedAt < this.#mainWaitMs
    const maxWaitTime = lane ? (behind ? 0 : LANE_IDLE_WAIT_MS) : (joining ? Math.min(JOIN_WAIT_MS, this.#mainWaitMs) : this.#mainWaitMs)
    client.fetch({ node, topics, maxWaitTime, minBytes: 1, maxBytes: MAX_BYTES }, (err, response) => {
      if (lane) this.#laneInFlight.delete(node)
      else if (state!.sent[which] === sent) state!.sent[which] = undefined
      if (this.#closed) return
      if (err) {
        this.#failed(node, sent, err)
      } else {
        this.#backoff.delete(node)
        this.#deliver(response, sent)
        this.kick()
      }
      if (!lane) this.#closeWhenIdle(which)
    })
  }

  /** Main client `which` carries a fetch to some broker now. */
  #mainBusy (which: number): boolean {
    for (const state of this.#mainInFlight.values()) if (state.sent[which] !== undefined) return true
    return false
  }

  /** Closes main client `which` once it has carried no fetch for MAIN_IDLE_POLLS long polls (the next fetch on it opens it again). */
  #closeWhenIdle (which: number): void {
    if (this.#closed || this.#idleTimers[which] !== undefined || this.#mainBusy(which) || !this.#mains[which]) return
    const timer = setTimeout(() => {
      this.#idleTimers[which] = undefined
      const client = this.#mains[which]
      if (this.#closed || !client || this.#mainBusy(which)) return
      this.#mains[which] = undefined
      this.#log.debug({ client: which }, 'group-less reader: an idle main client closed')
      client.close(true).catch(() => {})
    }, MAIN_IDLE_POLLS * this.#mainWaitMs)
    timer.unref()
    this.#idleTimers[which] = timer
  }

  #failed (node: number, sent: Sent, err: unknown): void {
    this.errors++
    const response = responseOf(err)
    let refresh = response === undefined
    const outOfRange: Array<{ tp: TopicPartition, fetchOffset: bigint }> = []
    if (response) {
      // partitions without an error carry good records: deliver them
      this.#deliver(response, sent)
      for (const { topicId, partitions } of response.responses) {
        const topic = this.#byId.get(topicId)
        if (!topic) continue
        for (const p of partitions) {
          if (p.errorCode === 0) continue
          const tp = topic.partitions.get(p.partitionIndex)
          const at = tp && sent.get(tp)
          if (!tp || at === undefined) continue
          if (p.errorCode === OFFSET_OUT_OF_RANGE) outOfRange.push({ tp, fetchOffset: at })
          else refresh = true
        }
      }
      // a fetch session the broker dropped (its cache full, or the main client unused past its 120 s
      // eviction age): the client forgot it too, and the next fetch opens a new one; nothing moved
      if (response.errorCode !== 0 && !FETCH_SESSION_ERRORS.has(response.errorCode)) refresh = true
    }
    this.#log.debug({ err, node, refresh, outOfRange: outOfRange.length }, 'group-less fetch failed')
    const state = this.#backoff.get(node)
    const ms = refresh ? Math.min(BACKOFF_MAX_MS, state ? state.ms * 2 : BACKOFF_MIN_MS) : 0
    if (state?.timer) clearTimeout(state.timer)
    const entry: { ms: number, timer: NodeJS.Timeout | undefined } = { ms, timer: undefined }
    this.#backoff.set(node, entry)
    const work = Promise.all([
      outOfRange.length > 0 ? this.#reposition(outOfRange) : undefined,
      // leadership moved, a topic went or a connection broke: re-read where partitions are (forced, not cached)
      refresh ? this.#refresh(true) : undefined
    ])
    const retry = () => {
      if (this.#backoff.get(node) === entry) this.#backoff.delete(node)
      this.kick()
    }
    work.finally(() => {
      if (this.#closed) return
      entry.timer = setTimeout(retry, ms)
      entry.timer.unref()
    }).catch(() => {})
  }

  /**
   * OFFSET_OUT_OF_RANGE: the records asked for are gone (retention) or were never
   * written (a log truncated by an unclean election). Parts below the log start
   * restart there; parts past the end restart at the end.
   */
  async #reposition (partitions: Array<{ tp: TopicPartition, fetchOffset: bigint }>): Promise<void> {
    const byTopic = new Map<string, number[]>()
    for (const { tp } of partitions) {
      const list = byTopic.get(tp.topic.name) ?? []
      list.push(tp.partition)
      byTopic.set(tp.topic.name, list)
    }
    const topics = [...byTopic.keys()]
    const partitionsOf = Object.fromEntries(byTopic)
    try {
      const lane = this.#client('lane')
      const [earliest, latest] = await Promise.all([
        lane.listOffsets({ topics, partitions: partitionsOf, timestamp: -2n }),
        lane.listOffsets({ topics, partitions: partitionsOf, timestamp: -1n })
      ])
      for (const { tp, fetchOffset } of partitions) {
        const low = earliest.get(tp.topic.name)?.[tp.partition]
        const high = latest.get(tp.topic.name)?.[tp.partition]
        if (low === undefined || high === undefined) continue
        for (const part of tp.parts) {
          if (part.next !== fetchOffset) continue
          const to = part.next < low ? low : (part.next > high ? high : part.next)
          this.#log.warn({ topic: tp.topic.name, partition: tp.partition, from: part.next.toString(), to: to.toString() }, 'offset out of range: the reader moves to what the log holds')
          const gone = part.next < low ? part.next : undefined
          part.next = to
          part.lane = true
          if (gone !== undefined) {
            try {
              part.reader.options.onGone?.(tp.partition, gone, to)
            } catch (err) {
              part.reader.options.onError?.(err as Error)
            }
          }
        }
      }
    } catch (err) {
      this.errors++
      this.#log.debug({ err }, 'group-less reader: listOffsets after OFFSET_OUT_OF_RANGE failed')
    }
  }

  #deliver (response: PltFetchResponse | undefined, sent: Sent): void {
    if (!response) return
    const answered = new Set<TopicPartition>()
    for (const { topicId, partitions } of response.responses) {
      const topic = this.#byId.get(topicId)
      if (!topic) continue
      for (const p of partitions) {
        const tp = topic.partitions.get(p.partitionIndex)
        if (!tp) continue
        answered.add(tp)
        if (p.errorCode !== 0) continue
        const at = sent.get(tp)
        if (at === undefined) continue
        this.#deliverPartition(tp, at, p)
      }
    }
    // A partition a fetch session left out of the response had nothing new (KIP-227: no records,
    // no change of high watermark): its offset is the end. Its parts had their turn, and lane parts
    // have caught up (or the lane would ask for a partition it knows nothing of, at once, forever).
    const now = performance.now()
    for (const [tp, fetchOffset] of sent) {
      if (!answered.has(tp)) tp.high = fetchOffset
      for (const part of tp.parts) if (part.next === fetchOffset) part.servedAt = now
    }
  }

  #deliverPartition (tp: TopicPartition, fetchOffset: bigint, p: PltPartitionResponse): void {
    // the broker's latest word, not the highest seen: a leader's log can be truncated (unclean election)
    if (p.highWatermark >= 0n) tp.high = p.highWatermark
    let records: ConsumedRecord[] | undefined
    let offsets: bigint[] | undefined
    let end = fetchOffset
    for (const batch of p.records ?? []) {
      const batchEnd = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n
      if (batchEnd > end) end = batchEnd
      // transaction markers are no records of anyone's (an aborted transaction's batches come empty: java-reads.ts)
      if ((batch.attributes & CONTROL_BATCH) !== 0) continue
      for (const r of batch.records) {
        const offset = batch.firstOffset + BigInt(r.offsetDelta)
        // a batch comes whole: records before the fetch offset were delivered already
        if (offset < fetchOffset) continue
        const headers: Record<string, Buffer> = {}
        // a header repeated in the record: the last wins, as Kafka's own clients' lastHeader()
        for (const [name, value] of r.headers) if (name !== null && value !== null) headers[name.toString()] = value
        records ??= []
        offsets ??= []
        offsets.push(offset)
        records.push({
          topic: tp.topic.name,
          partition: tp.partition,
          offset: offset.toString(),
          // a LogAppendTime batch's records carry its max timestamp (java-reads.ts)
          timestamp: (batch.firstTimestamp + r.timestampDelta).toString(),
          key: r.key,
          value: r.value,
          headers
        })
      }
    }
    if (end <= fetchOffset) return
    const highWatermark = (tp.high ?? end).toString()
    for (const part of [...tp.parts]) {
      // the batch serves every part that waits somewhere inside it (several resumes of one partition)
      if (part.next < fetchOffset || part.next >= end || part.paused || part.busy || part.reader.stopped) continue
      let mine: ConsumedRecord[] = []
      if (records && offsets) {
        let first = 0
        while (first < offsets.length && offsets[first]! < part.next) first++
        mine = first === 0 ? records : records.slice(first)
      }
      part.next = end
      if (mine.length === 0) continue
      this.#hand(part, { topic: tp.topic.name, partition: tp.partition, highWatermark, records: mine })
    }
  }

  #hand (part: Part, batch: RecordBatch): void {
    const reader = part.reader
    let result: void | Promise<void>
    try {
      // handlers of one reader run in turn: a batch waits for the one before it
      result = reader.chain === RESOLVED ? reader.options.onBatch(batch) : undefined
    } catch (err) {
      reader.options.onError?.(err as Error)
      return
    }
    if (reader.chain !== RESOLVED) {
      part.busy = true
      reader.chain = reader.chain.then(() => reader.stopped ? undefined : reader.options.onBatch(batch))
      this.#settle(part, reader.chain)
      return
    }
    if (result && typeof (result as Promise<void>).then === 'function') {
      part.busy = true
      reader.chain = result
      this.#settle(part, result)
    }
  }

  #settle (part: Part, done: Promise<void>): void {
    const reader = part.reader
    const finish = () => {
      part.busy = false
      if (reader.chain === done) reader.chain = RESOLVED
      this.kick()
    }
    done.then(finish, err => {
      reader.options.onError?.(err instanceof Error ? err : new KafkaUnavailableError(errorText(err)))
      finish()
    })
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#refreshTimer)
    for (const state of this.#backoff.values()) clearTimeout(state.timer)
    this.#backoff.clear()
    for (const timer of this.#idleTimers) clearTimeout(timer)
    this.#idleTimers.fill(undefined)
    const clients = [...this.#mains, this.#lane]
    this.#mains.fill(undefined)
    this.#lane = undefined
    this.#topics.clear()
    this.#byId.clear()
    // force: a fetch parked in its long poll would otherwise hold close() for up to MAIN_MAX_WAIT_MS
    await Promise.allSettled(clients.map(c => c?.close(true)))
  }
}
