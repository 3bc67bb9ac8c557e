// MQTT retained messages (3.3.1.3), kept where Sluice keeps everything: in
// Kafka. One compacted topic (`mqtt.retainedTopic`, default
// sluice.mqtt.retained) holds the last retained message of each MQTT topic
// name, keyed by that name; an empty retained payload is written as a
// tombstone, which compaction turns into "no retained message" [MQTT-3.3.1-6],
// [MQTT-3.3.1-7]. Every node reads the topic whole, group-less, from its first
// offset, and follows it live: the set is in each node's memory, so a
// SUBSCRIBE is answered from memory, on whichever node the client reached, and
// a second node started later reads the same set from Kafka.
import type { KafkaClient, RecordBatch, TopicReader } from '@sluice/kafka'
import type { Logger } from '@sluice/protocol/logger'
import { gatewayDefaults } from '@sluice/config/gateway'
import { matchesLevels } from './mapping.ts'

// mqtt.retainedTopic and mqtt.retainedMaxBytes: the values are the gateway's schema's (packages/config/src/gateway.ts)
export const DEFAULT_RETAINED_TOPIC = gatewayDefaults.mqtt.retainedTopic
/**
 * Bytes of retained messages one node holds, counted as topic name + payload + ENTRY_OVERHEAD: 64 MiB. Every
 * node holds the whole set and reads it from Kafka at start (about seven 10 MiB fetches), and every
 * wildcard SUBSCRIBE walks it: 64 MiB is 1/16 of a 1 GiB container and, at ~1 KiB per message, ~60,000
 * retained topics (a device fleet's last states). Past it a retained PUBLISH of a new topic name, or one
 * that grows an existing one past it, is refused (0x97), never evicting another device's message.
 */
export const DEFAULT_RETAINED_MAX_BYTES = gatewayDefaults.mqtt.retainedMaxBytes
/** what a Map entry, its key string, a Buffer and the level array cost beyond the bytes themselves (measured order: ~200-300 B) */
export const ENTRY_OVERHEAD = 256
// after a failed start (Kafka down, topic not creatable): try again, as the hub's readers back off, up to 5 s
const RETRY_MIN_MS = 500
const RETRY_MAX_MS = 5000
// The set is complete when each partition's reader passed the end offset it had at start. Compaction may have
// removed the records at the very end (a tombstone past delete.retention.ms, 24 h), and then no record reaches
// that offset: a partition from which nothing came for 2 s after the start (a fetch with records returns at
// once; the reader's idle wait is 5 s, its start lane's 5 ms) is taken as read to its end.
const QUIET_DONE_MS = 2000

type RetainedKafka = Pick<KafkaClient, 'produce' | 'ensureTopics' | 'topicOffsets' | 'reader'>

export interface RetainedMessage {
  name: string
  levels: readonly string[]
  payload: Buffer
  /** the offset of the record that set it (per key, every record lands in one partition: offsets order them) */
  offset: bigint
  /** the QoS it was published at (its record's mqtt.qos header; 0 without one): sent at most at it [MQTT-3.8.4-8] */
  qos: 0 | 1
}

/** The header of a retained record that says its PUBLISH's QoS ('1'; absent for 0). */
export const QOS_HEADER = 'mqtt.qos'

function qosOf (headers: Record<string, Buffer> | undefined): 0 | 1 {
  const value = headers?.[QOS_HEADER]
  return value !== undefined && value.length === 1 && value[0] === 0x31 ? 1 : 0
}

export interface RetainedOptions {
  kafka: RetainedKafka
  topic?: string
  maxBytes?: number
  log: Logger
}

export class RetainedStore {
  readonly topic: string
  readonly maxBytes: number
  readonly #kafka: RetainedKafka
  readonly #log: Logger
  readonly #messages = new Map<string, RetainedMessage>()
  /**
   * Names this node deleted (put() of a tombstone, acked), with the tombstone's offset, until the reader
   * reads that far. A deleted name has no message left whose offset tells the reader that its older records
   * are stale: without this, a reader behind our writes brought a deleted message back (to new
   * subscribers, and against the bound) until it reached the tombstone. One entry per name, gone once read
   */
  readonly #deletedAt = new Map<string, bigint>()
  #bytes = 0
  #reader: TopicReader | undefined
  #stopped = false
  #retry: NodeJS.Timeout | undefined
  /** per partition, the offset reached at start that makes the set complete */
  #startEnds = new Map<number, bigint>()
  #loaded = false
  #lastBatchAt = 0
  #quiet: NodeJS.Timeout | undefined
  /** the start in flight: stop() waits for it, so that no reader starts after the Kafka client closed */
  #opening: Promise<void> | undefined
  #onLoaded: Array<() => void> = []

  constructor (options: RetainedOptions) {
    this.#kafka = options.kafka
    this.topic = options.topic ?? DEFAULT_RETAINED_TOPIC
    this.maxBytes = options.maxBytes ?? DEFAULT_RETAINED_MAX_BYTES
    this.#log = options.log
  }

  /** bytes held, as the bound counts them */
  get bytes (): number {
    return this.#bytes
  }

  get size (): number {
    return this.#messages.size
  }

  get loaded (): boolean {
    return this.#loaded
  }

  /**
   * Creates the compacted topic if absent, then reads it from its first offset and follows it. Never throws:
   * a failure is logged and tried again (the gateway serves MQTT meanwhile; SUBSCRIBE waits for the set).
   */
  start (): void {
    this.#attempt(RETRY_MIN_MS)
  }

  #attempt (backoffMs: number): void {
    if (this.#stopped) return
    const opening = this.#open()
    this.#opening = opening
    opening.catch(err => {
      if (this.#stopped) return
      this.#log.warn({ err, topic: this.topic }, 'MQTT retained messages not readable yet; trying again')
      const reader = this.#reader
      this.#reader = undefined
      reader?.stop().catch(() => {})
      this.#retry = setTimeout(() => this.#attempt(Math.min(backoffMs * 2, RETRY_MAX_MS)), backoffMs)
      this.#retry.unref()
    })
  }

  async #open (): Promise<void> {
    // compact: only each name's last record matters; one partition: the set is bounded and read whole by every node
    await this.#kafka.ensureTopics([{ topic: this.topic, partitions: 1, config: { 'cleanup.policy': 'compact' } }])
    const offsets = await this.#kafka.topicOffsets(this.topic)
    // stopped meanwhile (a gateway closed right after it started): no reader, whose fetches would outlive the client
    if (this.#stopped) return
    const starts = new Map<number, bigint>()
    this.#startEnds = new Map()
    for (const o of offsets) {
      starts.set(o.partition, BigInt(o.low))
      if (BigInt(o.high) > BigInt(o.low)) this.#startEnds.set(o.partition, BigInt(o.high))
    }
    this.#reader = this.#kafka.reader({
      topic: this.topic,
      followNewPartitions: true,
      onBatch: batch => this.#apply(batch),
      onError: err => this.#log.error({ err, topic: this.topic }, 'MQTT retained messages reader failed')
    })
    await this.#reader.start(starts)
    if (this.#stopped) return
    this.#lastBatchAt = Date.now()
    this.#checkLoaded()
    if (!this.#loaded) {
      this.#quiet = setInterval(() => {
        if (this.#loaded || Date.now() - this.#lastBatchAt < QUIET_DONE_MS) return
        this.#log.warn({ topic: this.topic, partitions: [...this.#startEnds.keys()] }, 'MQTT retained messages: the end offset was not reached (compacted away?); taken as read')
        this.#startEnds.clear()
        this.#checkLoaded()
      }, QUIET_DONE_MS / 4)
      this.#quiet.unref()
    }
  }

  #apply (batch: RecordBatch): void {
    this.#lastBatchAt = Date.now()
    let last = -1n
    for (const record of batch.records) {
      last = BigInt(record.offset)
      if (!record.key) continue
      const name = record.key.toString('utf8')
      const deleted = this.#deletedAt.get(name)
      if (deleted !== undefined) {
        // older than our own delete: stale. The tombstone itself (or anything newer) ends the guard
        if (last < deleted) continue
        this.#deletedAt.delete(name)
      }
      const current = this.#messages.get(name)
      // our own write was applied when Kafka acked it (put): the same record read back changes nothing
      if (current && current.offset >= last) continue
      if (!record.value || record.value.length === 0) {
        this.#delete(name)
        continue
      }
      const grows = entryBytes(name, record.value) - (current ? entryBytes(name, current.payload) : 0)
      if (!current && this.#bytes + grows > this.maxBytes) {
        // another node admitted it against its own view (or someone wrote the topic directly): the bound holds here
        this.#log.warn({ topic: this.topic, name, bytes: this.#bytes }, 'MQTT retained message past the bound, not held')
        continue
      }
      this.#set(name, record.value, last, qosOf(record.headers))
    }
    const end = this.#startEnds.get(batch.partition)
    if (end !== undefined && last + 1n >= end) {
      this.#startEnds.delete(batch.partition)
      this.#checkLoaded()
    }
  }

  #checkLoaded (): void {
    if (this.#loaded || this.#startEnds.size > 0 || !this.#reader) return
    this.#loaded = true
    clearInterval(this.#quiet)
    this.#log.info({ topic: this.topic, messages: this.#messages.size, bytes: this.#bytes }, 'MQTT retained messages loaded')
    for (const wake of this.#onLoaded.splice(0)) wake()
  }

  /** Resolves once the set read at start is complete, or after `timeoutMs` (false then). */
  async ready (timeoutMs: number): Promise<boolean> {
    if (this.#loaded) return true
    return new Promise(resolve => {
      const timer = setTimeout(() => {
        this.#onLoaded = this.#onLoaded.filter(w => w !== wake)
        resolve(false)
      }, timeoutMs)
      const wake = () => {
        clearTimeout(timer)
        resolve(true)
      }
      this.#onLoaded.push(wake)
    })
  }

  #set (name: string, payload: Buffer, offset: bigint, qos: 0 | 1): void {
    this.#delete(name)
    this.#messages.set(name, { name, levels: name.split('/'), payload, offset, qos })
    this.#bytes += entryBytes(name, payload)
  }

  #delete (name: string): void {
    const current = this.#messages.get(name)
    if (!current) return
    this.#messages.delete(name)
    this.#bytes -= entryBytes(name, current.payload)
  }

  /**
   * Whether a retained PUBLISH of `payload` on `name` fits the bound: a deletion (empty payload) always does;
   * a replacement if the set does not grow past the bound; a new name if it fits.
   */
  admits (name: string, payload: Buffer): boolean {
    if (payload.length === 0) return true
    const current = this.#messages.get(name)
    const grows = entryBytes(name, payload) - (current ? entryBytes(name, current.payload) : 0)
    return grows <= 0 || this.#bytes + grows <= this.maxBytes
  }

  /**
   * Writes the retained message of `name` (a tombstone for an empty payload) and resolves once Kafka acked
   * it; the set holds it from then on, on this node at once (a client that publishes then subscribes sees it),
   * on the others when their reader gets the record.
   */
  async put (name: string, payload: Buffer, options?: { timeoutMs?: number, qos?: 0 | 1 }): Promise<void> {
    const empty = payload.length === 0
    const qos = empty ? 0 : options?.qos ?? 0
    const record = { key: name, value: empty ? null : payload, ...(qos === 1 ? { headers: { [QOS_HEADER]: Buffer.from('1', 'latin1') } } : {}) }
    const meta = await this.#kafka.produce(this.topic, record, options)
    const offset = BigInt(meta.offset)
    const current = this.#messages.get(name)
    if (current && current.offset >= offset) return
    const deleted = this.#deletedAt.get(name)
    if (deleted !== undefined && deleted >= offset) return
    if (empty) {
      this.#delete(name)
      this.#deletedAt.set(name, offset)
    } else {
      // from here the message's own offset guards the name
      this.#deletedAt.delete(name)
      this.#set(name, payload, offset, qos)
    }
  }

  /** The retained messages whose name matches `filter` (split at '/'), $-names never by a leading wildcard. */
  * matching (filter: readonly string[]): Iterable<RetainedMessage> {
    for (const message of this.#messages.values()) {
      if (matchesLevels(filter, message.levels)) yield message
    }
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#retry)
    clearInterval(this.#quiet)
    for (const wake of this.#onLoaded.splice(0)) wake()
    await this.#opening?.catch(() => {})
    await this.#reader?.stop()
  }
}

function entryBytes (name: string, payload: Buffer): number {
  return Buffer.byteLength(name) + payload.length + ENTRY_OVERHEAD
}
