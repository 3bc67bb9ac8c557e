// Group mode on @platformatic/kafka: one member of a real consumer group, with the
// shape of KafkaClient.consumer() (TopicConsumer), so the hub's joinGroup can take
// either. The protocol is KIP-848's (`consumer`: the broker assigns, members heartbeat,
// no join barrier and no group.initial.rebalance.delay.ms) where the broker offers it
// (ConsumerGroupHeartbeat in its ApiVersions: Kafka 4 does by default), and the classic
// one (JoinGroup/SyncGroup) otherwise; an option forces either. Kafka 4's default
// group.consumer.migration.policy (bidirectional) lets members of both protocols share a
// group, so nodes of different versions can serve one group during an upgrade.
//
// Offsets are committed by the caller (commit()) once it has written what it was handed,
// as with the kafkajs consumer: nothing is committed automatically.
import {
  Consumer,
  consumerGroupDescribeV0,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type Message,
  type MessagesStream
} from '@platformatic/kafka'
import type { ConsumedRecord, ConsumerOptions, Logger, RecordMetadata, TopicConsumer } from './kafka.ts'
import { KafkaClosedError, KafkaUnavailableError } from './errors.ts'
import { JavaReadsConsumer } from './java-reads.ts'
import { platformaticSecurity, type KafkaSecurity } from './security.ts'

export type GroupProtocol = 'consumer' | 'classic'

export interface GroupReadersOptions {
  brokers: string[]
  clientId: string
  connectionTimeoutMs: number
  requestTimeoutMs: number
  logger?: Logger
  /** force a protocol; unset: KIP-848 where the broker offers it, classic otherwise */
  protocol?: GroupProtocol
  security?: KafkaSecurity
}

export interface GroupReaderOptions extends ConsumerOptions {
  /** force a protocol for this member (unset: the GroupReaders' choice) */
  protocol?: GroupProtocol
}

// ConsumerGroupHeartbeat's API key (KIP-848): a broker that lists it serves the consumer protocol
const CONSUMER_GROUP_HEARTBEAT = 68
// Records taken from the stream per onBatch round: the stream holds at most its highWaterMark
// (below) anyway; 500 is kafkajs's order of magnitude for one batch of small records.
const MAX_ROUND = 500
// Messages the stream buffers ahead of the handler (@platformatic/kafka's default is 1,024):
// a socket that does not keep up holds at most this many records in memory for its member.
const HIGH_WATER_MARK = 1024
// A fetch with nothing to return waits this long on the broker (kafkajs's maxWaitTime is 5 s):
// 500 ms, as the group-less reader, so a member that gets a partition reads it within that.
const MAX_WAIT_MS = 500
// After a crash the member is rebuilt (as kafkajs restarts its consumer): 300 ms doubling to
// 5 s, kafkajs's retry bounds in KafkaClient.consumer(), so a broker that is down is not hammered.
const RESTART_FIRST_MS = 300
const RESTART_MAX_MS = 5000

const silentLogger: Logger = { debug () {}, info () {}, warn () {}, error () {} }

/** Asks a broker whether it offers KIP-848's consumer protocol. */
export async function detectGroupProtocol (options: Omit<GroupReadersOptions, 'protocol' | 'logger'>): Promise<GroupProtocol> {
  const probe = new Consumer({
    clientId: `${options.clientId}-probe`,
    bootstrapBrokers: options.brokers,
    ...platformaticSecurity(options.security),
    // required by the constructor; the probe only asks for ApiVersions, it never joins
    groupId: `${options.clientId}-probe`,
    connectTimeout: options.connectionTimeoutMs,
    timeout: options.requestTimeoutMs,
    retries: 2
  })
  try {
    const apis = await probe.listApis()
    return apis.some(api => api.apiKey === CONSUMER_GROUP_HEARTBEAT) ? 'consumer' : 'classic'
  } catch (err) {
    throw new KafkaUnavailableError((err as Error).message)
  } finally {
    await probe.close(true).catch(() => {})
  }
}

/**
 * Members of a KIP-848 group, as its coordinator sees them (ConsumerGroupDescribe). The
 * classic DescribeGroups, which kafkajs's admin sends, lists no members for such a group
 * (seen on Kafka 4.4: the group is listed, with 0 members); a classic group answers
 * GROUP_ID_NOT_FOUND here, so this gives undefined for it.
 */
export async function consumerGroupMembers (options: Omit<GroupReadersOptions, 'protocol' | 'logger'>, groupId: string): Promise<string[] | undefined> {
  return (await consumerGroupState(options, groupId))?.members
}

/** A KIP-848 group's state ('Stable' once every member has its target assignment) and members; undefined for a classic group. */
export async function consumerGroupState (options: Omit<GroupReadersOptions, 'protocol' | 'logger'>, groupId: string): Promise<{ state: string, members: string[] } | undefined> {
  const client = new Consumer({
    clientId: `${options.clientId}-describe`,
    bootstrapBrokers: options.brokers,
    ...platformaticSecurity(options.security),
    // the group to find the coordinator of; the client never joins it
    groupId,
    connectTimeout: options.connectionTimeoutMs,
    timeout: options.requestTimeoutMs,
    retries: 2
  })
  try {
    const node = await client.findGroupCoordinator()
    const connection = (await client.connectToBrokers([node])).get(node)
    if (!connection) throw new KafkaUnavailableError(`no connection to the coordinator of group ${groupId}`)
    const response = await consumerGroupDescribeV0.api.async(connection, [groupId], false)
    const group = response.groups.find(g => g.groupId === groupId)
    if (!group || group.errorCode !== 0) return undefined
    return { state: group.groupState, members: group.members.map(m => m.memberId) }
  } catch (err) {
    // the broker refuses the request for a group that is not a consumer-protocol group
    const e = err as { errors?: Array<{ apiId?: string }>, apiId?: string }
    if (e.apiId === 'GROUP_ID_NOT_FOUND' || e.errors?.some(x => x.apiId === 'GROUP_ID_NOT_FOUND')) return undefined
    throw err instanceof KafkaUnavailableError ? err : new KafkaUnavailableError((err as Error).message)
  } finally {
    await client.close(true).catch(() => {})
  }
}

/**
 * Makes group members for one node; the broker's protocol is asked once and kept
 * (one ApiVersions request per node, not per member).
 */
export class GroupReaders {
  readonly #options: GroupReadersOptions
  #protocol: Promise<GroupProtocol> | undefined
  readonly #readers = new Set<GroupReader>()
  #closed = false

  constructor (options: GroupReadersOptions) {
    this.#options = options
  }

  /** The protocol members use unless told otherwise. */
  protocol (): Promise<GroupProtocol> {
    if (this.#options.protocol) return Promise.resolve(this.#options.protocol)
    this.#protocol ??= detectGroupProtocol(this.#options).catch(err => {
      // not kept: the next member asks again
      this.#protocol = undefined
      throw err
    })
    return this.#protocol
  }

  reader (options: GroupReaderOptions): GroupReader {
    if (this.#closed) throw new KafkaClosedError()
    const reader = new GroupReader(this.#options, options, () => options.protocol ? Promise.resolve(options.protocol) : this.protocol(), () => this.#readers.delete(reader))
    this.#readers.add(reader)
    return reader
  }

  /** Members started and not stopped (tests count them). */
  get size (): number {
    return this.#readers.size
  }

  async close (): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#readers].map(r => r.stop()))
  }
}

function toRecord (message: Message<Buffer, Buffer, Buffer, Buffer>): ConsumedRecord {
  const headers: Record<string, Buffer> = {}
  // a header repeated in the record: the last wins, as Kafka's lastHeader() and KafkaClient.consumer()
  for (const [name, value] of message.headers) headers[name.toString()] = value ?? Buffer.alloc(0)
  return {
    topic: message.topic,
    partition: message.partition,
    offset: message.offset.toString(),
    timestamp: message.timestamp.toString(),
    key: message.key ?? null,
    value: message.value ?? null,
    headers
  }
}

export class GroupReader implements TopicConsumer {
  readonly groupId: string
  readonly #client: GroupReadersOptions
  readonly #options: GroupReaderOptions
  readonly #choose: () => Promise<GroupProtocol>
  readonly #forget: () => void
  readonly #log: Logger
  #protocol: GroupProtocol | undefined
  #consumer: Consumer | undefined
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  #started = false
  #stopped = false
  #draining = false
  #restartMs = RESTART_FIRST_MS
  #restartTimer: NodeJS.Timeout | undefined
  #topics: string[] = []
  #assignment = ''
  // the last record handed out per partition, with its own commit (offset + 1, its leader epoch)
  readonly #handed = new Map<string, { offset: string, commit: () => Promise<void> }>()
  /**
   * Per partition this member has owned without a break, the offset after the last record it
   * handed out: a rebalance that leaves a partition where it was can fetch it again from the
   * committed offset, and those records were handed out already (seen: the member that stayed
   * got 50 records twice after the other left, 1 of 2 clean-clone CI runs).
   */
  readonly #next = new Map<string, bigint>()
  readonly #paused = new Set<string>()
  readonly #held = new Map<string, Array<Message<Buffer, Buffer, Buffer, Buffer>>>()
  readonly #seeks = new Map<string, bigint>()

  constructor (client: GroupReadersOptions, options: GroupReaderOptions, choose: () => Promise<GroupProtocol>, forget: () => void) {
    this.groupId = options.groupId
    this.#client = client
    this.#options = options
    this.#choose = choose
    this.#forget = forget
    this.#log = client.logger ?? silentLogger
  }

  /** The protocol this member joined with (known once start() resolved). */
  get protocol (): GroupProtocol | undefined {
    return this.#protocol
  }

  /** Partitions this member owns now, by topic. */
  get assignment (): Record<string, number[]> {
    const out: Record<string, number[]> = {}
    for (const a of this.#consumer?.assignments ?? []) out[a.topic] = [...a.partitions].sort((x, y) => x - y)
    return out
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    const topics = this.#options.topics.map(t => {
      // @platformatic/kafka subscribes to topic names only; the hub's group mode names its topics
      if (typeof t !== 'string') throw new KafkaUnavailableError(`topic patterns are not supported in group mode (${String(t)})`)
      return t
    })
    this.#topics = topics
    this.#protocol = await this.#choose()
    await this.#join(topics)
  }

  async #join (topics: string[]): Promise<void> {
    if (this.#stopped) return
    const sessionTimeout = this.#options.sessionTimeoutMs ?? 10_000
    const consumer = new JavaReadsConsumer({
      clientId: this.#client.clientId,
      bootstrapBrokers: this.#client.brokers,
      ...platformaticSecurity(this.#client.security),
      groupId: this.#options.groupId,
      connectTimeout: this.#client.connectionTimeoutMs,
      timeout: this.#client.requestTimeoutMs,
      metadataMaxAge: this.#options.metadataMaxAgeMs ?? 30_000,
      autocommit: false,
      ...(this.#protocol === 'consumer'
        // KIP-848: the session timeout and heartbeat interval are the broker's (group.consumer.*)
        ? { groupProtocol: 'consumer' as const }
        // classic: as KafkaClient.consumer(), a heartbeat every third of the session timeout
        : { groupProtocol: 'classic' as const, sessionTimeout, heartbeatInterval: Math.floor(sessionTimeout / 3) })
    })
    this.#consumer = consumer
    this.#watchAssignment(consumer)
    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>
    try {
      stream = await consumer.consume({
        topics,
        autocommit: false,
        // a partition starts after its last committed offset, or per fromBeginning when it has none
        mode: MessagesStreamModes.COMMITTED,
        fallbackMode: this.#options.fromBeginning ? MessagesStreamFallbackModes.EARLIEST : MessagesStreamFallbackModes.LATEST,
        maxWaitTime: MAX_WAIT_MS,
        highWaterMark: HIGH_WATER_MARK
      })
    } catch (err) {
      await consumer.close(true).catch(() => {})
      if (this.#consumer === consumer) this.#consumer = undefined
      throw new KafkaUnavailableError((err as Error).message)
    }
    if (this.#stopped) {
      await stream.close().catch(() => {})
      await consumer.close(true).catch(() => {})
      return
    }
    this.#stream = stream
    stream.on('error', err => this.#crash(err, topics))
    stream.on('readable', () => { this.#drain(stream) })
    this.#restartMs = RESTART_FIRST_MS
  }

  /**
   * onGroupJoin with every assignment the member gets. The classic protocol announces one
   * per join; KIP-848 changes it inside a heartbeat answer with no event after the change,
   * so the consumer's public `assignments` field is watched where it is written.
   */
  #watchAssignment (consumer: Consumer): void {
    let value = consumer.assignments
    Object.defineProperty(consumer, 'assignments', {
      configurable: true,
      enumerable: true,
      get: () => value,
      set: (next: typeof value) => {
        value = next
        if (next === null || consumer !== this.#consumer) return
        const assignment: Record<string, number[]> = {}
        for (const a of next) if (a.partitions.length > 0) assignment[a.topic] = [...a.partitions].sort((x, y) => x - y)
        const key = JSON.stringify(assignment)
        if (key === this.#assignment) return
        this.#assignment = key
        // records of partitions this member no longer owns are another member's now: their commits would be refused
        for (const k of this.#handed.keys()) {
          const [topic, partition] = splitKey(k)
          if (!assignment[topic]?.includes(partition)) this.#handed.delete(k)
        }
        for (const k of this.#next.keys()) {
          const [topic, partition] = splitKey(k)
          if (!assignment[topic]?.includes(partition)) this.#next.delete(k)
        }
        this.#options.onGroupJoin?.(assignment)
      }
    })
  }

  #owns (topic: string, partition: number): boolean {
    const assignments = this.#consumer?.assignments
    if (!assignments) return false
    return assignments.some(a => a.topic === topic && a.partitions.includes(partition))
  }

  #drain (stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): void {
    if (this.#draining || this.#stopped || stream !== this.#stream) return
    this.#draining = true
    const run = async () => {
      for (;;) {
        if (this.#stopped || stream !== this.#stream) return
        const messages: Array<Message<Buffer, Buffer, Buffer, Buffer>> = []
        for (let m; messages.length < MAX_ROUND && (m = stream.read()) !== null;) messages.push(m)
        if (messages.length === 0) return
        await this.#deliver(messages)
      }
    }
    // a handler that fails (a commit refused, a bug) gets a new member, as kafkajs restarts its consumer
    run().catch(err => this.#crash(err as Error, this.#topics)).finally(() => {
      this.#draining = false
      // something arrived while the last round ran and its 'readable' found us draining
      if (!this.#stopped && stream === this.#stream && stream.readableLength > 0) this.#drain(stream)
    })
  }

  /** Hands messages to onBatch one partition run at a time, in the order they came. */
  async #deliver (messages: Array<Message<Buffer, Buffer, Buffer, Buffer>>): Promise<void> {
    let run: Array<Message<Buffer, Buffer, Buffer, Buffer>> = []
    const flush = async () => {
      if (run.length === 0) return
      const batch = run
      run = []
      const first = batch[0]!
      const last = batch[batch.length - 1]!
      // a rebalance took the partition while these waited in the stream: its new owner reads them
      if (!this.#owns(first.topic, first.partition)) return
      this.#next.set(keyOf(first.topic, first.partition), last.offset + 1n)
      this.#handed.set(keyOf(first.topic, first.partition), { offset: last.offset.toString(), commit: () => last.commit() as Promise<void> })
      await this.#options.onBatch({
        topic: first.topic,
        partition: first.partition,
        // the stream does not pass the fetch's high watermark on; the hub's group mode does not read it
        highWatermark: '-1',
        records: batch.map(toRecord)
      })
    }
    for (const m of messages) {
      if (this.#stopped) return
      const key = keyOf(m.topic, m.partition)
      const seek = this.#seeks.get(key)
      if (seek !== undefined) {
        // fetched before the seek: dropped until the new position's records come
        if (m.offset !== seek) continue
        this.#seeks.delete(key)
      }
      // handed out already, before a rebalance that left this partition here
      const next = this.#next.get(key)
      if (next !== undefined && m.offset < next && seek === undefined) continue
      if (this.#paused.has(key) || this.#paused.has(m.topic)) {
        let held = this.#held.get(key)
        if (!held) this.#held.set(key, held = [])
        held.push(m)
        continue
      }
      if (run.length > 0 && (run[0]!.topic !== m.topic || run[0]!.partition !== m.partition)) await flush()
      run.push(m)
    }
    await flush()
  }

  #crash (error: Error, topics?: string[]): void {
    if (this.#stopped) return
    const consumer = this.#consumer
    const stream = this.#stream
    this.#stream = undefined
    this.#consumer = undefined
    this.#handed.clear()
    this.#next.clear()
    this.#assignment = ''
    const restarting = topics !== undefined
    this.#options.onCrash?.(error, restarting)
    this.#log.warn({ err: error, groupId: this.groupId, restarting }, 'group member failed')
    const release = async () => {
      await stream?.close().catch(() => {})
      await consumer?.close(true).catch(() => {})
    }
    release().catch(() => {})
    if (!restarting) return
    // rebuilt as a new member: it starts from the group's committed offsets
    const wait = this.#restartMs
    this.#restartMs = Math.min(this.#restartMs * 2, RESTART_MAX_MS)
    this.#restartTimer = setTimeout(() => {
      this.#join(topics).catch(err => this.#crash(err as Error, topics))
    }, wait)
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#restartTimer)
    this.#forget()
    const stream = this.#stream
    const consumer = this.#consumer
    this.#stream = undefined
    // the stream first: the consumer refuses to leave the group while a stream reads
    await stream?.close().catch(() => {})
    // leaves the group (KIP-848: a heartbeat with epoch -1; classic: LeaveGroup), so the
    // partitions move to the others at once instead of after the session timeout
    await consumer?.close(true).catch(err => this.#log.warn({ err, groupId: this.groupId }, 'group member did not leave cleanly'))
    this.#consumer = undefined
  }

  /**
   * Holds the partitions' records (the whole topic without `partitions`) until resume().
   * @platformatic/kafka's stream pauses as a whole: fetching goes on, and what comes for a
   * paused partition waits here (at most the stream's buffer per round).
   */
  pause (topic: string, partitions?: number[]): void {
    if (!partitions) this.#paused.add(topic)
    else for (const p of partitions) this.#paused.add(keyOf(topic, p))
  }

  resume (topic: string, partitions?: number[]): void {
    if (!partitions) {
      this.#paused.delete(topic)
      for (const key of this.#paused) if (splitKey(key)[0] === topic) this.#paused.delete(key)
    } else {
      for (const p of partitions) this.#paused.delete(keyOf(topic, p))
    }
    const ready: Array<Message<Buffer, Buffer, Buffer, Buffer>> = []
    for (const [key, held] of this.#held) {
      if (this.#paused.has(splitKey(key)[0]) || this.#paused.has(key)) continue
      ready.push(...held)
      this.#held.delete(key)
    }
    if (ready.length > 0) this.#deliver(ready).catch(err => this.#crash(err as Error, this.#topics))
  }

  /** The partition's next record is `offset`; what was fetched before is dropped. */
  seek (topic: string, partition: number, offset: string): void {
    const key = keyOf(topic, partition)
    const at = BigInt(offset)
    this.#held.delete(key)
    this.#stream?.offsetsToFetch.set(key, at)
    this.#seeks.set(key, at)
    this.#next.delete(key)
  }

  /** Commits each record's position (the next offset to read is the record's + 1). */
  async commit (offsets: RecordMetadata[]): Promise<void> {
    const consumer = this.#consumer
    if (!consumer) throw new KafkaClosedError()
    const pending: Array<Promise<void>> = []
    const direct: Array<{ topic: string, partition: number, offset: bigint, leaderEpoch: number }> = []
    for (const o of offsets) {
      const handed = this.#handed.get(keyOf(o.topic, o.partition))
      // the stream's own commit carries the record's leader epoch and waits for its flush
      if (handed && handed.offset === o.offset) pending.push(handed.commit())
      else direct.push({ topic: o.topic, partition: o.partition, offset: BigInt(o.offset) + 1n, leaderEpoch: -1 })
    }
    if (direct.length > 0) pending.push(consumer.commit({ offsets: direct }))
    try {
      await Promise.all(pending)
    } catch (err) {
      // a rebalance took the partition meanwhile: its new owner starts from the last commit
      // that landed (at least once, as Kafka's own consumers), and this member goes on
      if (offsets.some(o => !this.#owns(o.topic, o.partition))) {
        this.#log.info({ err, groupId: this.groupId }, 'commit of a partition this member no longer owns refused')
        return
      }
      throw new KafkaUnavailableError((err as Error).message)
    }
  }
}

function keyOf (topic: string, partition: number): string {
  return `${topic}:${partition}`
}

function splitKey (key: string): [string, number] {
  const at = key.lastIndexOf(':')
  return [key.slice(0, at), Number(key.slice(at + 1))]
}
