// Fastify-free and client-free: the node's publishes, from all its sockets,
// gathered into few produce requests, each caller told exactly where Kafka
// wrote its own record.
//
// One record per request cost a round trip and the client's whole per-request
// path each: measured before this file (bench/publish.ts), a bare kafkajs
// producer wrote 27× more records per second in batches of 100 than one at a
// time. Here the records of a node wait in one FIFO lane; one request is in
// flight at a time and carries what arrived while the previous one was out
// (group commit), so at low load a record waits one event-loop turn (the
// linger: setImmediate, no timer) and at high load requests grow by
// themselves (210-248 records per request at the maximum of bench/publish.ts).
// One at a time keeps each partition's records in the order they were handed
// in, which concurrent sends do not: seen with kafkajs, the last two of 200
// swapped; and @platformatic/kafka (the producer now, producer.ts), after a
// request fails with OUT_OF_ORDER_SEQUENCE_NUMBER, takes a new producer id and
// sends that request again, so one sent behind a request being retried could
// be written before it. It is no loss at the maximum: there the gateway's
// event loop is 92-98 % busy, so the rate is bound by its CPU per publish, not
// by requests in flight. Measured with kafkajs (bench/publish.ts, 20 sockets ×
// 64 in flight, 2026-12-04, runs interleaved on a machine at load 8-10): two
// requests handed to the client at once gave 16.0, 14.6, 19.6 thousand
// acked/s against 13.7, 28.0, 19.3 with one. Both clients send one request at
// a time per connection when idempotent anyway (kafkajs 2.2.4 locks each
// broker around a produce request; @platformatic/kafka 2.12.1 sets
// maxInflights to 1). Re-checked with @platformatic/kafka and lean clients
// (2026-12-05, load 1.2-1.9, interleaved): two lanes taking turns gave 138.7
// and 153.5 thousand acked/s against 146.8 and 140.8 with one.
//
// Where each record went: the send function pins every message's partition
// on the message before its request is built (producer.ts does: murmur2 of the
// key, as the Java client, or round robin without one), so a retry inside the
// client resends the same records and the broker's idempotence dedups it.
// Kafka appends a partition's records of one request in order, so a record's
// offset is its partition's base offset plus its index among that partition's
// records in the request.
//
// What one bad record must not do to the others:
// - the client fails a whole request when one partition of it is refused
//   (kafkajs then rolled back every partition's sequence numbers, although the
//   broker wrote the others; @platformatic/kafka forgets its producer id): a
//   record too large for its topic must never share a request. So a record of SOLO_BYTES or more goes alone, and a shared
//   request holds at most MAX_BYTES of records, a quarter of Kafka's default
//   max.message.bytes (1 MiB): topics configured below that could still
//   refuse a shared request whole.
// - a topic Kafka does not have fails only after the client's metadata
//   retries (1.5-1.7 s with the shared producer's retry settings), and would hold
//   the whole lane that long: a topic joins the lane only once a request to it
//   succeeded. Until then its first record goes alone, beside the lane, and
//   the topic's next records wait for that answer (then join the lane, in
//   order, or try again in a request of their own).
import type { OutgoingRecord, RecordMetadata } from './kafka.ts'
import { KafkaTimeoutError, KafkaUnavailableError } from './errors.ts'

/** A record as the send function gets it: the send sets `partition` before the request is built. */
export type BatchMessage = OutgoingRecord

export interface TopicMessages {
  topic: string
  messages: BatchMessage[]
}

/** What a produce response says for one partition of the request. */
export interface PartitionAck {
  topicName: string
  partition: number
  /** the offset of that partition's first record in the request */
  baseOffset?: string
}

export interface PublishBatcherOptions {
  /** one produce request with acks from all in-sync replicas (kafkajs: producer.sendBatch) */
  send (topicMessages: TopicMessages[]): Promise<PartitionAck[]>
  /** a failed request's error, as the callers of `topic` hear it */
  classify (err: unknown, topic: string): Error
  /** records per request */
  maxRecords?: number
  /** record bytes (key, value, headers) per request */
  maxBytes?: number
  /** a record at least this large goes in a request of its own */
  soloBytes?: number
  /**
   * After a request that failed across several partitions, before the next is sent: kafkajs
   * has rolled back every partition's sequence numbers although the broker wrote some of
   * them, and the producer's next request to those partitions would fail for good (seen:
   * every later publish refused). kafka.ts replaces the producer (a new producer id).
   */
  recover? (): Promise<void>
}

// 256 records: bare kafkajs gained 27× from 1 to 100 records per request; past a few
// hundred little is left to gain, and kafkajs encodes a request in one synchronous step
// that the event loop waits for (and groups a topic's records by partition in time
// quadratic in their number: groupMessagesPerPartition copies the array per record).
// Measured at 20 sockets × 64 in flight, 2026-12-04: 64 and 128 gave less (17.6 / 10.2 and
// 24.0 / 13.7 thousand acked/s against 37.1 / 21.1 for 256, interleaved); 512 and 1,024
// no clear gain (18.4 / 14.7 and 40.7 / 25.7 against 39.6 / 30.9 for 256), on a loaded machine.
// Again with @platformatic/kafka and lean clients (2026-12-05, where every request is full at
// the maximum): 1,024 gave 7.5 / 7.9 µs of gateway CPU per publish against 8.6 / 6.5 for 256
export const MAX_RECORDS = 256
// 256 KiB: a quarter of Kafka's default max.message.bytes (1,048,588), which bounds each
// partition's batch: a shared request fits it even when all its records hash to one partition
export const MAX_BYTES = 256 * 1024
// 64 KiB: a record this large is rarely one of many, and alone it can be refused alone
export const SOLO_BYTES = 64 * 1024
const SAFE = BigInt(Number.MAX_SAFE_INTEGER)

interface Entry {
  topic: string
  message: BatchMessage
  bytes: number
  resolve (metadata: RecordMetadata): void
  reject (err: Error): void
  /** answered: acked, refused or timed out (a promise settles once; the timeout lists skip it) */
  done: boolean
  /** Date.now() by which it is answered SLUICE_KAFKA_TIMEOUT if Kafka has not acked it; 0: none */
  deadline: number
}

/** Records handed in with the same timeout, in the order handed in: so in the order of their deadlines. */
interface TimeoutList {
  ms: number
  entries: Entry[]
  /** entries before it are answered */
  head: number
}

// a timeout list drops its answered head once this many are behind it (and they are over half of it)
const COMPACT_AT = 1024

function byteLength (data: Buffer | string | null | undefined): number {
  if (data === null || data === undefined) return 0
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length
}

/** What a record weighs in a request, framing aside. */
export function recordBytes (record: OutgoingRecord): number {
  let bytes = byteLength(record.key) + byteLength(record.value)
  for (const [name, value] of Object.entries(record.headers ?? {})) bytes += Buffer.byteLength(name) + byteLength(value)
  return bytes
}

export class PublishBatcher {
  readonly #send: PublishBatcherOptions['send']
  readonly #classify: PublishBatcherOptions['classify']
  readonly #maxRecords: number
  readonly #maxBytes: number
  readonly #soloBytes: number
  /** records of topics known to Kafka, in the order they were handed in */
  readonly #lane: Entry[] = []
  readonly #known = new Set<string>()
  /**
   * Topics whose records together were too large for them in a shared request (a topic
   * configured with max.message.bytes below MAX_BYTES): from then on each of their records
   * goes alone, so that they can only be refused one by one, each for itself.
   */
  readonly #solo = new Set<string>()
  readonly #recover: (() => Promise<void>) | undefined
  /** topics whose first request is out: their records that came meanwhile */
  readonly #probing = new Map<string, Entry[]>()
  #sending = false
  #scheduled = false
  /** requests sent (lane and probes) and the records they carried: benches read requests' size */
  #requests = 0
  #records = 0
  /** requests out now, and who waits for none to be */
  #out = 0
  #idle: Array<() => void> = []
  /**
   * Publish timeouts: one timer for all records instead of one per record (a timer and a
   * Promise.race per publish in the session were ~1.1 s of a 34 s busy CPU profile of
   * bench/publish.ts). One FIFO list per distinct timeout, the timer set for the earliest
   * head that is not answered yet.
   */
  readonly #timeouts = new Map<number, TimeoutList>()
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity

  constructor (options: PublishBatcherOptions) {
    this.#send = options.send
    this.#classify = options.classify
    this.#maxRecords = options.maxRecords ?? MAX_RECORDS
    this.#maxBytes = options.maxBytes ?? MAX_BYTES
    this.#soloBytes = options.soloBytes ?? SOLO_BYTES
    this.#recover = options.recover
  }

  /** produce requests sent so far and the records they carried */
  get sent (): { requests: number, records: number } {
    return { requests: this.#requests, records: this.#records }
  }

  /**
   * Resolves once every record handed in so far has its answer (acked or refused): a close
   * lets them finish before the producer goes. One promise for all of them: tracking each
   * publish's promise cost 0.5 s of a 28 s busy profile of bench/publish.ts.
   */
  async settled (): Promise<void> {
    while (this.waiting > 0 || this.#out > 0 || this.#scheduled) {
      await new Promise<void>(resolve => {
        this.#idle.push(resolve)
        // records waiting with nothing out: a drain is scheduled; wake up again after it started
        if (this.#out === 0) setImmediate(resolve)
      })
    }
  }

  /** records handed in and not yet sent */
  get waiting (): number {
    let count = this.#lane.length
    for (const entries of this.#probing.values()) count += entries.length
    return count
  }

  /** Resolves with where Kafka wrote `record`, once Kafka acked it; rejects with the classified error of its request. */
  publish (topic: string, record: OutgoingRecord, timeoutMs?: number): Promise<RecordMetadata> {
    return new Promise((resolve, reject) => {
      // a copy: the send pins the partition on it
      const entry: Entry = { topic, message: { ...record }, bytes: recordBytes(record), resolve, reject, done: false, deadline: 0 }
      if (timeoutMs !== undefined) this.#time(entry, timeoutMs)
      if (this.#known.has(topic)) {
        this.#lane.push(entry)
        this.#schedule()
        return
      }
      const waiting = this.#probing.get(topic)
      if (waiting) {
        waiting.push(entry)
        return
      }
      this.#probing.set(topic, [])
      this.#probe(topic, [entry])
    })
  }

  /**
   * `entry` is answered SLUICE_KAFKA_TIMEOUT if Kafka has not acked it within `ms`. It is
   * still sent if it was not yet (the error says it may still be written, as any timeout
   * of a request already out must).
   */
  #time (entry: Entry, ms: number): void {
    entry.deadline = Date.now() + ms
    let list = this.#timeouts.get(ms)
    if (!list) {
      list = { ms, entries: [], head: 0 }
      this.#timeouts.set(ms, list)
    }
    // forget the answered ones at the head: the list holds about what is unanswered
    while (list.head < list.entries.length && list.entries[list.head]!.done) list.head++
    if (list.head >= COMPACT_AT && list.head * 2 > list.entries.length) {
      list.entries = list.entries.slice(list.head)
      list.head = 0
    }
    list.entries.push(entry)
    if (entry.deadline < this.#timerAt) this.#arm(entry.deadline)
  }

  #arm (at: number): void {
    clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - Date.now()))
    // a timer of its own must not hold a process open: every record it waits for is a request out, which does
    this.#timer.unref()
  }

  #expire (): void {
    this.#timer = undefined
    this.#timerAt = Infinity
    const now = Date.now()
    let next = Infinity
    for (const [ms, list] of this.#timeouts) {
      const entries = list.entries
      while (list.head < entries.length) {
        const entry = entries[list.head]!
        if (!entry.done) {
          if (entry.deadline > now) {
            next = Math.min(next, entry.deadline)
            break
          }
          this.#refuse(entry, new KafkaTimeoutError(ms))
        }
        list.head++
      }
      if (list.head === entries.length) this.#timeouts.delete(ms)
    }
    if (next < Infinity) this.#arm(next)
  }

  #answer (entry: Entry, metadata: RecordMetadata): void {
    entry.done = true
    entry.resolve(metadata)
  }

  #refuse (entry: Entry, err: Error): void {
    entry.done = true
    entry.reject(err)
  }

  // the records read in the same turn of the event loop (a socket's TCP chunk, several sockets' frames) go together
  #schedule (): void {
    if (this.#sending || this.#scheduled || this.#lane.length === 0) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#drain()
    })
  }

  async #drain (): Promise<void> {
    if (this.#sending) return
    this.#sending = true
    try {
      while (this.#lane.length > 0) {
        const batch = this.#take(this.#lane)
        const err = await this.#request(batch)
        // a topic deleted since: its next records try on their own again, without holding the lane
        if ((err as { code?: string } | undefined)?.code === 'SLUICE_KAFKA_UNKNOWN_TOPIC' || err instanceof SharedUnknownTopic) {
          for (const entry of batch) this.#known.delete(entry.topic)
        }
      }
    } finally {
      this.#sending = false
    }
  }

  /** A topic's first requests, beside the lane, until one of them shows Kafka has the topic. */
  async #probe (topic: string, batch: Entry[]): Promise<void> {
    for (;;) {
      const err = await this.#request(batch)
      const waiting = this.#probing.get(topic)!
      // too large: the topic exists, the record did not fit
      if (!err || (err as { code?: string }).code === 'SLUICE_KAFKA_TOO_LARGE') {
        this.#probing.delete(topic)
        this.#known.add(topic)
        this.#lane.push(...waiting)
        this.#schedule()
        return
      }
      if (waiting.length === 0) {
        this.#probing.delete(topic)
        return
      }
      batch = this.#take(waiting)
    }
  }

  /** The first records of `list` that fit one request (removed from it): a large one alone. */
  #take (list: Entry[]): Entry[] {
    if (list[0]!.bytes >= this.#soloBytes || this.#solo.has(list[0]!.topic)) return list.splice(0, 1)
    let count = 0
    let bytes = 0
    while (count < list.length && count < this.#maxRecords) {
      const next = list[count]!
      if (next.bytes >= this.#soloBytes || this.#solo.has(next.topic) || bytes + next.bytes > this.#maxBytes) break
      bytes += next.bytes
      count++
    }
    return list.splice(0, count)
  }

  /** Sends one request and answers each of its records; the request's error, if it failed. */
  async #request (batch: Entry[]): Promise<Error | undefined> {
    const byTopic = new Map<string, Entry[]>()
    for (const entry of batch) {
      let entries = byTopic.get(entry.topic)
      if (!entries) {
        entries = []
        byTopic.set(entry.topic, entries)
      }
      entries.push(entry)
    }
    let acks: PartitionAck[]
    this.#requests++
    this.#records += batch.length
    this.#out++
    try {
      acks = await this.#send([...byTopic].map(([topic, entries]) => ({ topic, messages: entries.map(e => e.message) })))
    } catch (err) {
      this.#done()
      let first: Error | undefined
      const shared = batch.length > 1
      for (const [topic, entries] of byTopic) {
        let error = this.#classify(err, topic)
        const code = (error as { code?: string }).code
        // kafkajs does not say which topic it could not find: none of them is blamed for it
        if (byTopic.size > 1 && code === 'SLUICE_KAFKA_UNKNOWN_TOPIC') error = new SharedUnknownTopic()
        // records under the solo size, too large only together: none of them is too large on its
        // own, and their topics' records go alone from now on (a retry is then judged by itself)
        if (shared && code === 'SLUICE_KAFKA_TOO_LARGE') {
          for (const t of byTopic.keys()) this.#solo.add(t)
          error = new SharedTooLarge()
        }
        first ??= error
        for (const entry of entries) this.#refuse(entry, error)
      }
      const partitions = new Set(batch.map(entry => `${entry.topic}/${entry.message.partition}`))
      if (partitions.size > 1 && this.#recover) await this.#recover().catch(() => {})
      return first
    }
    this.#done()
    const bases = new Map<string, Map<number, bigint>>()
    for (const ack of acks) {
      if (ack.baseOffset === undefined) continue
      let partitions = bases.get(ack.topicName)
      if (!partitions) {
        partitions = new Map()
        bases.set(ack.topicName, partitions)
      }
      partitions.set(ack.partition, BigInt(ack.baseOffset))
    }
    for (const [topic, entries] of byTopic) {
      // offsets as numbers while they are exact (below 2^53, which a partition takes centuries to
      // reach); a BigInt and its string per record was a visible share of the request's answer
      const next = new Map<number, number | bigint>()
      const partitions = bases.get(topic)
      for (const entry of entries) {
        const partition = entry.message.partition
        const base = partition === undefined ? undefined : partitions?.get(partition)
        // a partition the answer does not cover (kafkajs left out, without an error, a partition its metadata did not know yet)
        if (partition === undefined || base === undefined || base < 0n) {
          this.#refuse(entry, new KafkaUnavailableError(`partition ${partition ?? '?'} of "${topic}" was not in the producer's metadata; the record was not written`))
          continue
        }
        let offset = next.get(partition)
        if (offset === undefined) offset = base + BigInt(entries.length) < SAFE ? Number(base) : base
        next.set(partition, typeof offset === 'number' ? offset + 1 : offset + 1n)
        this.#answer(entry, { topic, partition, offset: String(offset) })
      }
    }
    return undefined
  }

  #done (): void {
    this.#out--
    if (this.#out > 0) return
    const idle = this.#idle
    this.#idle = []
    for (const wake of idle) wake()
  }
}

/** A shared request was refused as too large for a topic, though no record of it is large alone. */
class SharedTooLarge extends KafkaUnavailableError {
  constructor () {
    super('records sharing a produce request were together too large for a topic; this one was not acked and may be sent again')
  }
}

/** A shared request failed because one of its topics is unknown, and kafkajs does not say which. */
class SharedUnknownTopic extends KafkaUnavailableError {
  constructor () {
    super('a produce request shared with a topic Kafka does not have failed; the record may be sent again')
  }
}
