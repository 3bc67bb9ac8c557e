// MQTT sessions kept where Sluice keeps everything: in Kafka (issue 16). One
// compacted topic (`mqtt.sessionsTopic`, default sluice.mqtt.sessions), keyed
// by client id, holds each persistent session: its subscriptions, per Kafka
// partition the position to resume from (after the last record PUBACKed, or
// for QoS 0 delivered), and its QoS 1 deliveries not yet acknowledged with
// their packet ids. The same records are the takeover channel: every CONNECT
// with a client id writes a claim record (owner = the new connection), and
// the node holding an older connection of that id, which follows the topic,
// disconnects it (0x8E) and writes the session's last state as a handoff to
// the new owner, which waited for it.
//
// Every node reads the topic whole, group-less, from its first offset, and
// follows it live: an index in memory (client id -> last record), as
// retained.ts does for retained messages. Not a keyed lookup: Kafka has none
// (finding one key means reading the partition anyway), and the takeover
// needs every node to see every claim within the second, which a follower
// does (a record reaches a parked fetch as soon as it is written) without a
// second channel. Not Redis pub/sub: the handoff has to go through this topic
// anyway, and one ordered log cannot deliver a takeover before the claim's
// state, nor a stale state after the handoff.
import type { KafkaClient, RecordBatch, TopicReader } from '@sluice/kafka'
import type { Logger } from '@sluice/protocol/logger'

export const DEFAULT_SESSIONS_TOPIC = 'sluice.mqtt.sessions'
/**
 * How often a node writes the sessions whose positions moved: 500 ms. Not one produce per PUBACK (a
 * device acking 100 messages a second would write 100 records a second); every session that changed in
 * the interval goes in one produce batch. The price: a node killed without warning loses at most this
 * much progress, whose records are delivered again (QoS 1 allows duplicates, never losses).
 */
export const FLUSH_MS = 500
/**
 * How long a CONNECT taking over a session connected elsewhere waits for its holder's last state: 2 s.
 * The holder reads the claim (a record reaches a parked fetch at once: tens of ms), disconnects its client
 * and writes the handoff (one produce, tens of ms); 2 s covers a loaded node. A holder that never answers
 * is dead (SIGKILL): the session goes on from its last flushed state (at most FLUSH_MS behind).
 */
export const HANDOFF_WAIT_MS = 2000
/**
 * The longest session expiry granted: 7 days. A session holds its positions (and a compacted record) until
 * it expires; MQTT 5's 0xFFFFFFFF (never) and 3.1.1's persistent sessions (no expiry in that version) get
 * this bound instead, announced in CONNACK on 5.0 (3.2.2.3.2 lets the server say so).
 */
export const MAX_SESSION_EXPIRY_S = 7 * 24 * 3600
// how often each node looks for sessions whose expiry elapsed: 5 s, so an expired session is gone within it
const SWEEP_MS = 5000
/**
 * How often a node writes again every session it holds, changed or not: 5 minutes. A record says
 * `connected` until its connection ends, and a node killed without warning ends nothing: a record not
 * written for STALE_FACTOR heartbeats is taken for a session disconnected at its last write (its expiry runs
 * from there, and a CONNECT does not wait for a handoff from it). The cost: one record per connected
 * session per 5 minutes (100,000 devices: ~330 records/s in a compacted topic).
 */
export const HEARTBEAT_MS = 5 * 60_000
// 2.5 heartbeats: two missed writes and a loaded node's late third, before a record counts as its node's death
const STALE_FACTOR = 2.5
// how long a CONNECT waits for the sessions read at start before it is refused (0x88): a fetch or two
const LOAD_WAIT_MS = 5000
// after a failed start (Kafka down): tried again, backing off to 5 s, as retained.ts
const RETRY_MIN_MS = 500
const RETRY_MAX_MS = 5000

/** One record's value: a session as its holder last wrote it. */
export interface StoredSession {
  /** the connection that holds the session (or held it last) */
  owner: string
  /** a connection holds it now; false once it disconnected (its expiry runs from `at`) */
  connected: boolean
  /** written by a CONNECT: whoever holds an older connection of this client id disconnects it */
  claim?: boolean
  /** the last state of a session taken over, written by its old holder for this new owner */
  handoff?: string
  /** in a claim: the claimant resumes the session, so the old holder hands it over (a clean start does not) */
  resume?: boolean
  /** the session expiry interval, in seconds; 0: a clean session, deleted at disconnect */
  expiry: number
  /** when written, ms since the epoch */
  at: number
  /** subscriptions: filter, granted QoS, and their 5.0 options when any: 1 No Local, 2 Retain As Published, 3 both */
  subs: Array<[string, number] | [string, number, number]>
  /** Kafka topic -> partition -> the next offset to deliver (decimal string) */
  pos: Record<string, Record<string, string>>
  /** QoS 1 deliveries sent and not acknowledged: Kafka topic, partition, offset, packet id */
  inflight: Array<[string, number, string, number]>
}

/** A connection of this node holding a client id, as the store tells it of a takeover. */
export interface Holder {
  readonly ownerId: string
  /** the session as it stands, written at every heartbeat */
  stored (): StoredSession
  /** another connection claimed the client id: disconnect (0x8E), and hand the session over if it resumes it */
  takenOver (by: string, resume: boolean): void
}

type SessionsKafka = Pick<KafkaClient, 'produce' | 'ensureTopics' | 'topicOffsets' | 'reader'>

export interface SessionStoreOptions {
  kafka: SessionsKafka
  topic?: string
  log: Logger
  flushMs?: number
  /** HEARTBEAT_MS unless a test says */
  heartbeatMs?: number
  sweepMs?: number
}

interface Entry { state: StoredSession, offset: bigint }

export class SessionStore {
  readonly topic: string
  readonly #kafka: SessionsKafka
  readonly #log: Logger
  readonly #flushMs: number
  readonly #heartbeatMs: number
  readonly #sweepMs: number
  /** a `connected` record older than this is its dead node's: HEARTBEAT_MS x STALE_FACTOR */
  readonly staleMs: number
  #heartbeatTimer: NodeJS.Timeout | undefined
  readonly #index = new Map<string, Entry>()
  /** client id -> this node's connections holding it, with the offset of their claim */
  readonly #holders = new Map<string, Map<Holder, bigint>>()
  /** connections that ended: a claim still being written for one of them registers nothing (claim()) */
  readonly #ended = new WeakSet<Holder>()
  /** client id -> the state to write at the next flush */
  readonly #dirty = new Map<string, () => StoredSession>()
  readonly #handoffs = new Map<string, Array<(state: StoredSession) => void>>()
  #reader: TopicReader | undefined
  #stopped = false
  #retry: NodeJS.Timeout | undefined
  #flushTimer: NodeJS.Timeout | undefined
  #started = false
  #sweepTimer: NodeJS.Timeout | undefined
  #startEnds = new Map<number, bigint>()
  #loaded = false
  #onLoaded: Array<() => void> = []
  /** the last states being written by connections that ended: a closing node waits for them */
  readonly #ending = new Set<Promise<unknown>>()

  constructor (options: SessionStoreOptions) {
    this.#kafka = options.kafka
    this.topic = options.topic ?? DEFAULT_SESSIONS_TOPIC
    this.#log = options.log
    this.#flushMs = options.flushMs ?? FLUSH_MS
    this.#heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS
    this.#sweepMs = options.sweepMs ?? SWEEP_MS
    this.staleMs = this.#heartbeatMs * STALE_FACTOR
  }

  get loaded (): boolean {
    return this.#loaded
  }

  get size (): number {
    return this.#index.size
  }

  /** Creates the compacted topic if absent, reads it from its start and follows it; never throws (retries). */
  start (): void {
    // a store is started once: after stop() (the node closing) nothing may start reading or ticking again
    if (this.#stopped || this.#started) return
    this.#started = true
    this.#attempt(RETRY_MIN_MS)
    // changes made before the start go with the first flush
    this.#scheduleFlush()
    this.#sweepTimer = setInterval(() => { this.#sweep() }, this.#sweepMs).unref()
    this.#heartbeatTimer = setInterval(() => {
      for (const [clientId, held] of this.#holders) {
        for (const holder of held.keys()) this.#markDirty(clientId, () => holder.stored())
      }
    }, this.#heartbeatMs).unref()
  }

  /**
   * `clientId`'s state goes with the flush flushMs after the first change since the last one: a node with no
   * MQTT session changing runs no flush timer (it ran every 500 ms, a wakeup each, for nothing).
   */
  #markDirty (clientId: string, snapshot: () => StoredSession): void {
    this.#dirty.set(clientId, snapshot)
    this.#scheduleFlush()
  }

  #scheduleFlush (): void {
    if (this.#flushTimer !== undefined || !this.#started || this.#stopped || this.#dirty.size === 0) return
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined
      this.flush().catch(() => {})
    }, this.#flushMs).unref()
  }

  #attempt (backoffMs: number): void {
    if (this.#stopped) return
    this.#open().catch(err => {
      if (this.#stopped) return
      this.#log.warn({ err, topic: this.topic }, 'MQTT sessions not readable yet; trying again')
      const reader = this.#reader
      this.#reader = undefined
      reader?.stop().catch(() => {})
      this.#retry = setTimeout(() => this.#attempt(Math.min(backoffMs * 2, RETRY_MAX_MS)), backoffMs)
      this.#retry.unref()
    })
  }

  async #open (): Promise<void> {
    // compact: a client id's last record is its session; one partition: every node reads all of it anyway
    await this.#kafka.ensureTopics([{ topic: this.topic, partitions: 1, config: { 'cleanup.policy': 'compact' } }])
    // stopped meanwhile (the node closed while Kafka was slow to answer): no reader is made, none is left running
    if (this.#stopped) return
    const offsets = await this.#kafka.topicOffsets(this.topic)
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
      onError: err => this.#log.error({ err, topic: this.topic }, 'MQTT sessions reader failed')
    })
    await this.#reader.start(starts)
    this.#checkLoaded()
  }

  #apply (batch: RecordBatch): void {
    let last = -1n
    for (const record of batch.records) {
      last = BigInt(record.offset)
      if (!record.key) continue
      const clientId = record.key.toString('utf8')
      let state: StoredSession | undefined
      if (record.value && record.value.length > 0) {
        try {
          state = JSON.parse(record.value.toString('utf8')) as StoredSession
        } catch {
          this.#log.warn({ topic: this.topic, offset: record.offset }, 'MQTT session record is not JSON: skipped')
          continue
        }
      }
      const current = this.#index.get(clientId)
      if (!current || current.offset < last) {
        if (state) this.#index.set(clientId, { state, offset: last })
        else this.#index.delete(clientId)
      }
      if (!state) continue
      // [MQTT-3.1.4-3]: a claim by another connection takes over every older connection of this client id here
      if (state.claim) {
        for (const [holder, claimedAt] of this.#holders.get(clientId) ?? []) {
          if (holder.ownerId !== state.owner && claimedAt < last) holder.takenOver(state.owner, state.resume === true)
        }
      }
      if (state.handoff !== undefined) {
        const waiters = this.#handoffs.get(`${clientId}\n${state.handoff}`)
        if (waiters) for (const wake of waiters.splice(0)) wake(state)
      }
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
    this.#log.info({ topic: this.topic, sessions: this.#index.size }, 'MQTT sessions loaded')
    for (const wake of this.#onLoaded.splice(0)) wake()
  }

  /** Resolves once the sessions read at start are all in (false after `timeoutMs`). */
  async ready (timeoutMs = LOAD_WAIT_MS): Promise<boolean> {
    if (this.#loaded) return true
    return new Promise(resolve => {
      const timer = setTimeout(() => {
        this.#onLoaded = this.#onLoaded.filter(w => w !== wake)
        resolve(false)
      }, timeoutMs)
      const wake = () => {
        clearTimeout(timer)
        resolve(this.#loaded)
      }
      this.#onLoaded.push(wake)
    })
  }

  /** The stored session of `clientId`, unless it expired (a session taken over is not expired: it is held). */
  get (clientId: string, now = Date.now()): StoredSession | undefined {
    const state = this.#index.get(clientId)?.state
    if (!state || expired(state, now, this.staleMs)) return undefined
    return state
  }

  /** Whether a `connected` record is older than a live holder's heartbeats leave it: its node died. */
  stale (state: StoredSession, now = Date.now()): boolean {
    return state.connected && state.at + this.staleMs <= now
  }

  /**
   * Writes a claim of `clientId` for `state.owner` and registers `holder` once Kafka has it: from then on a
   * later claim by another connection reaches it. Resolves with the claim's offset.
   */
  async claim (clientId: string, state: StoredSession, holder: Holder): Promise<bigint> {
    const offset = await this.#write(clientId, { ...state, claim: true })
    // the connection ended while its claim was written (a client that connects and drops at once; a
    // clean session does not wait for its claim): end() found no holder then. Registered now, it
    // would be written `connected` at every heartbeat for good, and kept from expiring.
    if (this.#ended.has(holder)) return offset
    let held = this.#holders.get(clientId)
    if (!held) {
      held = new Map()
      this.#holders.set(clientId, held)
    }
    held.set(holder, offset)
    // a later claim read before this registration (a CONNECT on another node in the same instant) is in the index
    const now = this.#index.get(clientId)
    if (now && now.offset > offset && now.state.claim && now.state.owner !== holder.ownerId) holder.takenOver(now.state.owner, now.state.resume === true)
    return offset
  }

  /** The last state the old holder of `clientId` wrote for `owner`, or undefined after `timeoutMs`. */
  async handoff (clientId: string, owner: string, timeoutMs = HANDOFF_WAIT_MS): Promise<StoredSession | undefined> {
    const current = this.#index.get(clientId)?.state
    if (current?.handoff === owner) return current
    const key = `${clientId}\n${owner}`
    return new Promise(resolve => {
      const wake = (state: StoredSession | undefined) => {
        clearTimeout(timer)
        const waiters = this.#handoffs.get(key)
        if (waiters) {
          const i = waiters.indexOf(wake)
          if (i >= 0) waiters.splice(i, 1)
          if (waiters.length === 0) this.#handoffs.delete(key)
        }
        resolve(state)
      }
      const timer = setTimeout(() => wake(undefined), timeoutMs)
      let waiters = this.#handoffs.get(key)
      if (!waiters) {
        waiters = []
        this.#handoffs.set(key, waiters)
      }
      waiters.push(wake)
    })
  }

  /** `clientId`'s session changed: `snapshot` is written at the next flush (one batch for all of the node's). */
  changed (clientId: string, snapshot: () => StoredSession): void {
    this.#markDirty(clientId, snapshot)
  }

  /**
   * The connection `holder` ended: its last state (or, for a clean session, a tombstone) is written now,
   * and no pending flush of it is written after. A holder taken over hands its state to the new owner.
   */
  async end (clientId: string, holder: Holder, last: StoredSession | null): Promise<void> {
    this.#ended.add(holder)
    this.#dirty.delete(clientId)
    const held = this.#holders.get(clientId)
    held?.delete(holder)
    if (held?.size === 0) this.#holders.delete(clientId)
    // a clean session's tombstone only while the record is still its own: never a newer owner's claim
    if (last === null && this.#index.get(clientId)?.state.owner !== holder.ownerId) return
    const writing = this.#write(clientId, last)
    this.#ending.add(writing)
    try {
      await writing
    } finally {
      this.#ending.delete(writing)
    }
  }

  /** Writes every session that changed since the last flush, in one batch of produces. */
  async flush (): Promise<void> {
    if (this.#ending.size > 0) await Promise.allSettled([...this.#ending])
    if (this.#dirty.size === 0) return
    const writes: Array<Promise<unknown>> = []
    for (const [clientId, snapshot] of this.#dirty) {
      writes.push(this.#write(clientId, snapshot()).catch(err => {
        this.#log.warn({ err, clientId }, 'MQTT session not written; tried again at the next change')
      }))
    }
    this.#dirty.clear()
    await Promise.all(writes)
  }

  async #write (clientId: string, state: StoredSession | null): Promise<bigint> {
    const meta = await this.#kafka.produce(this.topic, { key: clientId, value: state ? JSON.stringify(state) : null })
    const offset = BigInt(meta.offset)
    // held at once on this node, as the reader would: a reconnect here a moment later sees it
    const current = this.#index.get(clientId)
    if (!current || current.offset < offset) {
      if (state) this.#index.set(clientId, { state, offset })
      else this.#index.delete(clientId)
    }
    return offset
  }

  /** Tombstones for the sessions whose expiry elapsed since their disconnect [MQTT-3.1.2-23 (5.0)]. */
  #sweep (): void {
    if (!this.#loaded) return
    const now = Date.now()
    for (const [clientId, { state }] of this.#index) {
      if (!expired(state, now, this.staleMs) || this.#holders.has(clientId)) continue
      this.#index.delete(clientId)
      this.#kafka.produce(this.topic, { key: clientId, value: null })
        .catch(err => this.#log.warn({ err, clientId }, 'MQTT expired session not deleted'))
    }
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#retry)
    clearTimeout(this.#flushTimer)
    clearInterval(this.#sweepTimer)
    clearInterval(this.#heartbeatTimer)
    for (const wake of this.#onLoaded.splice(0)) wake()
    await this.#reader?.stop()
  }
}

/**
 * A session whose connection ended more than its expiry interval ago; a `connected` one whose record is
 * older than `staleMs` (no heartbeat: its node died) counts as ended at its last write.
 */
export function expired (state: StoredSession, now: number, staleMs: number): boolean {
  return state.at + state.expiry * 1000 + (state.connected ? staleMs : 0) <= now
}

/** A position map as stored: partition -> decimal string. */
export function storedPositions (positions: Map<string, Map<number, bigint>>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {}
  for (const [topic, parts] of positions) {
    const o: Record<string, string> = {}
    for (const [p, offset] of parts) o[String(p)] = offset.toString()
    out[topic] = o
  }
  return out
}

/** The positions of one Kafka topic of a stored session, as the hub's resume takes them. */
export function positionsOf (state: StoredSession, topic: string): Map<number, bigint> | undefined {
  const stored = state.pos[topic]
  if (!stored) return undefined
  return new Map(Object.entries(stored).map(([p, o]) => [Number(p), BigInt(o)]))
}
