// The node's shared producer on @platformatic/kafka: the publish batcher's
// requests (publish-batcher.ts) and KafkaClient.produceBatch go through it.
//
// Why this client and not kafkajs: at the maximum of bench/publish.ts the
// gateway's event loop is 92-97 % busy, so its CPU per publish is the publish
// rate, and kafkajs spent a share of it that the gateway does not need: a
// Buffer per record to encode it and a grouping by partition quadratic in the
// records of a request (groupMessagesPerPartition). bench/producer-clients.ts
// measured, at the batcher's 256 records per request, 4.2-4.9 µs of CPU per
// record for kafkajs against 2.0-2.6 for @platformatic/kafka (bench/README.md,
// "Producer clients").
//
// What it keeps from the kafkajs producer:
// - idempotent, acks from all in-sync replicas: the client refuses anything
//   else when idempotent, and sets one request in flight per connection itself
//   (2.12.1: maxInflights 1); a retry inside it resends the same records with
//   the same sequence numbers, so the broker dedups a request it had written.
// - the partition of a keyed record is murmur2 of the key, as the Java client
//   and kafkajs put it (murmur2.ts): @platformatic/kafka's own default
//   partitioner takes the hash unsigned (`>>> 0`) and would put about half of
//   the keys elsewhere. So every record's partition is chosen here, from the
//   client's cached metadata, and pinned on the record before the request is
//   built: the batcher reads it there to tell each record its offset.
//   Records without a key go round robin per topic, as kafkajs's did.
// - a failed request makes the client forget its producer id and sequence
//   numbers (it takes a new id on the next send), which is what kafka.ts did
//   by hand for kafkajs after a request failed across partitions.
//
// One request at a time per topic, whoever sends it (the publish lane,
// produceBatch's callers: ingest, compat sessions, usage, the demo feed). The
// client retries a request that failed with a retriable error (NOT_LEADER
// while a leader moves) after a delay, while requests sent behind it go on;
// one of those is written first, the broker then refuses the retry as
// OUT_OF_ORDER_SEQUENCE, and the client takes a new producer id and writes it
// again: behind the later records, and twice if its first try had been
// written but not answered. Seen: packages/kafka/test/producer.test.ts, 20
// produceBatch calls made at once, the first call's 50 records written after
// the 19 others (1 run in 8). Per topic, not per producer: a request to a
// topic Kafka does not have fails only after the client's metadata retries
// (1.5-1.7 s), and must not hold the other topics' requests that long
// (publish-batcher.ts sends it beside its lane for that reason). The client
// sends one request per connection at a time anyway (maxInflights 1 when
// idempotent), and the lane gained nothing from two requests out at once.
import { Producer, ProduceAcks, type MessageToProduce } from '@platformatic/kafka'
import { murmur2 } from './murmur2.ts'
import { KafkaUnavailableError } from './errors.ts'
import { platformaticSecurity, type KafkaSecurity } from './security.ts'
import type { Bytes, OutgoingRecord } from './kafka.ts'
import type { PartitionAck, TopicMessages } from './publish-batcher.ts'

export interface SharedProducerOptions {
  brokers: string[]
  clientId: string
  connectionTimeoutMs: number
  requestTimeoutMs: number
  /** how often a failed request is tried again inside the client */
  retries: number
  /** ms before the first retry; doubles per retry, up to maxRetryMs */
  initialRetryMs: number
  maxRetryMs: number
  security?: KafkaSecurity
}

function toBuffer (data: Bytes): Buffer {
  return typeof data === 'string' ? Buffer.from(data) : data
}

// record headers as the client encodes them: names and values as bytes (its serializers are identities)
function toHeaders (headers: Record<string, Bytes> | undefined): Map<Buffer, Buffer> | undefined {
  if (!headers) return undefined
  let out: Map<Buffer, Buffer> | undefined
  for (const name in headers) {
    out ??= new Map()
    out.set(Buffer.from(name), toBuffer(headers[name]!))
  }
  return out
}

export class SharedProducer {
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>
  /** per topic, the partition the next record without a key goes to */
  readonly #roundRobin = new Map<string, number>()
  /** per topic, the last request sent to it: the next one to that topic starts when it is over (see the file's head) */
  readonly #previous = new Map<string, Promise<unknown>>()
  readonly #inFlight = new Map<string, number>()
  /** the most requests this producer ever had in flight at once to one topic: 1 (tests read it) */
  peakInFlightPerTopic = 0

  constructor (options: SharedProducerOptions) {
    this.#producer = new Producer({
      clientId: options.clientId,
      bootstrapBrokers: options.brokers,
      ...platformaticSecurity(options.security),
      connectTimeout: options.connectionTimeoutMs,
      timeout: options.requestTimeoutMs,
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
      retries: options.retries,
      retryDelay: (_client, _operation, attempt) => Math.min(options.initialRetryMs * 2 ** (attempt - 1), options.maxRetryMs)
    })
  }

  /** Connects and takes a producer id, so that the first publish does not wait for either. */
  async connect (): Promise<void> {
    await this.#producer.initIdempotentProducer({})
  }

  /**
   * One produce request (one per broker the partitions lead on) with acks from all
   * in-sync replicas, sent once the requests before it to its topics are over. Pins each record's
   * partition on it first (see the file's head); answers each partition's base offset.
   */
  send (topicMessages: TopicMessages[]): Promise<PartitionAck[]> {
    const topics = [...new Set(topicMessages.map(t => t.topic))]
    const before = topics.map(topic => this.#previous.get(topic)).filter(p => p !== undefined)
    const sent = (before.length === 0 ? this.#sendNow(topics, topicMessages) : Promise.all(before).then(() => this.#sendNow(topics, topicMessages)))
    const over = sent.then(() => {}, () => {})
    for (const topic of topics) this.#previous.set(topic, over)
    // forgotten once over, unless a later request to the topic is queued behind it (`over` never rejects)
    over.then(() => { for (const topic of topics) if (this.#previous.get(topic) === over) this.#previous.delete(topic) })
    return sent
  }

  async #sendNow (topics: string[], topicMessages: TopicMessages[]): Promise<PartitionAck[]> {
    for (const topic of topics) {
      const n = (this.#inFlight.get(topic) ?? 0) + 1
      this.#inFlight.set(topic, n)
      if (n > this.peakInFlightPerTopic) this.peakInFlightPerTopic = n
    }
    try {
      return await this.#request(topicMessages)
    } finally {
      for (const topic of topics) {
        const n = this.#inFlight.get(topic)! - 1
        if (n === 0) this.#inFlight.delete(topic)
        else this.#inFlight.set(topic, n)
      }
    }
  }

  async #request (topicMessages: TopicMessages[]): Promise<PartitionAck[]> {
    const counts = await this.#partitionCounts(topicMessages)
    const messages: Array<MessageToProduce<Buffer, Buffer, Buffer, Buffer>> = []
    for (const { topic, messages: records } of topicMessages) {
      const count = counts.get(topic)!
      for (const record of records) {
        record.partition = this.#partition(topic, record, count)
        const message: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = {
          topic,
          partition: record.partition,
          key: record.key === null || record.key === undefined ? undefined : toBuffer(record.key),
          value: record.value === null ? undefined : toBuffer(record.value)
        }
        const headers = toHeaders(record.headers)
        if (headers) message.headers = headers
        if (record.timestamp !== undefined) message.timestamp = BigInt(record.timestamp)
        messages.push(message)
      }
    }
    const result = await this.#producer.send({ messages })
    return (result.offsets ?? []).map(o => ({ topicName: o.topic, partition: o.partition, baseOffset: o.offset.toString() }))
  }

  #partition (topic: string, record: OutgoingRecord, count: number): number {
    if (typeof record.partition === 'number') return record.partition
    const key = record.key
    if (key !== null && key !== undefined) return (murmur2(key) & 0x7fffffff) % count
    const next = this.#roundRobin.get(topic) ?? 0
    this.#roundRobin.set(topic, (next + 1) % count)
    return next
  }

  /**
   * Each topic's partition count, from the client's metadata (cached; re-read when older than
   * its metadataMaxAge). A record asking for a partition the cache does not have yet (one just
   * added) has the metadata read again once; past that the request fails without being sent:
   * the client would write the record to that number modulo the partitions, elsewhere.
   */
  async #partitionCounts (topicMessages: TopicMessages[]): Promise<Map<string, number>> {
    const topics = topicMessages.map(t => t.topic)
    const beyond = (metadata: Awaited<ReturnType<Producer['metadata']>>): string | undefined => {
      for (const { topic, messages } of topicMessages) {
        const count = metadata.topics.get(topic)?.partitionsCount ?? 0
        for (const record of messages) {
          if (typeof record.partition === 'number' && (record.partition >= count || record.partition < 0)) return `partition ${record.partition} of "${topic}"`
        }
      }
      return undefined
    }
    let metadata = await this.#producer.metadata({ topics })
    if (beyond(metadata) !== undefined) {
      metadata = await this.#producer.metadata({ topics, forceUpdate: true })
      const missing = beyond(metadata)
      if (missing !== undefined) throw new KafkaUnavailableError(`${missing} is not in the producer's metadata; nothing of this request was written`)
    }
    const counts = new Map<string, number>()
    for (const topic of topics) counts.set(topic, metadata.topics.get(topic)!.partitionsCount)
    return counts
  }

  async close (): Promise<void> {
    await this.#producer.close()
  }
}
