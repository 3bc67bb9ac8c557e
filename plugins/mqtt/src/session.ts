// One MQTT connection over WebSocket, after its CONNECT was authenticated:
// a SocketSession like /v1/stream's and /v2/broker/'s, so that the drain, a
// revoked key, a policy's withdrawal, an admin's kick and the metrics reach it.
// MQTT packets may span WebSocket frames (MQTT 6.0: the frames are a byte
// stream); mqtt-packet's parser reassembles them.
import { createHash } from 'node:crypto'
import type { RawData } from 'ws'
import { generate, type IConnectPacket, type IPublishPacket, type ISubscribePacket, type IUnsubscribePacket, type Packet, type Parser } from 'mqtt-packet'
import { CLOSE, SETTLED, SocketSession, type SessionDeps, type SessionStart } from '@sluice/sessions'
import type { FrameFormat, Outlet, SubscriptionTerms } from '@sluice/hub'
import { groupIdFor } from '@sluice/protocol/identity'
import type { Transport } from './format.ts'
import { AS_PUBLISHED, Outbox, sessionFormat } from './qos1.ts'
import { HEADERS, headersOf, publisherTag } from './properties.ts'
import { MAX_SESSION_EXPIRY_S, positionsOf, storedPositions, type Holder, type SessionStore, type StoredSession } from './persistence.ts'
import { matchesLevels, validFilter, validName, type Mappings } from './mapping.ts'
import type { RetainedStore } from './retained.ts'
import type { Will, Wills } from './will.ts'

/** MQTT 5 reason codes (2.4) this slice sends. */
/**
 * Filters one connection may hold: 100, as /v1/stream's topics per frame and pattern topics per socket.
 * Every delivered frame is compared with each of them, and a 1 MiB SUBSCRIBE could carry ~60,000 short
 * ones: past the cap a filter is refused with 0x97 (quota exceeded; 0x80 on 3.1.1), the others stand.
 */
export const MAX_FILTERS = 100

export const REASON = {
  SUCCESS: 0x00,
  DISCONNECT_WITH_WILL: 0x04,
  NO_SUBSCRIPTION_EXISTED: 0x11,
  UNSPECIFIED: 0x80,
  MALFORMED: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC: 0x83,
  BAD_CREDENTIALS: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_BUSY: 0x89,
  SHUTTING_DOWN: 0x8B,
  KEEP_ALIVE_TIMEOUT: 0x8D,
  TOPIC_FILTER_INVALID: 0x8F,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_TOO_LARGE: 0x95,
  MESSAGE_RATE_TOO_HIGH: 0x96,
  QUOTA_EXCEEDED: 0x97,
  RETAIN_NOT_SUPPORTED: 0x9A,
  QOS_NOT_SUPPORTED: 0x9B,
  SESSION_TAKEN_OVER: 0x8E,
  SHARED_NOT_SUPPORTED: 0x9E,
  CONNECTION_RATE_EXCEEDED: 0x9F,
  TOPIC_ALIAS_INVALID: 0x94,
  SUBSCRIPTION_IDS_NOT_SUPPORTED: 0xA1
} as const

/** What a WebSocket close code of the shared vocabulary says as an MQTT 5 DISCONNECT. */
function disconnectReason (code: number): number {
  switch (code) {
    case CLOSE.NORMAL: return REASON.SUCCESS
    case CLOSE.GOING_AWAY: return REASON.SHUTTING_DOWN
    case CLOSE.POLICY_VIOLATION: return REASON.PROTOCOL_ERROR
    case CLOSE.TOO_LARGE: return REASON.PACKET_TOO_LARGE
    case CLOSE.TRY_LATER: return REASON.SERVER_BUSY
    case CLOSE.CREDENTIALS: return REASON.NOT_AUTHORIZED
    case CLOSE.ACCESS_WITHDRAWN: return REASON.NOT_AUTHORIZED
    case CLOSE.TOO_SLOW: return REASON.QUOTA_EXCEEDED
    case CLOSE.RATE_LIMITED: return REASON.MESSAGE_RATE_TOO_HIGH
    default: return REASON.UNSPECIFIED
  }
}

export interface MqttDeps extends SessionDeps {
  mappings: Mappings
  /** the largest packet the gateway reads (announced in CONNACK); the WebSocket frame limit */
  maxPacketBytes: number
  /** retained messages (retained.ts); absent: retain available 0 */
  retained?: RetainedStore
  /** the node's pending wills (will.ts) */
  wills?: Wills
  /** persistent sessions and takeovers (persistence.ts); absent: every session is clean and none is taken over */
  store?: SessionStore
  /** 5.0 topic aliases a client may set on a connection (CONNACK Topic Alias Maximum): mqtt.topicAliasMaximum, 0 to 65,535 */
  topicAliasMaximum: number
}

export interface MqttStart extends SessionStart {
  connect: IConnectPacket
  version: 4 | 5
  /** the parser that read the CONNECT, with whatever it holds of the packets after it */
  parser: Parser
  /** packets read after the CONNECT while it was authenticated */
  pending: Packet[]
  transport: Transport
  /** the CONNECT's will, checked (will.ts checkWill) */
  will?: Omit<Will, 'clientId'>
}

// a SUBSCRIBE right after the node started waits this long for the retained set read from Kafka: 5 s, the
// reader's first fetch plus a 64 MiB set at ~10 MiB per fetch; past it the subscription stands without them
const RETAINED_LOAD_WAIT_MS = 5000

// a stored subscription's options (persistence.ts StoredSession.subs): No Local 1, Retain As Published 2
const SUB_NO_LOCAL = 1
const SUB_AS_PUBLISHED = 2

/** A refused publish, and what the client is told on 5.0. */
interface Refused { reason: number, wire: string }

export class MqttSession extends SocketSession implements Holder {
  readonly format: FrameFormat
  readonly version: 4 | 5
  readonly clientId: string
  readonly transport: Transport
  readonly #deps: MqttDeps
  readonly #parser: Parser
  #pending: Packet[]
  /** filter → the Kafka topics it subscribed */
  readonly #filters = new Map<string, string[]>()
  /** 5.0 topic aliases the client set on this network connection [MQTT-3.3.2-7]: alias -> topic name */
  readonly #aliases = new Map<number, string>()
  /** the filters split at '/', compared with every delivered frame's topic levels */
  #filterLevels: Array<readonly string[]> = []
  /** Kafka topic → how many filters hold it */
  readonly #topics = new Map<string, number>()
  readonly #keepaliveMs: number
  #lastPacketAt = Date.now()
  #keepaliveTimer: NodeJS.Timeout | undefined
  /** PUBACKs go out in the order of their PUBLISHes [MQTT-4.6.0-2] */
  #acks: Promise<unknown> = SETTLED
  /** the client's own maximum packet size (MQTT 5, 3.1.2.11.4): larger deliveries are not sent to it */
  readonly #clientMaxPacket: number
  #reason: number | undefined
  /** published when the connection ends without a normal DISCONNECT (will.ts) */
  #will: Omit<Will, 'clientId'> | undefined
  readonly #willDelayS: number
  /** the session expiry CONNACK announced: a will's delay ends with the session (MQTT 5 3.1.3.2.2) */
  #sessionExpiry = 0
  /** the close code of a close this side started */
  #closeCode: number | undefined
  /** filter -> the QoS granted (filters in the order of #filterLevels) */
  readonly #filterQos = new Map<string, number>()
  #levelQos: number[] = []
  /** per filter of #filterLevels: 5.0 No Local [MQTT-3.8.3-3], not sent this connection's own messages */
  #levelNoLocal: boolean[] = []
  #levelAsPublished: boolean[] = []
  /** filters subscribed with No Local */
  readonly #noLocal = new Set<string>()
  /** the filters with Retain As Published (5.0): a record published retained keeps RETAIN 1 through them */
  readonly #asPublished = new Set<string>()
  /** this client id's publisher tag (properties.ts), written with its PUBLISHes and compared by No Local */
  #tag: bigint = 0n
  /** the tag as the mqtt.publisher header's bytes, made once per connection and shared by its records (never written to) */
  readonly #tagHeader: Buffer
  /**
   * The connection's shared subscription, `$share/{ShareName}/{filter}` (MQTT 5 4.8.2): a member of one
   * Kafka consumer group (the hub's group mode, as /v1/stream's group=), so each record goes to one member
   * on any node. One per connection: the hub's group mode gives a socket one group.
   */
  #shared: { full: string, levels: readonly string[], outlet: Outlet } | undefined
  /** deliveries with their packet ids and positions (qos1.ts) */
  readonly #outbox: Outbox
  /** the session expiry interval granted, in seconds; 0: the session ends with the connection */
  #expiry: number
  /** the expiry the CONNECT asked for (5.0): 0 there, a DISCONNECT may not raise it */
  readonly #connectExpiry: number
  /** clean session (3.1.1) / clean start (5.0): a stored session is discarded */
  readonly #clean: boolean
  /** set once the session's last state was written (or handed to the connection that took it over) */
  #ended = false
  /**
   * Set while a resumed session's subscriptions are made again: the record its claim wrote holds every
   * position, and a flush meanwhile would write only those of the subscriptions made so far
   */
  #resuming: StoredSession | undefined

  constructor (start: MqttStart, deps: MqttDeps) {
    super(start, deps)
    this.#deps = deps
    this.version = start.version
    this.clientId = start.connect.clientId
    this.#tag = publisherTag(this.clientId === '' ? this.id : this.clientId)
    this.#tagHeader = Buffer.from(this.#tag.toString(16).padStart(16, '0'), 'latin1')
    this.transport = start.transport
    this.format = sessionFormat(deps.mappings, start.version, start.transport)
    // 3.1.1: clean session 0 keeps the session (no expiry in that version: ours); 5.0: the Session Expiry Interval [MQTT-3.1.2-23]
    const asked = start.version === 5 ? (start.connect.properties?.sessionExpiryInterval ?? 0) : (start.connect.clean ? 0 : MAX_SESSION_EXPIRY_S)
    this.#expiry = this.clientId === '' || !deps.store ? 0 : Math.min(asked, MAX_SESSION_EXPIRY_S)
    this.#connectExpiry = asked
    this.#clean = start.connect.clean !== false
    this.#outbox = new Outbox({
      version: start.version,
      transport: start.transport,
      receiveMaximum: start.connect.properties?.receiveMaximum,
      maxPacket: start.connect.properties?.maximumPacketSize ?? Infinity,
      write: (bytes, onWritten) => super.write(bytes, onWritten),
      cork: () => this.raw.cork(),
      uncork: () => this.raw.uncork(),
      changed: () => { if (this.#expiry > 0 && !this.#ended && !this.#resuming) this.#deps.store?.changed(this.clientId, () => this.#snapshot(true)) },
      // the hub's batch holds every record of the topic, framed with their positions: what this connection was
      // sent (its filters' matches, on the wire) is counted here instead
      delivered: this.usage ? (packets, bytes) => { this.usage!.delivered += packets; this.usage!.deliveredBytes += bytes } : undefined
    })
    this.delivered = undefined
    this.#parser = start.parser
    this.#pending = start.pending
    this.#clientMaxPacket = start.connect.properties?.maximumPacketSize ?? Infinity
    this.#will = start.will
    this.#willDelayS = start.connect.will?.properties?.willDelayInterval ?? 0
    // [MQTT-3.1.2-24]: nothing from the client within one and a half keep-alive periods closes the connection
    this.#keepaliveMs = (start.connect.keepalive ?? 0) * 1500
    this.#parser.removeAllListeners()
    this.#parser.on('packet', (packet: Packet) => this.#packet(packet))
    this.#parser.on('error', (err: Error) => {
      this.deps.log.debug({ err, session: this.id }, 'malformed MQTT packet')
      // a malformed packet closes the connection (MQTT 5 4.13: DISCONNECT 0x81 first)
      this.#disconnect(REASON.MALFORMED, CLOSE.POLICY_VIOLATION, 'malformed packet')
    })
  }

  /** CONNACK, then the packets read meanwhile, then the socket is read again. */
  async open (): Promise<void> {
    let resumed: StoredSession | undefined
    try {
      resumed = await this.#begin()
    } catch (err) {
      this.deps.log.warn({ err, session: this.id }, 'MQTT session could not be read')
      // 0x88 / 0x03: the sessions cannot be read now; the client tries again
      this.#send({ cmd: 'connack', sessionPresent: false, reasonCode: REASON.SERVER_UNAVAILABLE, returnCode: 0x03 })
      this.#ended = true
      this.close(CLOSE.TRY_LATER, 'sessions unavailable')
      return
    }
    if (this.closed) return
    const sessionPresent = resumed !== undefined
    const properties = this.version === 5
      ? {
          // the expiry granted: the client's, at most MAX_SESSION_EXPIRY_S (3.2.2.3.2)
          sessionExpiryInterval: this.#expiry,
          receiveMaximum: this.deps.limits.maxInflightPublishes,
          maximumQoS: 1,
          retainAvailable: this.#deps.retained !== undefined,
          maximumPacketSize: this.#deps.maxPacketBytes,
          topicAliasMaximum: this.#deps.topicAliasMaximum,
          wildcardSubscriptionAvailable: true,
          subscriptionIdentifiersAvailable: false,
          sharedSubscriptionAvailable: true,
          ...(this.clientId === '' ? { assignedClientIdentifier: this.id } : {})
        }
      : undefined
    this.#send({ cmd: 'connack', sessionPresent, reasonCode: 0, returnCode: 0, properties })
    this.#sessionExpiry = properties?.sessionExpiryInterval ?? 0
    // [MQTT-3.1.3-9]: a new connection of this client id: the will its last connection left waiting is not sent
    this.#deps.wills?.cancel(this.#willClientId)
    if (this.#keepaliveMs > 0) {
      this.#keepaliveTimer = setInterval(() => {
        if (Date.now() - this.#lastPacketAt > this.#keepaliveMs) this.#disconnect(REASON.KEEP_ALIVE_TIMEOUT, CLOSE.NORMAL, 'keep-alive timeout')
      }, Math.max(250, this.#keepaliveMs / 3))
      this.#keepaliveTimer.unref()
    }
    // [MQTT-4.4.0-1]: the session's subscriptions resume where its deliveries were acknowledged; the ones
    // left unacknowledged come again with DUP=1 and their packet ids
    if (resumed) await this.#resume(resumed)
    const pending = this.#pending
    this.#pending = []
    for (const packet of pending) this.#packet(packet)
    if (this.socket.isPaused) this.socket.resume()
  }

  // ---- persistent sessions (persistence.ts) -----------------------------------------------

  get ownerId (): string {
    return this.id
  }

  /** Claims the client id (an older connection anywhere is taken over) and reads the session to resume, if any. */
  async #begin (): Promise<StoredSession | undefined> {
    const store = this.#deps.store
    if (!store || this.clientId === '') return undefined
    const fresh = this.#snapshot(true)
    if (this.#expiry === 0 && this.#clean) {
      // a clean session waits for nothing (no state to read): its claim, written meanwhile, still takes older connections over
      store.claim(this.clientId, fresh, this).catch(err => this.deps.log.warn({ err, session: this.id }, 'MQTT claim not written'))
      return undefined
    }
    if (!await store.ready()) throw new Error('MQTT sessions not loaded')
    const previous = store.get(this.clientId)
    // [MQTT-3.1.2-4]: clean start discards the session; so does a session that ended with its connection
    const kept = previous && !this.#clean && previous.expiry > 0 ? previous : undefined
    await store.claim(this.clientId, kept ? { ...kept, owner: this.id, connected: true, expiry: this.#expiry, at: Date.now(), handoff: undefined, resume: true } : fresh, this)
    if (!kept) return undefined
    // held by a connection (on this node or another): its last state, handed over once it is disconnected
    if (kept.connected && kept.owner !== this.id && !store.stale(kept)) return (await store.handoff(this.clientId, this.id)) ?? kept
    return kept
  }

  /** The subscriptions of a resumed session, each from its stored positions, without SUBACK. */
  async #resume (state: StoredSession): Promise<void> {
    this.#outbox.inherit(state.inflight)
    this.#resuming = state
    try {
      await this.#subscribe({ cmd: 'subscribe', messageId: 0, subscriptions: state.subs.map(([topic, qos, options]) => ({ topic, qos: qos as 0 | 1, nl: ((options ?? 0) & SUB_NO_LOCAL) !== 0, rap: ((options ?? 0) & SUB_AS_PUBLISHED) !== 0 })) }, state)
    } finally {
      this.#resuming = undefined
    }
    this.#outbox.changedSubscriptions()
  }

  /** The session as it stands, for the store's heartbeat. */
  stored (): StoredSession {
    return this.#snapshot(true)
  }

  /** The session as stored: `connected` while this connection holds it. */
  #snapshot (connected: boolean): StoredSession {
    // ended mid-resume: the state it resumed from, not the part of it subscribed again so far
    if (this.#resuming) return { ...this.#resuming, owner: this.id, connected, expiry: this.#expiry, at: Date.now(), claim: undefined, handoff: undefined, resume: undefined }
    return {
      owner: this.id,
      connected,
      expiry: this.#expiry,
      at: Date.now(),
      subs: [...this.#filterQos].map(([filter, qos]) => {
        const options = (this.#noLocal.has(filter) ? SUB_NO_LOCAL : 0) | (this.#asPublished.has(filter) ? SUB_AS_PUBLISHED : 0)
        return options === 0 ? [filter, qos] : [filter, qos, options]
      }),
      pos: storedPositions(this.#outbox.positions(this.#topics.keys())),
      inflight: this.#outbox.unacknowledged()
    }
  }

  /**
   * Another connection claimed this client id [MQTT-3.1.4-3]: DISCONNECT 0x8E on 5.0 (3.1.1 has none: the
   * connection is closed), and the session's last state is handed to the new owner.
   */
  takenOver (by: string, resume: boolean): void {
    if (this.#ended) return
    this.#ended = true
    this.cancelWill()
    // a clean start does not want it (and nothing is written: the record is the new owner's claim now)
    const last = resume && this.#expiry > 0 ? { ...this.#snapshot(true), owner: by, handoff: by } : null
    this.#deps.store?.end(this.clientId, this, last).catch(err => this.deps.log.warn({ err, session: this.id }, 'MQTT session not handed over'))
    this.#disconnect(REASON.SESSION_TAKEN_OVER, CLOSE.NORMAL, 'session taken over')
  }

  /**
   * A 5.0 DISCONNECT may set the session's expiry anew (3.14.2.2.2), at most MAX_SESSION_EXPIRY_S; from 0 to
   * more is a protocol error [MQTT-3.14.2-2] (0x82), and false then.
   */
  #expiryAtDisconnect (seconds: number): boolean {
    if (this.#connectExpiry === 0 && seconds > 0) {
      this.#disconnect(REASON.PROTOCOL_ERROR, CLOSE.POLICY_VIOLATION, 'session expiry set at DISCONNECT after 0 at CONNECT')
      return false
    }
    // a session this node cannot keep (no client id, no store) stays at 0, as CONNACK said
    if (this.#expiry > 0) this.#expiry = Math.min(seconds, MAX_SESSION_EXPIRY_S)
    return true
  }

  /** The connection ended: a persistent session's last state is written (its expiry runs from now), a clean one deleted. */
  #end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#outbox.close()
    if (!this.#deps.store || this.clientId === '') return
    this.#deps.store.end(this.clientId, this, this.#expiry > 0 ? this.#snapshot(false) : null)
      .catch(err => this.deps.log.warn({ err, session: this.id }, 'MQTT session not written at its end'))
  }

  override queuedBytes (): number {
    return super.queuedBytes() + this.#outbox.waitingBytes
  }

  /**
   * With a threshold (a reader of this socket's own, waiting for room), QoS 1 deliveries waiting for room in
   * flight count as queued: resolves once PUBACKs (and the socket) made room. Without one (the hub, after it
   * dropped records for this socket, before it says `lagging`), only the socket's own queue: a client that
   * does not acknowledge would otherwise never hear it, and its session would hold the drops for ever; told,
   * it is disconnected (0x97) as a slow QoS 0 one, and a persistent session resumes at its first record not
   * acknowledged.
   */
  override drained (bytes?: number): Promise<void> {
    if (bytes === undefined || this.#outbox.waitingBytes === 0) return super.drained(bytes)
    return new Promise(resolve => {
      const check = (): void => {
        if (this.closed || this.queuedBytes() <= bytes) resolve()
        else if (this.#outbox.waitingBytes > 0) this.#outbox.onProgress(check)
        else super.drained(bytes).then(check, check)
      }
      check()
    })
  }

  // ---- the per-frame boundary's side ----------------------------------------------------

  protected onFrame (data: RawData, isBinary: boolean): void {
    // [MQTT-6.0.0-1]: MQTT travels in binary frames only; anything else closes the connection
    if (!isBinary) {
      this.#disconnect(REASON.MALFORMED, CLOSE.POLICY_VIOLATION, 'MQTT needs binary frames')
      return
    }
    // every packet of one read is answered in one write: a read of many PUBACKs releases as many waiting
    // QoS 1 deliveries (Outbox.puback), each its own syscall uncorked (24.7 % of the gateway's busy time at
    // QoS 1 in bench/mqtt-fanout.ts's profile, all single-buffer writes)
    this.raw.cork()
    try {
      this.#parser.parse(data as Buffer)
    } finally {
      this.raw.uncork()
    }
    // a packet spanning frames is bounded too: what the parser holds may not pass the announced maximum
    if (parserHeld(this.#parser) > this.#deps.maxPacketBytes) this.#disconnect(REASON.PACKET_TOO_LARGE, CLOSE.TOO_LARGE, 'packet too large')
  }

  protected sendError (err: unknown): void {
    this.deps.log.warn({ err, session: this.id }, 'MQTT packet failed')
    this.#disconnect(REASON.UNSPECIFIED, CLOSE.INTERNAL, 'internal error')
  }

  topics (): string[] {
    return [...this.#topics.keys()]
  }

  /** A policy change took a topic away: MQTT has no way to end one subscription from the server, so the connection ends. */
  unsubscribe (_topics: string[], _code: string, message: string): void {
    this.close(CLOSE.ACCESS_WITHDRAWN, message)
  }

  /** The hub dropped records for this socket: MQTT cannot say where to resume, so the connection ends (0x97). */
  lagging (topic: string): void {
    this.deps.log.info({ session: this.id, topic }, 'MQTT socket too slow')
    this.close(CLOSE.TOO_SLOW, 'too slow')
  }

  override close (code: number, reason: string): void {
    this.#closeCode ??= code
    // MQTT 5's DISCONNECT says why before the WebSocket closes; 3.1.1 has no DISCONNECT from a server
    if (!this.closed && this.version === 5) this.#send({ cmd: 'disconnect', reasonCode: this.#reason ?? disconnectReason(code), properties: { reasonString: reason.slice(0, 100) } })
    super.close(code, reason)
    this.#endWill()
    this.#end()
  }

  protected override onCleanup (): void {
    clearInterval(this.#keepaliveTimer)
    if (this.#shared) this.deps.hub.leaveGroup(this.#shared.outlet)
    this.#endWill()
    this.#end()
  }

  /**
   * The connection ended without a normal DISCONNECT (which took the will away): keep-alive, a network or
   * protocol error, the server closing it [MQTT-3.1.2-8]; not for a revoked credential, whose holder the
   * gateway no longer acts for. Called when this side closes (so a draining node has its wills before Kafka
   * closes) and when the socket is gone.
   */
  #endWill (): void {
    const will = this.#will
    this.#will = undefined
    if (!will || this.#closeCode === CLOSE.CREDENTIALS) return
    const delay = this.version === 5 ? Math.min(this.#willDelayS, this.#sessionExpiry) : 0
    // The node going away (drain, 0x8B) closed a live client and sent it elsewhere: a will it asked to be held
    // (a delay, a session kept in Kafka) is dropped rather than published at the node's end, which is every
    // such device's "offline" on every rolling restart. MQTT lets a server that shuts down defer wills to its
    // restart (3.1.2.5); a node has no restart of its own to defer to. One without a delay goes now.
    if (delay > 0 && this.#closeCode === CLOSE.GOING_AWAY) {
      this.deps.log.info({ session: this.id, clientId: this.clientId }, 'MQTT will with a delay dropped: the node is going away')
      return
    }
    this.#deps.wills?.schedule({ ...will, clientId: this.#willClientId }, delay)
  }

  /** A takeover: the connection this one hands its session to carries the will on, so this one's is dropped. */
  cancelWill (): void {
    this.#will = undefined
  }

  get #willClientId (): string {
    return this.clientId === '' ? this.id : this.clientId
  }

  /** The records of the hub's batch whose topic name matches one of this connection's filters, at the QoS granted (qos1.ts). */
  override write (frame: Buffer, onWritten?: (err?: Error | null) => void): void {
    if (this.closed) {
      onWritten?.(new Error('socket closed'))
      return
    }
    this.#outbox.write(frame, (levels, publisher, retained) => this.#qosOf(levels, publisher, retained), onWritten)
  }

  /**
   * The highest QoS granted among the filters matching `name`, -1 if none does (one delivery, at that QoS);
   * plus AS_PUBLISHED for a message published retained when one of those filters has Retain As Published
   * (it goes with RETAIN 1 [MQTT-3.3.1-13]; through the others, RETAIN 0 [MQTT-3.3.1-12]).
   */
  #qosOf (name: readonly string[], publisher = 0n, retained = false): number {
    let qos = -1
    let asPublished = false
    const filters = this.#filterLevels
    // a message this client id published does not come back through a No Local filter [MQTT-3.8.3-3]
    const own = publisher !== 0n && publisher === this.#tag
    for (let i = 0; i < filters.length; i++) {
      if (own && this.#levelNoLocal[i]) continue
      if (this.#levelQos[i]! > qos || (retained && !asPublished && this.#levelAsPublished[i])) {
        if (!matchesLevels(filters[i]!, name)) continue
        if (this.#levelQos[i]! > qos) qos = this.#levelQos[i]!
        if (retained && this.#levelAsPublished[i]) asPublished = true
      }
    }
    return asPublished ? qos | AS_PUBLISHED : qos
  }

  // ---- packets --------------------------------------------------------------------------

  #packet (packet: Packet): void {
    if (this.closed) return
    // a packet read whole in one chunk never showed its size to the check in onFrame
    if (packetSize(packet.length ?? 0) > this.#deps.maxPacketBytes) {
      this.#disconnect(REASON.PACKET_TOO_LARGE, CLOSE.TOO_LARGE, 'packet too large')
      return
    }
    this.#lastPacketAt = Date.now()
    switch (packet.cmd) {
      case 'publish': this.#publish(packet); return
      case 'subscribe':
        // 5.0 [MQTT-1.5.4-2]: U+0000 in a string is a malformed packet, not an invalid filter
        if (packet.subscriptions.some(s => s.topic.includes('\0'))) return this.#disconnect(REASON.MALFORMED, CLOSE.POLICY_VIOLATION, 'U+0000 in a topic filter')
        // Subscription Identifiers Available 0 is announced: one in a SUBSCRIBE is a protocol error (MQTT 5 3.2.2.3.12)
        if (packet.properties?.subscriptionIdentifier !== undefined) return this.#disconnect(REASON.SUBSCRIPTION_IDS_NOT_SUPPORTED, CLOSE.POLICY_VIOLATION, 'subscription identifiers are not supported')
        this.#subscribe(packet).catch(err => this.sendError(err))
        return
      case 'unsubscribe': this.#unsubscribe(packet); return
      case 'pingreq': this.#send({ cmd: 'pingresp' }); return
      // a QoS 1 delivery acknowledged [MQTT-4.3.2-1]; an unknown packet id is ignored
      case 'puback': this.#outbox.puback(packet.messageId ?? 0); return
      case 'disconnect':
        if (this.version === 5 && packet.properties?.sessionExpiryInterval !== undefined && !this.#expiryAtDisconnect(packet.properties.sessionExpiryInterval)) return
        // [MQTT-3.1.2-10]: a normal DISCONNECT deletes the will; MQTT 5's 0x04 asks for it to be published
        if (!(this.version === 5 && packet.reasonCode === REASON.DISCONNECT_WITH_WILL)) this.#will = undefined
        this.close(CLOSE.NORMAL, 'client disconnected')
        return
      // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation
      default: this.#disconnect(REASON.PROTOCOL_ERROR, CLOSE.POLICY_VIOLATION, `unexpected ${packet.cmd}`)
    }
  }

  #send (packet: Packet): void {
    if (this.closed) return
    this.socket.send(generate(packet, { protocolVersion: this.version }))
  }

  /** Closes with `reason` in MQTT 5's DISCONNECT, more precise than what the close code maps to. */
  #disconnect (reason: number, code: number, message: string): void {
    this.#reason ??= reason
    this.close(code, message)
  }

  /**
   * MQTT 5 3.3.2.3.4: a Topic Alias with a topic name sets the alias, one with an empty name stands for the
   * name it was set to. The name it resolves to then goes through the same checks, ACL and limits as any.
   * false: the connection is being closed (an alias out of range, or unknown, or an empty name without one).
   */
  #resolveAlias (packet: IPublishPacket): boolean {
    const alias = packet.properties?.topicAlias
    if (alias === undefined) {
      if (packet.topic !== '' || this.version !== 5) return true
      // 5.0 3.3.2.3.1: a zero-length Topic Name without a Topic Alias is a Protocol Error
      this.#disconnect(REASON.PROTOCOL_ERROR, CLOSE.POLICY_VIOLATION, 'empty topic name without a topic alias')
      return false
    }
    // [MQTT-3.3.2-8] 0 is not an alias; [MQTT-3.3.2-9] nor one above the Topic Alias Maximum CONNACK announced
    const maximum = this.#deps.topicAliasMaximum
    if (!Number.isInteger(alias) || alias < 1 || alias > maximum) {
      this.#disconnect(REASON.TOPIC_ALIAS_INVALID, CLOSE.POLICY_VIOLATION, maximum === 0 ? 'topic aliases are not accepted (Topic Alias Maximum 0)' : `topic alias ${alias} out of 1 to ${maximum}`)
      return false
    }
    if (packet.topic === '') {
      const name = this.#aliases.get(alias)
      if (name === undefined) {
        // 5.0 3.3.2.3.4: an alias never set on this connection is a Protocol Error
        this.#disconnect(REASON.PROTOCOL_ERROR, CLOSE.POLICY_VIOLATION, `topic alias ${alias} was never set`)
        return false
      }
      packet.topic = name
    } else {
      this.#aliases.set(alias, packet.topic)
    }
    return true
  }

  /** Where a publish goes, or why it does not; the plan's publish limit is asked here, in the order of the packets. */
  async #check (packet: IPublishPacket): Promise<{ topic: string, key: string } | Refused> {
    if (!validName(packet.topic)) return { reason: REASON.TOPIC_NAME_INVALID, wire: 'BAD_REQUEST' }
    const record = this.#deps.mappings.toRecord(packet.topic)
    // a topic name no product maps is valid MQTT this gateway does not serve (5.0: 0x90 "not accepted by the Server")
    if (!record) return { reason: REASON.TOPIC_NAME_INVALID, wire: 'UNKNOWN_TOPIC' }
    const decision = this.deps.access.authorize(this.identity, 'publish', record.topic)
    if (!decision.allowed) return { reason: REASON.NOT_AUTHORIZED, wire: 'FORBIDDEN' }
    this.usedProduct(decision.product)
    const limited = await this.publishLimited(decision)
    if (limited) return { reason: REASON.QUOTA_EXCEEDED, wire: 'RATE_LIMITED' }
    return record
  }

  #publish (packet: IPublishPacket): void {
    if (!this.#resolveAlias(packet)) return
    if (packet.topic.includes('\0')) {
      // 5.0 [MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-2]): U+0000 in a string is a malformed packet (DISCONNECT 0x81), not a topic name to refuse with 0x90
      this.#disconnect(REASON.MALFORMED, CLOSE.POLICY_VIOLATION, 'U+0000 in a topic name')
      return
    }
    if (packet.qos === 2) {
      // maximum QoS 1 is announced: a QoS 2 PUBLISH is answered with DISCONNECT 0x9B (MQTT 5 3.2.2.3.4)
      this.#disconnect(REASON.QOS_NOT_SUPPORTED, CLOSE.POLICY_VIOLATION, 'QoS 2 is not supported')
      return
    }
    const retained = this.#deps.retained
    if (packet.retain && !retained && this.version === 5) {
      // retain available 0 is announced: 5.0 answers a retained PUBLISH with DISCONNECT 0x9A (3.2.2.3.5);
      // 3.1.1 cannot say so, and the message goes as a plain one
      this.#disconnect(REASON.RETAIN_NOT_SUPPORTED, CLOSE.POLICY_VIOLATION, 'retained messages are not supported')
      return
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    // 5.0: the properties a server forwards, as the record's headers (properties.ts)
    const headers = this.version === 5 ? headersOf(packet.properties, Date.now()) : {}
    if ('error' in headers) {
      // [MQTT-3.3.2-14]: a Response Topic is a topic name; one with a wildcard is a Protocol Error
      this.#disconnect(REASON.PROTOCOL_ERROR, CLOSE.POLICY_VIOLATION, headers.error as string)
      return
    }
    // who published it, for No Local [MQTT-3.8.3-3] (a tag of the client id, not the id)
    headers[HEADERS.publisher] = this.#tagHeader
    // published retained: a Retain As Published subscriber gets it with RETAIN 1 [MQTT-3.3.1-13]
    if (packet.retain && retained) headers[HEADERS.retain] = Buffer.from('1', 'latin1')
    const outcome: Promise<Refused | undefined> = this.inOrder(this.#check(packet))
      .then(async checked => {
        if ('reason' in checked) return checked
        if (!packet.retain || !retained) {
          await this.produce(checked.topic, { key: checked.key, value: payload, headers })
          return undefined
        }
        // the retained set is bounded (retained.ts): a new topic past it is refused, no other one evicted
        if (!retained.admits(packet.topic, payload)) return { reason: REASON.QUOTA_EXCEEDED, wire: 'RATE_LIMITED' }
        // [MQTT-3.3.1-5], [MQTT-3.3.1-6]: the message goes to its Kafka topic as any other and replaces (or,
        // empty, deletes) the retained one; acknowledged once Kafka holds both
        await Promise.all([
          this.produce(checked.topic, { key: checked.key, value: payload, headers }),
          retained.put(packet.topic, payload, { timeoutMs: this.deps.limits.publishTimeoutMs, qos: packet.qos === 1 ? 1 : 0 })
        ])
        return undefined
      })
      .catch(err => {
        this.deps.log.info({ err, session: this.id }, 'MQTT publish failed')
        return { reason: REASON.UNSPECIFIED, wire: 'UNAVAILABLE' }
      })
    const answer = (refused: Refused | undefined) => {
      if (refused) this.publishFailed(refused.wire)
      else this.publishAcked()
      if (refused && this.version === 4) {
        // [MQTT-3.3.5-2]: 3.1.1 cannot refuse a PUBLISH; the connection is closed instead
        this.close(refused.wire === 'FORBIDDEN' ? CLOSE.ACCESS_WITHDRAWN : CLOSE.TRY_LATER, 'publish refused: ' + refused.wire)
        return
      }
      // QoS 1 is acknowledged once Kafka holds the record: the PUBACK transfers ownership (MQTT 4.3.2)
      if (packet.qos === 1) this.#send({ cmd: 'puback', messageId: packet.messageId, reasonCode: refused?.reason ?? REASON.SUCCESS })
    }
    if (packet.qos === 1) this.#acks = this.#acks.then(() => outcome).then(answer)
    else outcome.then(answer).catch(() => {})
  }

  async #subscribe (packet: ISubscribePacket, resume?: StoredSession): Promise<void> {
    const granted: number[] = []
    const made: Array<{ levels: readonly string[], topics: Set<string>, existed: boolean, rh: number, qos: number }> = []
    const refuse = (reason: number) => granted.push(this.version === 5 ? reason : 0x80)
    for (const { topic: filter, rh, qos, nl, rap } of packet.subscriptions) {
      if (!validFilter(filter)) {
        refuse(REASON.TOPIC_FILTER_INVALID)
        continue
      }
      if (filter.startsWith('$share/')) {
        const grant = resume ? REASON.SHARED_NOT_SUPPORTED : await this.#subscribeShared(filter)
        if (grant > 1) refuse(grant)
        else granted.push(grant)
        continue
      }
      if (this.#filters.size >= MAX_FILTERS && !this.#filters.has(filter)) {
        refuse(REASON.QUOTA_EXCEEDED)
        continue
      }
      const reached = this.#deps.mappings.reachedBy(filter)
      const allowed = reached.topics.map(topic => ({ topic, decision: this.deps.access.authorize(this.identity, 'subscribe', topic) }))
        .filter(t => t.decision.allowed)
      if (reached.topics.length > 0 && allowed.length === 0) {
        refuse(REASON.NOT_AUTHORIZED)
        continue
      }
      if (allowed.length === 0 && reached.open) {
        // a wildcard over the Kafka topic's own {name} (devices/+/x with devices.{device}) would be many topics: not in this slice
        refuse(REASON.IMPLEMENTATION_SPECIFIC)
        continue
      }
      const topics: string[] = []
      try {
        for (const { topic, decision } of allowed) {
          if (!decision.allowed) continue
          if (!this.#topics.has(topic)) {
            // a resumed session's subscription starts at its stored positions (the hub's resume, as /v1/stream's from=<cursor>)
            const stored = resume ? positionsOf(resume, topic) : undefined
            const from = stored ? { kind: 'cursor' as const, positions: stored } : undefined
            const started = await this.deps.hub.subscribe(this, topic, { encoding: decision.encoding, slowClient: decision.slowClient, product: decision.product }, from)
            if (started) this.#outbox.started(topic, started)
            this.usedProduct(decision.product)
          }
          topics.push(topic)
        }
      } catch (err) {
        this.deps.log.info({ err, session: this.id, filter }, 'MQTT subscription failed')
        refuse(REASON.UNSPECIFIED)
        continue
      }
      // [MQTT-3.8.4-3]: a subscription to the same filter replaces the previous one; its topics are let go
      // after the new ones are counted (released first, a topic both hold left the hub and was never rejoined)
      const previous = this.#filters.get(filter)
      // QoS 1 at most is granted (maximum QoS 1 is announced), as asked [MQTT-3.8.4-6]
      const grant = Math.min(qos ?? 0, 1)
      made.push({ levels: filter.split('/'), topics: new Set(topics), existed: previous !== undefined, rh: rh ?? 0, qos: grant })
      this.#filters.set(filter, topics)
      this.#filterQos.set(filter, grant)
      // No Local is 5.0's (3.1.1's subscriptions have no options byte)
      if (nl === true && this.version === 5) this.#noLocal.add(filter)
      else this.#noLocal.delete(filter)
      // Retain As Published too (3.1.1's deliveries carry RETAIN 0 but for retained messages sent at subscribe)
      if (rap === true && this.version === 5) this.#asPublished.add(filter)
      else this.#asPublished.delete(filter)
      this.#levels()
      for (const topic of topics) this.#topics.set(topic, (this.#topics.get(topic) ?? 0) + 1)
      if (previous) this.#release(previous)
      granted.push(grant)
    }
    if (resume) return
    this.#send({ cmd: 'suback', messageId: packet.messageId, granted })
    this.#outbox.changedSubscriptions()
    if (this.#deps.retained && made.length > 0) await this.#sendRetained(this.#deps.retained, made)
  }

  /**
   * The retained messages a SUBSCRIBE's new subscriptions match, after its SUBACK, with the RETAIN flag 1
   * (3.1.1 [MQTT-3.3.1-8]), as Retain Handling says on 5.0 [MQTT-3.3.1-9] to [MQTT-3.3.1-11]; only those
   * of the Kafka topics the subscription was allowed (the ACL is the live records'), at the lower of the
   * message's QoS and the subscription's [MQTT-3.8.4-8].
   */
  async #sendRetained (retained: RetainedStore, made: Array<{ levels: readonly string[], topics: Set<string>, existed: boolean, rh: number, qos: number }>): Promise<void> {
    if (!retained.loaded && !await retained.ready(RETAINED_LOAD_WAIT_MS)) {
      this.deps.log.warn({ session: this.id, topic: retained.topic }, 'MQTT retained messages not loaded: none sent')
      return
    }
    const sent = new Set<string>()
    for (const sub of made) {
      if (this.version === 5 && (sub.rh === 2 || (sub.rh === 1 && sub.existed))) continue
      for (const message of retained.matching(sub.levels)) {
        if (sent.has(message.name)) continue
        const record = this.#deps.mappings.toRecord(message.name)
        if (!record || !sub.topics.has(record.topic)) continue
        // a wildcard may match the whole set (64 MiB at most): past the socket's queue bound, wait for the
        // client to read (and, at QoS 1, to acknowledge) rather than hold it all in this process's memory
        if (this.raw.writableLength > this.maxQueueBytes) await this.#drained()
        while (!this.closed && this.#outbox.waitingBytes > this.maxQueueBytes) await new Promise<void>(resolve => this.#outbox.onProgress(resolve))
        if (this.closed) return
        if (Math.min(message.qos, sub.qos) === 1) {
          if (this.#outbox.retained(message.name, message.payload)) sent.add(message.name)
          continue
        }
        const bytes = generate({ cmd: 'publish', topic: message.name, payload: message.payload, qos: 0, retain: true, dup: false }, { protocolVersion: this.version })
        if (bytes.length > this.#clientMaxPacket) continue
        sent.add(message.name)
        this.socket.send(bytes)
      }
    }
  }

  #drained (): Promise<void> {
    return new Promise(resolve => {
      const done = () => {
        this.raw.off('drain', done)
        this.raw.off('close', done)
        resolve()
      }
      this.raw.once('drain', done)
      this.raw.once('close', done)
    })
  }

  /**
   * What write() compares the live feed's frames with: every filter but the shared subscription's, whose
   * records come from its group through an outlet of their own (#sharedOutlet), compared with it alone: a
   * group's record that the shared filter does not match is not this subscription's, whatever other filter
   * of the connection it matches (that one has its own copy from the live feed).
   */
  #levels (): void {
    this.#filterLevels = [...this.#filters.keys()].map(f => f.split('/'))
    this.#levelQos = [...this.#filters.keys()].map(f => this.#filterQos.get(f) ?? 0)
    this.#levelNoLocal = [...this.#filters.keys()].map(f => this.#noLocal.has(f))
    this.#levelAsPublished = [...this.#filters.keys()].map(f => this.#asPublished.has(f))
  }

  /** The hub's view of the shared subscription: this socket, its frames matched with the shared filter only, at QoS 0. */
  #sharedOutlet (levels: readonly string[]): Outlet {
    const session = this
    return {
      get id () { return session.id },
      get format () { return session.format },
      get maxQueueBytes () { return session.maxQueueBytes },
      get closed () { return session.closed },
      get admit () { return session.admit },
      get admitReady () { return session.admitReady },
      queuedBytes: () => session.queuedBytes(),
      drained: bytes => session.drained(bytes),
      lagging: topic => session.lagging(topic),
      evict: topic => session.evict(topic),
      write: (frame, onWritten) => {
        if (session.closed) {
          onWritten?.(new Error('socket closed'))
          return
        }
        session.#outbox.write(frame, name => matchesLevels(levels, name) ? 0 : -1, onWritten)
      }
    }
  }

  /**
   * Joins the shared subscription's group; the granted QoS (0), or the reason code of a refusal. The group
   * is the subject's own (groupIdFor, as /v1/stream's group=) and named by ShareName and filter: two
   * clients of one subject with `$share/workers/sensors/+/temp` share its records, whichever node each is
   * on. Granted at QoS 0: the group commits a record's offset once its PUBLISH is written, and a QoS 1
   * delivery waits for a PUBACK the group would not wait for. Retained messages are not sent to a shared
   * subscription (MQTT 5 4.8.2), and a persistent session does not keep it (a resume refuses it with 0x9E).
   */
  async #subscribeShared (full: string): Promise<number> {
    const rest = full.slice('$share/'.length)
    const slash = rest.indexOf('/')
    const name = slash < 0 ? rest : rest.slice(0, slash)
    const filter = slash < 0 ? '' : rest.slice(slash + 1)
    // [MQTT-4.8.2-1]: a ShareName of at least one character; [MQTT-4.8.2-2]: without '/', '+' or '#'; then a filter
    if (name === '' || name.includes('+') || name.includes('#') || filter === '' || !validFilter(filter)) return REASON.TOPIC_FILTER_INVALID
    if (this.#shared?.full === full) return 0
    if (this.#shared) return REASON.QUOTA_EXCEEDED
    const reached = this.#deps.mappings.reachedBy(filter)
    const allowed = reached.topics.map(topic => ({ topic, decision: this.deps.access.authorize(this.identity, 'subscribe', topic) }))
    const topics: string[] = []
    let terms: SubscriptionTerms | undefined
    for (const { topic, decision } of allowed) {
      if (!decision.allowed) continue
      topics.push(topic)
      terms ??= { encoding: decision.encoding, slowClient: decision.slowClient, product: decision.product }
    }
    if (!terms) return reached.topics.length > 0 || !reached.open ? REASON.NOT_AUTHORIZED : REASON.IMPLEMENTATION_SPECIFIC
    const group = `mqtt-share.${createHash('sha256').update(name).update('\0').update(filter).digest('base64url').slice(0, 22)}`
    const levels = filter.split('/')
    const outlet = this.#sharedOutlet(levels)
    this.#shared = { full, levels, outlet }
    try {
      await this.deps.hub.joinGroup(outlet, groupIdFor(this.identity, group), topics, terms)
    } catch (err) {
      this.deps.log.info({ err, session: this.id, filter: full }, 'MQTT shared subscription failed')
      this.#shared = undefined
      this.deps.hub.leaveGroup(outlet)
      return REASON.UNSPECIFIED
    }
    if (terms.product !== undefined) this.usedProduct(terms.product)
    return 0
  }

  #drop (filter: string): boolean {
    if (this.#shared?.full === filter) {
      this.deps.hub.leaveGroup(this.#shared.outlet)
      this.#shared = undefined
      return true
    }
    const topics = this.#filters.get(filter)
    if (!topics) return false
    this.#filters.delete(filter)
    this.#filterQos.delete(filter)
    this.#noLocal.delete(filter)
    this.#asPublished.delete(filter)
    this.#levels()
    this.#release(topics)
    this.#outbox.changedSubscriptions()
    return true
  }

  /** One filter fewer holds each of `topics`: the hub subscriptions no filter holds any more end. */
  #release (topics: string[]): void {
    for (const topic of topics) {
      const n = (this.#topics.get(topic) ?? 1) - 1
      if (n > 0) {
        this.#topics.set(topic, n)
      } else {
        this.#topics.delete(topic)
        this.deps.hub.unsubscribe(this, topic)
        this.#outbox.forget(topic)
      }
    }
  }

  #unsubscribe (packet: IUnsubscribePacket): void {
    // [MQTT-3.10.3-2]: at least one filter; mqtt-packet lets a 3.1.1 UNSUBSCRIBE of a packet id alone through
    if (packet.unsubscriptions.length === 0) {
      this.#disconnect(REASON.PROTOCOL_ERROR, CLOSE.POLICY_VIOLATION, 'UNSUBSCRIBE without a topic filter')
      return
    }
    const granted = packet.unsubscriptions.map(filter => this.#drop(filter) ? REASON.SUCCESS : REASON.NO_SUBSCRIPTION_EXISTED)
    this.#send({ cmd: 'unsuback', messageId: packet.messageId, granted: this.version === 5 ? granted : [] })
  }
}

/** A packet's whole size from its Remaining Length: the fixed header's byte, the length's own 1 to 4 bytes, the rest. */
export function packetSize (remaining: number): number {
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining
}

/**
 * The size of what mqtt-packet is reading: the packet in progress, by the Remaining Length it announced
 * (known once its fixed header is in), or else the bytes it holds.
 */
export function parserHeld (parser: Parser): number {
  const inner = parser as unknown as { _list: { length: number }, packet?: { length?: number } }
  const announced = inner.packet?.length ?? -1
  return Math.max(inner._list.length, announced >= 0 ? packetSize(announced) : 0)
}
