// The one module, with producer.ts, reader.ts, group-reader.ts and java-reads.ts, that imports the Kafka
// client libraries: kafkajs (admin, classic group consumers) and @platformatic/kafka
// (the shared producer, producer.ts: less CPU per record; group-less reads, reader.ts:
// kafkajs has no assign-style consumer; group mode, group-reader.ts: KIP-848). Everything else sees only the
// types below, so a client can be measured against another and swapped here alone.
// Fastify-free: the gateway, the ingest app, the local stack script and the
// benchmarks all import it.
import {
  Kafka,
  logLevel,
  type Admin,
  type Consumer as KjsConsumer,
  type LogEntry,
  type IHeaders
} from 'kafkajs'
import './kafkajs-idle.ts'
import type { Logger } from '@sluice/protocol/logger'
import { kafkaDefaults } from '@sluice/config/schemas'
import { PublishBatcher } from './publish-batcher.ts'
import { SharedProducer } from './producer.ts'
import { Fetcher, type ReaderOptions, type TopicReader } from './reader.ts'
import { consumerGroupState, GroupReaders, type GroupProtocol } from './group-reader.ts'
import { kafkajsSecurity, type KafkaSecurity } from './security.ts'
import {
  KafkaClosedError,
  KafkaTimeoutError,
  KafkaTooLargeError,
  KafkaUnavailableError,
  KafkaUnknownTopicError
} from './errors.ts'

export type { ReaderOptions, TopicReader } from './reader.ts'
export type { GroupProtocol } from './group-reader.ts'
export type { KafkaSecurity, KafkaSasl, KafkaSecurityConfig, KafkaTls, SaslMechanism } from './security.ts'
export { securityFromConfig } from './security.ts'

// the logger contract is the shared vocabulary's; re-exported for the adapter's users
export type { Logger } from '@sluice/protocol/logger'

export interface KafkaOptions {
  brokers: string[]
  clientId: string
  /** TCP connect timeout; 3 s, as a broker on the same network answers in far less */
  connectionTimeoutMs?: number
  /** per request; 10 s leaves room for a slow produce with acks=all */
  requestTimeoutMs?: number
  /**
   * How often a request's connecting and metadata steps are retried inside it. kafkajs's
   * default (5 retries from 300 ms) nests inside the producer's own 4: with the broker
   * down, a produce took 19.4-22.3 s to fail here. A caller that retries on its own
   * (the ingest connector) sets fewer, so that an outage shows in seconds.
   */
  clusterRetry?: { retries: number, initialRetryTime: number, maxRetryTime: number }
  /** group mode's protocol; unset: KIP-848 where the broker offers it (Kafka 4 does), classic otherwise */
  groupProtocol?: GroupProtocol
  /** TLS and SASL to the brokers (security.ts); plain TCP unless given */
  security?: KafkaSecurity
  logger?: Logger
}

export type Bytes = Buffer | string
export interface OutgoingRecord {
  key?: Bytes | null
  value: Bytes | null
  headers?: Record<string, Bytes>
  partition?: number
  timestamp?: string
}

export interface RecordMetadata {
  topic: string
  partition: number
  offset: string
}

export interface ConsumedRecord {
  topic: string
  partition: number
  /** decimal string: Kafka offsets exceed 2^53 */
  offset: string
  timestamp: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, Buffer>
}

export interface RecordBatch {
  topic: string
  partition: number
  highWatermark: string
  records: ConsumedRecord[]
}

export interface PartitionOffsets {
  partition: number
  /** first offset still in the log */
  low: string
  /** next offset to be written */
  high: string
}

export interface TopicSpec {
  topic: string
  partitions?: number
  /** copies of each partition; the broker's default.replication.factor when absent */
  replicationFactor?: number
  config?: Record<string, string>
}

export interface ConsumerOptions {
  groupId: string
  topics: Array<string | RegExp>
  /** where a partition with no committed offset starts */
  fromBeginning?: boolean
  /** commit what the batch handler has processed */
  autoCommit?: boolean
  /** with autoCommit: at most this often (unset: after every batch) */
  autoCommitIntervalMs?: number
  sessionTimeoutMs?: number
  /** how often metadata is refreshed, which is how new partitions and topics are found */
  metadataMaxAgeMs?: number
  onBatch (batch: RecordBatch): Promise<void>
  onGroupJoin? (assignment: Record<string, number[]>): void
  onCrash? (error: Error, restarting: boolean): void
}

export interface TopicConsumer {
  readonly groupId: string
  start (): Promise<void>
  stop (): Promise<void>
  pause (topic: string, partitions?: number[]): void
  resume (topic: string, partitions?: number[]): void
  seek (topic: string, partition: number, offset: string): void
  commit (offsets: RecordMetadata[]): Promise<void>
}

// The producer retries with backoff; a produce that cannot reach a leader gives up
// after about 5 s (100 ms doubling, capped at 2 s, 4 retries: 1.5 s of waits plus the
// attempts) rather than @platformatic/kafka's default for an idempotent producer
// (retries without end), so a publisher hears UNAVAILABLE in bounded time.
const PRODUCER_RETRY = { retries: 4, initialRetryMs: 100, maxRetryMs: 2000 }

const silentLogger: Logger = { debug () {}, info () {}, warn () {}, error () {} }

// kafkajs logs some ordinary events at error level: a protocol error it retries itself
// ("Response GroupCoordinator ...: The group coordinator is not available" on a broker's first
// group, "leader moved") and a rebalance it rejoins on its own. An operator reading error lines
// must see only failures: these go to debug and info.
const ROUTINE: Array<{ namespace?: string, message: RegExp, level: 'debug' | 'info' }> = [
  { namespace: 'Connection', message: /^(\[Connection\] )?Response /, level: 'debug' },
  { message: /^The group is rebalancing, re-joining/, level: 'info' },
  { message: /^The coordinator is not aware of this member, re-joining/, level: 'info' },
  // PRODUCER_RETRY limits retries on purpose (a publisher hears UNAVAILABLE in bounded time); kafkajs warns at every start
  { namespace: 'Producer', message: /^Limiting retries for the idempotent producer/, level: 'debug' }
]

/** The level a kafkajs entry is logged at here (see ROUTINE). */
export function kafkaLogLevel (level: number, namespace: string, message: string): 'debug' | 'info' | 'warn' | 'error' | undefined {
  if (level === logLevel.ERROR || level === logLevel.WARN) {
    const routine = ROUTINE.find(r => (r.namespace === undefined || r.namespace === namespace) && r.message.test(message))
    if (routine) return routine.level
    return level === logLevel.ERROR ? 'error' : 'warn'
  }
  if (level === logLevel.INFO) return 'debug'
  return undefined
}

// what kafkajs retries until the caller's deadline and logs at each try: a connection refused or
// cut, a certificate not trusted, a SASL handshake refused
const CONNECTION_FAILURE = /^(Connection error|Failed to connect|SASL|Connection timeout)/

function logCreator (logger: Logger, onConnectionError: (message: string) => void) {
  return () => ({ level, namespace, log }: LogEntry) => {
    const { message, ...rest } = log
    if (level === logLevel.ERROR && CONNECTION_FAILURE.test(message)) onConnectionError(message)
    const at = kafkaLogLevel(level, namespace, message)
    if (at !== undefined) logger[at]({ kafka: rest, namespace }, message)
  }
}

function toHeaders (headers: IHeaders | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {}
  if (!headers) return out
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    // A header repeated in the record arrives as an array: keep the last, as Kafka's own clients' lastHeader() does.
    const last = Array.isArray(value) ? value[value.length - 1] : value
    if (last === undefined) continue
    out[name] = Buffer.isBuffer(last) ? last : Buffer.from(last)
  }
  return out
}

/**
 * Kafka's error names in a client-library error: on the error itself (@platformatic/kafka's apiId,
 * kafkajs's type), in the errors it gathers (a failed request's retries, a response's partitions),
 * in its cause and in the error kafkajs retried.
 */
function protocolErrors (err: unknown, into = new Set<string>(), depth = 0): Set<string> {
  const e = err as { apiId?: unknown, type?: unknown, errors?: unknown, cause?: unknown, originalError?: unknown } | null | undefined
  // a retried request nests one error per attempt: 8 levels is far more than any seen
  if (!e || typeof e !== 'object' || depth > 8) return into
  if (typeof e.apiId === 'string') into.add(e.apiId)
  // kafkajs: the name in `type`, the error it retried in `originalError`
  if (typeof e.type === 'string') into.add(e.type)
  if (Array.isArray(e.errors)) for (const inner of e.errors) protocolErrors(inner, into, depth + 1)
  if (e.cause) protocolErrors(e.cause, into, depth + 1)
  if (e.originalError) protocolErrors(e.originalError, into, depth + 1)
  return into
}

/** Kafka's answers that a partition's leader is elsewhere, or being elected: fresh metadata will tell where. */
const LEADER_MOVED = new Set(['NOT_LEADER_FOR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH'])
// kafkajs, when the leader it remembers is gone: it has dropped that broker and reads metadata on the next call
const BROKER_GONE = new Set(['KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSBrokerNotFound'])
// between two reads of a moved leader: after a reassignment the answer came in 286-540 ms (1-2 retries), offsets-leader-move.test.ts
const LEADER_RETRY_MS = 250

/** Whether a client-library error says a partition's leader has moved (or is being elected, or its broker is gone). */
function leaderMoved (err: unknown): boolean {
  const e = err as { name?: unknown } | null | undefined
  if (typeof e?.name === 'string' && BROKER_GONE.has(e.name)) return true
  for (const name of protocolErrors(err)) if (LEADER_MOVED.has(name)) return true
  return false
}

/** Maps a client-library error (kafkajs or @platformatic/kafka) to the module's catalogue. */
export function classifyError (err: unknown, topic?: string): Error {
  // kafkajs's protocol errors carry Kafka's numeric error code in `code`
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && code.startsWith('SLUICE_KAFKA_')) return err as Error
  const e = err as { type?: string, name?: string, message?: string, originalError?: unknown, retriable?: boolean }
  const inner = e?.originalError as { type?: string } | undefined
  const found = protocolErrors(err)
  const type = e?.type ?? inner?.type ?? ['UNKNOWN_TOPIC_OR_PARTITION', 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE'].find(t => found.has(t))
  if (type === 'UNKNOWN_TOPIC_OR_PARTITION') return new KafkaUnknownTopicError(topic ?? '?')
  if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') return new KafkaTooLargeError(topic ?? '?')
  const message = e?.message ?? String(err)
  if (message.includes('This server does not host this topic-partition')) return new KafkaUnknownTopicError(topic ?? '?')
  // @platformatic/kafka, after its metadata retries: "Unknown topic <name>." (a UserError, no Kafka error code)
  if (message.startsWith('Unknown topic ')) return new KafkaUnknownTopicError(topic ?? '?')
  return new KafkaUnavailableError(message)
}

function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new KafkaTimeoutError(ms)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export class KafkaClient {
  readonly options: Required<Omit<KafkaOptions, 'logger' | 'clusterRetry' | 'groupProtocol' | 'security'>>
  // TLS and SASL, passwords included: kept out of `options`, which callers may log
  readonly #security: KafkaSecurity | undefined
  // kafkajs's last connection failure (refused, cut, an untrusted certificate, a SASL handshake
  // refused: CONNECTION_FAILURE): it retries those until the caller's deadline, which alone would
  // say only "no answer". Protocol errors in responses are not kept: they name one request's trouble.
  #lastError: { message: string, at: number } | undefined
  readonly #kafka: Kafka
  readonly #logger: Logger
  #producer: SharedProducer | undefined
  #producerReady: Promise<SharedProducer> | undefined
  #admin: Admin | undefined
  #adminReady: Promise<Admin> | undefined
  // admin calls still running, per admin; and the admins given up while some ran (#retire)
  readonly #adminCalls = new Map<Admin, number>()
  readonly #retired = new Set<Admin>()
  readonly #consumers = new Set<KjsConsumer>()
  // produceBatch's sends the producer has not answered yet: close() lets them finish before it disconnects (a drain
  // flushes publishes); the batcher's publishes are waited for as a whole (PublishBatcher.settled)
  readonly #sends = new Set<Promise<unknown>>()
  // every publish of the node, from all its sockets, in few requests (publish-batcher.ts)
  // (no recover: after a failed request @platformatic/kafka takes a new producer id itself, producer.ts)
  readonly #batcher = new PublishBatcher({
    send: async topicMessages => (await this.#sharedProducer()).send(topicMessages),
    classify: classifyError
  })

  // every group-less reader of the node, in few fetch requests over two connections per broker (reader.ts)
  #fetcher: Fetcher | undefined
  // group mode's members on @platformatic/kafka (group-reader.ts); made on first use
  #groupReaders: GroupReaders | undefined
  readonly #groupProtocol: GroupProtocol | undefined

  #closed = false

  constructor (options: KafkaOptions) {
    this.options = {
      brokers: options.brokers,
      clientId: options.clientId,
      connectionTimeoutMs: options.connectionTimeoutMs ?? kafkaDefaults.connectionTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? kafkaDefaults.requestTimeoutMs
    }
    this.#logger = options.logger ?? silentLogger
    this.#groupProtocol = options.groupProtocol
    this.#security = options.security
    this.#kafka = new Kafka({
      brokers: this.options.brokers,
      clientId: this.options.clientId,
      ...kafkajsSecurity(options.security),
      connectionTimeout: this.options.connectionTimeoutMs,
      requestTimeout: this.options.requestTimeoutMs,
      ...(options.clusterRetry ? { retry: options.clusterRetry } : {}),
      logLevel: logLevel.INFO,
      logCreator: logCreator(this.#logger, message => { this.#lastError = { message, at: performance.now() } })
    })
  }

  /** The shared producer (producer.ts): idempotent, acks from all in-sync replicas; connected once, on first use. */
  async #sharedProducer (): Promise<SharedProducer> {
    if (this.#closed) throw new KafkaClosedError()
    if (this.#producer) return this.#producer
    this.#producerReady ??= (async () => {
      const producer = new SharedProducer({
        brokers: this.options.brokers,
        clientId: this.options.clientId,
        connectionTimeoutMs: this.options.connectionTimeoutMs,
        requestTimeoutMs: this.options.requestTimeoutMs,
        security: this.#security,
        ...PRODUCER_RETRY
      })
      try {
        await producer.connect()
      } catch (err) {
        this.#producerReady = undefined
        await producer.close().catch(() => {})
        throw classifyError(err)
      }
      this.#producer = producer
      return producer
    })()
    return this.#producerReady
  }

  /**
   * Writes one record and resolves with where Kafka stored it, after Kafka acked
   * it (acks=all). The record shares a produce request with the node's other
   * publishes (publish-batcher.ts); its partition and offset are its own, exact.
   * With `timeoutMs`, rejects with SLUICE_KAFKA_TIMEOUT once Kafka has not acked it by
   * then (the record may still be written): one timer for all publishes, not one each.
   */
  async produce (topic: string, record: OutgoingRecord, options?: { timeoutMs?: number }): Promise<RecordMetadata> {
    // handed to the batcher in the call's own turn once connected: records of two calls keep the calls' order
    if (!this.#producer || this.#closed) await this.#sharedProducer()
    return this.#batcher.publish(topic, record, options?.timeoutMs)
  }

  /** Writes many records in one request per broker; resolves when all are acked. */
  async produceBatch (topic: string, records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return
    const producer = await this.#sharedProducer()
    // copies: the producer pins each one's partition on it (producer.ts), not on the caller's records
    const messages = records.map(r => ({ ...r }))
    let acked
    try {
      acked = await this.#tracked(producer.send([{ topic, messages }]))
    } catch (err) {
      throw classifyError(err, topic)
    }
    // every partition written to is answered: never report a record as written that no answer covers
    const answered = new Set(acked.map(r => r.partition))
    const lost = messages.find(r => !answered.has(r.partition!))
    if (lost) throw new KafkaUnavailableError(`partition ${lost.partition} of "${topic}" was not answered; nothing of this batch was acked for it`)
  }

  /** produce requests the shared producer sent for publishes, and the records they carried (benches: records per request) */
  get publishRequests (): { requests: number, records: number } {
    return this.#batcher.sent
  }

  #tracked<T> (send: Promise<T>): Promise<T> {
    this.#sends.add(send)
    const forget = () => { this.#sends.delete(send) }
    send.then(forget, forget)
    return send
  }

  async #sharedAdmin (): Promise<Admin> {
    if (this.#closed) throw new KafkaClosedError()
    if (this.#admin) return this.#admin
    this.#adminReady ??= (async () => {
      // no retries: the admin answers readiness probes and must fail fast
      const admin = this.#kafka.admin({ retry: { retries: 0 } })
      try {
        await admin.connect()
      } catch (err) {
        this.#adminReady = undefined
        throw classifyError(err)
      }
      this.#admin = admin
      return admin
    })()
    return this.#adminReady
  }

  async #adminCall<T> (timeoutMs: number, call: (admin: Admin) => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      return await this.#adminCallOnce(timeoutMs, call)
    } catch (err) {
      // what kafkajs kept trying meanwhile is the reason: "self-signed certificate", "SASL ... failed"
      const last = this.#lastError
      if (err instanceof KafkaTimeoutError && last !== undefined && last.at >= started) {
        throw new KafkaUnavailableError(`${last.message} (no answer within ${timeoutMs} ms)`, { cause: err })
      }
      throw err
    }
  }

  async #adminCallOnce<T> (timeoutMs: number, call: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = await withTimeout(this.#sharedAdmin(), timeoutMs)
    const running = call(admin)
    this.#adminCalls.set(admin, (this.#adminCalls.get(admin) ?? 0) + 1)
    const settled = () => {
      const left = this.#adminCalls.get(admin)! - 1
      if (left > 0) {
        this.#adminCalls.set(admin, left)
        return
      }
      this.#adminCalls.delete(admin)
      // the last call on a retired admin is over: whatever it connected meanwhile goes now
      if (this.#retired.delete(admin)) admin.disconnect().catch(() => {})
    }
    running.then(settled, settled)
    try {
      return await withTimeout(running, timeoutMs)
    } catch (err) {
      // A dead connection is not reused: the next call reconnects.
      if (this.#admin === admin) {
        this.#admin = undefined
        this.#adminReady = undefined
        this.#retire(admin)
      }
      throw err instanceof KafkaTimeoutError ? err : classifyError(err)
    }
  }

  /**
   * Disconnects an admin no longer used once the calls still running on it are over, or now when none is.
   * Not before: a disconnect under another caller's call fails that call with a kafkajs TypeError ("Cannot
   * destructure property 'topicMetadata'", seen in 2 of 12 runs of packages/kafka/test/admin-retire.test.ts).
   * Not never: such a call (another caller's, or one past its timeout) may connect the seed broker again, on
   * an admin nobody would disconnect (seen: a socket to the broker held a test process open after the gateway
   * closed, 1 run in 6 of test/rate-limit/publish.test.ts).
   */
  #retire (admin: Admin): void {
    if (this.#adminCalls.has(admin)) this.#retired.add(admin)
    else admin.disconnect().catch(() => {})
  }

  /** Resolves when a broker answers a metadata request within `timeoutMs`. */
  async ping (timeoutMs = 1000): Promise<void> {
    await this.#adminCall(timeoutMs, async admin => {
      const cluster = await admin.describeCluster()
      if (cluster.brokers.length === 0) throw new KafkaUnavailableError('no brokers in metadata')
    })
  }

  /** Creates the topics that do not exist yet (dev mode, tests) and waits until each partition has a leader. */
  async ensureTopics (topics: TopicSpec[], timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    await this.#adminCall(timeoutMs, async admin => {
      const existing = new Set(await admin.listTopics())
      const missing = topics.filter(t => !existing.has(t.topic))
      if (missing.length === 0) return
      try {
        await admin.createTopics({
          waitForLeaders: false,
          topics: missing.map(t => ({
            topic: t.topic,
            numPartitions: t.partitions ?? 1,
            ...(t.replicationFactor === undefined ? {} : { replicationFactor: t.replicationFactor }),
            configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value }))
          }))
        })
      } catch (err) {
        // another client created it meanwhile: fine
        if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err
      }
    })
    // a busy broker answers UNKNOWN_TOPIC for a moment after creation
    await this.#untilLed(topics.map(t => ({ topic: t.topic, partitions: 1 })), deadline, timeoutMs)
  }

  /**
   * Grows a topic to `count` partitions (Kafka never shrinks one), and waits until the broker's metadata
   * has them all, each with a leader: for a moment after CreatePartitions is answered, metadata still
   * gives the old count, and a record for a new partition is refused (the clean-clone CI of d35e244:
   * packages/kafka/test/producer.test.ts, partition 5 of a topic just grown to 6).
   */
  async addPartitions (topic: string, count: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    await this.#adminCall(timeoutMs, admin => admin.createPartitions({ topicPartitions: [{ topic, count }] }))
    await this.#untilLed([{ topic, partitions: count }], deadline, timeoutMs)
  }

  /**
   * Deletes topics and waits for the broker's answer (the gateway never deletes one: benches and tests
   * that leave thousands of topics on a shared broker use it; a broker holds files open for each
   * partition, and one at 20,000 open files died with ~20,000 partitions left by bench runs).
   */
  async deleteTopics (topics: string[], timeoutMs = 30_000): Promise<void> {
    if (topics.length === 0) return
    await this.#adminCall(timeoutMs, admin => admin.deleteTopics({ topics, timeout: timeoutMs }))
  }

  /** Polls metadata until each topic has at least its number of partitions, every one with a leader. */
  async #untilLed (want: Array<{ topic: string, partitions: number }>, deadline: number, timeoutMs: number): Promise<void> {
    for (;;) {
      try {
        const { topics: meta } = await this.#adminCall(5000, admin => admin.fetchTopicMetadata({ topics: want.map(w => w.topic) }))
        const led = want.every(w => {
          const partitions = meta.find(t => t.name === w.topic)?.partitions ?? []
          return partitions.length >= w.partitions && partitions.every(p => p.leader >= 0)
        })
        if (led) return
      } catch (err) {
        if (Date.now() > deadline) throw err
      }
      if (Date.now() > deadline) throw new KafkaTimeoutError(timeoutMs)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  async listTopics (timeoutMs = 5000): Promise<string[]> {
    return this.#adminCall(timeoutMs, admin => admin.listTopics())
  }

  /**
   * Each partition's first and next offset. Asked again, on a new admin, while a leader has moved: the
   * admin sends ListOffsets to the leaders in the metadata it keeps (5 min), gets NOT_LEADER or
   * LEADER_NOT_AVAILABLE from an old one, and gives up at once (no retries: it answers readiness
   * probes). Seen on the three-node cluster after a reassignment, test/kafka/offsets-leader-move.test.ts;
   * and in 1 run of 8 of packages/kafka/test/producer.test.ts, on a topic created a moment before.
   */
  async topicOffsets (topic: string, timeoutMs = 5000): Promise<PartitionOffsets[]> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      let moved = false
      try {
        const offsets = await this.#adminCall(Math.max(1, deadline - Date.now()), admin => admin.fetchTopicOffsets(topic).catch((err: unknown) => {
          moved = leaderMoved(err)
          throw err
        }))
        return offsets
          .map(o => ({ partition: o.partition, low: o.low, high: o.high }))
          .sort((a, b) => a.partition - b.partition)
      } catch (err) {
        // #adminCall has let the admin go: the next one reads the metadata afresh
        if (!moved || this.#closed || Date.now() + LEADER_RETRY_MS >= deadline) throw err
        await new Promise(resolve => setTimeout(resolve, LEADER_RETRY_MS))
      }
    }
  }

  /** Members of a consumer group, as the broker sees them. */
  async groupMembers (groupId: string, timeoutMs = 5000): Promise<string[]> {
    return (await this.groupState(groupId, timeoutMs)).members
  }

  /**
   * A consumer group's state ('Stable' once every member has its partitions) and members,
   * whichever its protocol: a KIP-848 group by ConsumerGroupDescribe (kafkajs's DescribeGroups
   * lists one with no members, group-reader.ts), a classic one by DescribeGroups.
   */
  async groupState (groupId: string, timeoutMs = 5000): Promise<{ state: string, members: string[] }> {
    const modern = await withTimeout(consumerGroupState({ ...this.options, security: this.#security }, groupId), timeoutMs)
    if (modern) return modern
    const { groups } = await this.#adminCall(timeoutMs, admin => admin.describeGroups([groupId]))
    return { state: groups[0]?.state ?? 'Dead', members: (groups[0]?.members ?? []).map(m => m.memberId) }
  }

  /** Every consumer group the cluster knows (tests and admin use it to count consumers). */
  async listGroups (timeoutMs = 5000): Promise<string[]> {
    const { groups } = await this.#adminCall(timeoutMs, admin => admin.listGroups())
    return groups.map(g => g.groupId)
  }

  /**
   * Reads a topic's partitions at offsets the caller gives, with no consumer group
   * (no join, no commit, nothing left on the broker): the hub's live feeds and
   * catch-up readers. All readers of this client share one fetcher.
   */
  reader (options: ReaderOptions): TopicReader {
    if (this.#closed) throw new KafkaClosedError()
    this.#fetcher ??= new Fetcher({
      brokers: this.options.brokers,
      clientId: this.options.clientId,
      connectionTimeoutMs: this.options.connectionTimeoutMs,
      requestTimeoutMs: this.options.requestTimeoutMs,
      security: this.#security,
      logger: this.#logger
    })
    return this.#fetcher.reader(options)
  }

  /** Clients the group-less fetcher holds (each a connection per broker it reads from); tests count them. */
  get readerClients (): number {
    return this.#fetcher?.clients ?? 0
  }

  /** Fetch requests the group-less fetcher has sent, main and start lane (tests and benches: an idle node's lane sends none). */
  get readerRequests (): { main: number, lane: number } {
    return { ...(this.#fetcher?.requests ?? { main: 0, lane: 0 }) }
  }

  /**
   * A member of group `groupId` on @platformatic/kafka (group-reader.ts): KIP-848's protocol
   * where the broker offers it, classic otherwise (or as KafkaOptions.groupProtocol says).
   * Group mode's sockets use it; nothing is fetched until `start()`.
   */
  groupReader (options: ConsumerOptions): TopicConsumer {
    if (this.#closed) throw new KafkaClosedError()
    this.#groupReaders ??= new GroupReaders({
      brokers: this.options.brokers,
      clientId: this.options.clientId,
      connectionTimeoutMs: this.options.connectionTimeoutMs,
      requestTimeoutMs: this.options.requestTimeoutMs,
      security: this.#security,
      logger: this.#logger,
      ...(this.#groupProtocol ? { protocol: this.#groupProtocol } : {})
    })
    return this.#groupReaders.reader(options)
  }

  /** A consumer in group `groupId` on kafkajs (classic protocol); nothing is fetched until `start()`. */
  consumer (options: ConsumerOptions): TopicConsumer {
    if (this.#closed) throw new KafkaClosedError()
    const consumer = this.#kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      // a third of the session timeout, as Kafka's own clients default to
      heartbeatInterval: Math.floor((options.sessionTimeoutMs ?? 10_000) / 3),
      metadataMaxAge: options.metadataMaxAgeMs ?? 30_000,
      allowAutoTopicCreation: false,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 5000 }
    })
    const clients = this.#consumers
    let started = false
    if (options.onGroupJoin) {
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        options.onGroupJoin?.(payload.memberAssignment)
      })
    }
    if (options.onCrash) {
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        options.onCrash?.(payload.error, payload.restart)
      })
    }
    return {
      groupId: options.groupId,
      async start () {
        if (started) return
        started = true
        clients.add(consumer)
        await consumer.connect()
        for (const topic of options.topics) {
          await consumer.subscribe({ topic, fromBeginning: options.fromBeginning ?? false })
        }
        await consumer.run({
          autoCommit: options.autoCommit ?? false,
          autoCommitInterval: options.autoCommitIntervalMs ?? null,
          eachBatchAutoResolve: true,
          eachBatch: async ({ batch }) => {
            const records: ConsumedRecord[] = batch.messages.map(m => ({
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              timestamp: m.timestamp,
              key: m.key ?? null,
              value: m.value ?? null,
              headers: toHeaders(m.headers)
            }))
            await options.onBatch({ topic: batch.topic, partition: batch.partition, highWatermark: batch.highWatermark, records })
          }
        })
      },
      async stop () {
        clients.delete(consumer)
        await consumer.disconnect()
      },
      pause (topic, partitions) {
        consumer.pause([partitions ? { topic, partitions } : { topic }])
      },
      resume (topic, partitions) {
        consumer.resume([partitions ? { topic, partitions } : { topic }])
      },
      seek (topic, partition, offset) {
        consumer.seek({ topic, partition, offset })
      },
      async commit (offsets) {
        // the committed offset is the next one to read
        await consumer.commitOffsets(offsets.map(o => ({
          topic: o.topic,
          partition: o.partition,
          offset: (BigInt(o.offset) + 1n).toString()
        })))
      }
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // a producer or admin still connecting would keep its connection: wait for it, then disconnect
    const [producer, admin] = await Promise.all([
      this.#producer ?? this.#producerReady?.catch(() => undefined),
      this.#admin ?? this.#adminReady?.catch(() => undefined)
    ])
    // publishes in flight are answered (acked or refused) before the producer goes: the producer's retries bound the wait
    const flushed = Promise.allSettled([...this.#sends, this.#batcher.settled()])
    const pending: Array<Promise<void>> = []
    for (const consumer of this.#consumers) pending.push(consumer.disconnect())
    this.#consumers.clear()
    if (producer) pending.push(flushed.then(() => producer.close()))
    // the admin's calls still running (a probe past its timeout) may connect again: retired, it is disconnected after them
    if (admin) {
      pending.push(admin.disconnect())
      if (this.#adminCalls.has(admin)) this.#retired.add(admin)
    }
    if (this.#fetcher) pending.push(this.#fetcher.close())
    if (this.#groupReaders) pending.push(this.#groupReaders.close())
    await Promise.allSettled(pending)
  }
}
