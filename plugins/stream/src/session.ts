// One client socket of /v1/stream: reads its frames, answers them, and is the
// hub's outlet for it. Everything the client sends is checked again here
// (shape, ACL per topic) even though the upgrade was already authorized.
import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { WebSocket, RawData } from 'ws'
import type { Identity } from '@sluice/auth/identity'
import type { AccessControl, AccessDecision } from '@sluice/policy/access'
import type { KafkaClient, Logger } from '@sluice/kafka/core'
import { nativeFormat, parseCursor, type FrameFormat, type Hub, type LiveSession, type Outlet, type SessionRegistry, type StartPosition } from '@sluice/hub'
import { parseClientFrame, valueBytes, type PublishOp, type SubscribeOp } from './protocol.ts'
import { BadRequestError, CLOSE, ForbiddenTopicError, GroupModeError, RateLimitedError, wireCode } from './errors.ts'

export interface SessionLimits {
  /** per-socket send queue bound; past it the hub drops or evicts (DESIGN.md: slow clients) */
  maxQueueBytes: number
  /** client frames that fail validation before the socket is closed with 1008 */
  invalidFrameBurst: number
  /** how fast that allowance refills, per second */
  invalidFramesPerSecond: number
  /** concurrent publishes per socket; past it the socket stops being read until acks return */
  maxInflightPublishes: number
  /** a publish Kafka has not acked by then is answered UNAVAILABLE */
  publishTimeoutMs: number
  /** a socket with no subscription that sends nothing for this long is closed (1000) */
  idleTimeoutMs: number
  /** added to a token's `exp` before the socket is closed with 4001 (clock skew) */
  expiryGraceMs: number
}

/** Rate limits as the stream sees them (the rate-limit plugin implements it). */
export interface StreamGuard {
  /** before each publish: undefined to go ahead, or RATE_LIMITED with a wait; `close` once abuse goes on (4029) */
  publish (session: StreamSession): Promise<{ retryAfterMs: number, close?: boolean } | undefined>
  /** the socket's delivery budget, asked per frame by the hub; undefined: no delivery limit */
  delivery? (session: StreamSession): DeliveryBudget | undefined
}

export interface DeliveryBudget {
  /** synchronous: a local lease of tokens, refilled in batches */
  take (bytes: number): boolean
  /** the socket closed: return unused tokens */
  release? (): void
}

export interface SessionDeps {
  hub: Hub
  kafka: KafkaClient
  access: AccessControl
  sessions: SessionRegistry
  log: Logger
  limits: SessionLimits
  /** in-band renewal: checks a fresh token for the same subject; absent when auth offers none */
  renew?: (current: Identity, token: string) => Promise<Identity>
  guard?: StreamGuard
}

export interface SessionStart {
  socket: WebSocket
  /** the connection under the WebSocket: frames are written to it directly */
  raw: Duplex
  identity: Identity
  remoteAddress: string
  route: string
  /** group mode: the Kafka consumer group this socket joins */
  groupId?: string
}

type Reply = Record<string, unknown>

// 10 s: a client draining a full queue (256 KiB) at even 50 KB/s reaches its close frame in time
const CLOSE_GRACE_MS = 10_000

export class StreamSession implements LiveSession, Outlet {
  readonly id = randomUUID()
  readonly route: string
  readonly remoteAddress: string
  readonly connectedAt = Date.now()
  readonly format: FrameFormat = nativeFormat
  readonly maxQueueBytes: number
  readonly #socket: WebSocket
  readonly #raw: Duplex
  readonly #deps: SessionDeps
  readonly #groupId: string | undefined
  #identity: Identity
  #closed = false
  #alive = true
  #lastFrameAt = Date.now()
  #invalid = 0
  #invalidAt = Date.now()
  #inflight = 0
  #expiryTimer: NodeJS.Timeout | undefined
  #drainWaiters: Array<() => void> = []
  #budget: DeliveryBudget | undefined

  constructor (start: SessionStart, deps: SessionDeps) {
    this.#socket = start.socket
    this.#raw = start.raw
    this.#deps = deps
    this.#identity = start.identity
    this.#groupId = start.groupId
    this.route = start.route
    this.remoteAddress = start.remoteAddress
    this.maxQueueBytes = deps.limits.maxQueueBytes
    this.#socket.on('message', (data, isBinary) => this.#onFrame(data, isBinary))
    this.#socket.on('pong', () => { this.#alive = true })
    this.#socket.once('close', () => this.#cleanup())
    this.#raw.on('drain', () => this.#wakeDrainWaiters())
    deps.sessions.add(this)
    this.#armExpiry()
    this.#budget = deps.guard?.delivery?.(this)
    if (this.#budget) {
      const budget = this.#budget
      this.admit = bytes => budget.take(bytes)
    }
  }

  /** set when the plan limits delivery (see StreamGuard) */
  admit: ((bytes: number) => boolean) | undefined

  get identity (): Identity {
    return this.#identity
  }

  get closed (): boolean {
    return this.#closed
  }

  get groupMode (): boolean {
    return this.#groupId !== undefined
  }

  topics (): string[] {
    return this.#deps.hub.topicsOf(this)
  }

  // ---- Outlet: what the hub writes through ------------------------------------------

  queuedBytes (): number {
    return this.#raw.writableLength
  }

  write (frame: Buffer, onWritten?: (err?: Error | null) => void): void {
    if (this.#closed) {
      onWritten?.(new Error('socket closed'))
      return
    }
    this.#raw.write(frame, onWritten)
  }

  cork (): void {
    this.#raw.cork()
  }

  uncork (): void {
    this.#raw.uncork()
  }

  drained (bytes = this.maxQueueBytes / 2): Promise<void> {
    if (this.#closed || this.#raw.writableLength <= bytes) return Promise.resolve()
    return new Promise(resolve => {
      const check = () => {
        if (this.#closed || this.#raw.writableLength <= bytes) resolve()
        else this.#drainWaiters.push(check)
      }
      this.#drainWaiters.push(check)
    })
  }

  #wakeDrainWaiters (): void {
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const wake of waiters) wake()
  }

  lagging (topic: string, dropped: number, resume: string): void {
    this.#send({ op: 'lagging', topic, dropped, resume })
  }

  evict (topic: string): void {
    this.#deps.log.info({ session: this.id, topic }, 'evicting a slow socket')
    this.close(CLOSE.TOO_SLOW, 'too slow: send queue full')
  }

  // ---- LiveSession: what policy, auth and admin act through ---------------------------

  unsubscribe (topics: string[], code: string, message: string): void {
    const removed = topics.filter(topic => this.#deps.hub.unsubscribe(this, topic))
    if (removed.length > 0) this.#send({ op: 'error', code, message, topics: removed })
  }

  close (code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#deps.hub.remove(this)
    this.#deps.sessions.delete(this)
    this.#socket.close(code, reason)
    // the close frame waits behind the socket's backlog: a peer that reads gets it; one that never reads is cut off after this
    const kill = setTimeout(() => this.#socket.terminate(), CLOSE_GRACE_MS)
    kill.unref()
    this.#socket.once('close', () => clearTimeout(kill))
  }

  // ---- keepalive, called by the plugin's one timer for all sockets --------------------

  /** Pings the peer; a peer that did not answer the last ping is dead and is cut off. */
  heartbeat (now: number): void {
    if (this.#closed) return
    if (!this.#alive) {
      this.#deps.log.debug({ session: this.id }, 'no pong: terminating a dead peer')
      this.#closed = true
      this.#socket.terminate()
      return
    }
    if (!this.groupMode && now - this.#lastFrameAt > this.#deps.limits.idleTimeoutMs && this.topics().length === 0) {
      this.close(CLOSE.NORMAL, 'idle')
      return
    }
    this.#alive = false
    this.#socket.ping()
  }

  // ---- client frames ------------------------------------------------------------------

  /** Subscribes to topics named at open (query string), as a subscribe frame would. */
  async open (topics: string[], from: string | undefined, decisions: Map<string, AccessDecision>): Promise<void> {
    if (this.#groupId !== undefined) {
      await this.#joinGroup(topics, decisions)
      return
    }
    if (topics.length > 0) await this.#subscribe({ op: 'subscribe', topics, from })
  }

  #onFrame (data: RawData, isBinary: boolean): void {
    if (this.#closed) return
    this.#lastFrameAt = Date.now()
    if (isBinary) {
      this.#invalidFrame(new BadRequestError('binary frames are not part of the sluice.v1 protocol; send JSON text'))
      return
    }
    const parsed = parseClientFrame(data.toString())
    if (!parsed.ok) {
      this.#invalidFrame(parsed.error, parsed.id)
      return
    }
    const op = parsed.op
    switch (op.op) {
      case 'ping':
        this.#send({ op: 'pong', id: op.id })
        break
      case 'subscribe':
        this.#subscribe(op).catch(err => this.#error(err, op.id))
        break
      case 'unsubscribe': {
        const topics = op.topics.filter(topic => this.#deps.hub.unsubscribe(this, topic))
        this.#send({ op: 'unsubscribed', id: op.id, topics })
        break
      }
      case 'publish':
        this.#publish(op).catch(err => this.#error(err, op.id))
        break
      case 'auth':
        this.#renew(op.token, op.id).catch(err => this.#error(err, op.id))
        break
    }
  }

  /** A leaky bucket of invalid frames: a burst is forgiven, a flood closes with 1008. */
  #invalidFrame (err: Error, id?: string): void {
    const now = Date.now()
    const limits = this.#deps.limits
    this.#invalid = Math.max(0, this.#invalid - ((now - this.#invalidAt) / 1000) * limits.invalidFramesPerSecond) + 1
    this.#invalidAt = now
    this.#error(err, id)
    if (this.#invalid > limits.invalidFrameBurst) this.close(CLOSE.POLICY_VIOLATION, 'too many invalid frames')
  }

  #authorize (action: 'subscribe' | 'publish', topic: string): AccessDecision {
    return this.#deps.access.authorize(this.#identity, action, topic)
  }

  async #subscribe (op: SubscribeOp): Promise<void> {
    if (this.#groupId !== undefined) throw new GroupModeError()
    let cursor: Map<string, Map<number, bigint>> | undefined
    if (op.from !== undefined && op.from !== 'latest' && op.from !== 'earliest') cursor = parseCursor(op.from)
    const decisions = new Map<string, AccessDecision & { allowed: true }>()
    for (const topic of op.topics) {
      const decision = this.#authorize('subscribe', topic)
      if (!decision.allowed) throw new ForbiddenTopicError('subscribe to', topic, decision.reason)
      decisions.set(topic, decision)
    }
    const done: string[] = []
    try {
      for (const [topic, decision] of decisions) {
        let from: StartPosition = { kind: 'latest' }
        if (op.from === 'earliest') from = { kind: 'earliest' }
        else if (cursor) {
          const positions = cursor.get(topic)
          // a topic the cursor does not name was never read by this client: it starts live
          if (positions) from = { kind: 'cursor', positions }
        }
        await this.#deps.hub.subscribe(this, topic, { encoding: decision.encoding, slowClient: decision.slowClient }, from)
        done.push(topic)
      }
    } catch (err) {
      // all or nothing: a frame that fails leaves no partial subscription behind
      for (const topic of done) this.#deps.hub.unsubscribe(this, topic)
      throw err
    }
    this.#send({ op: 'subscribed', id: op.id, topics: op.topics })
  }

  async #joinGroup (topics: string[], decisions: Map<string, AccessDecision>): Promise<void> {
    const first = decisions.get(topics[0]!)
    if (!first?.allowed) throw new ForbiddenTopicError('subscribe to', topics[0] ?? '?', 'no decision')
    await this.#deps.hub.joinGroup(this, this.#groupId!, topics, { encoding: first.encoding, slowClient: first.slowClient })
    this.#send({ op: 'subscribed', topics, group: true })
  }

  async #publish (op: PublishOp): Promise<void> {
    const decision = this.#authorize('publish', op.topic)
    if (!decision.allowed) throw new ForbiddenTopicError('publish to', op.topic, decision.reason)
    const value = valueBytes(op.value, decision.encoding)
    if (value instanceof Error) throw value
    const limited = await this.#deps.guard?.publish(this)
    if (limited) {
      if (limited.close) this.close(CLOSE.RATE_LIMITED, 'rate limited')
      throw Object.assign(new RateLimitedError(), { retryAfterMs: limited.retryAfterMs })
    }
    const limits = this.#deps.limits
    this.#inflight++
    // stop reading the socket while Kafka has this many of its publishes: the client feels TCP backpressure
    if (this.#inflight >= limits.maxInflightPublishes && !this.#socket.isPaused) this.#socket.pause()
    let timer: NodeJS.Timeout | undefined
    try {
      const ack = await Promise.race([
        this.#deps.kafka.produce(op.topic, { key: op.key ?? null, value, headers: op.headers }),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error(`Kafka did not ack within ${limits.publishTimeoutMs} ms`), { code: 'SLUICE_KAFKA_TIMEOUT' })), limits.publishTimeoutMs)
        })
      ])
      this.#send({ op: 'ack', id: op.id, topic: ack.topic, partition: ack.partition, offset: ack.offset })
    } finally {
      clearTimeout(timer)
      this.#inflight--
      if (this.#socket.isPaused && this.#inflight < limits.maxInflightPublishes / 2) this.#socket.resume()
    }
  }

  async #renew (token: string, id?: string): Promise<void> {
    if (!this.#deps.renew) throw new BadRequestError('in-band token renewal is not offered by this gateway')
    const fresh = await this.#deps.renew(this.#identity, token)
    this.#identity = fresh
    this.#armExpiry()
    this.#send({ op: 'authenticated', id, expiresAt: fresh.expiresAt })
  }

  #armExpiry (): void {
    clearTimeout(this.#expiryTimer)
    this.#expiryTimer = undefined
    const expiresAt = this.#identity.expiresAt
    if (expiresAt === undefined) return
    const delay = Math.max(0, expiresAt + this.#deps.limits.expiryGraceMs - Date.now())
    // setTimeout holds 2^31-1 ms at most; a later expiry re-arms when that fires
    this.#expiryTimer = setTimeout(() => {
      if (Date.now() >= expiresAt + this.#deps.limits.expiryGraceMs) this.close(CLOSE.CREDENTIALS, 'credentials expired')
      else this.#armExpiry()
    }, Math.min(delay, 2 ** 31 - 1))
    this.#expiryTimer.unref()
  }

  #error (err: unknown, id?: string): void {
    const code = wireCode(err)
    if (code === 'INTERNAL') this.#deps.log.error({ err, session: this.id }, 'stream frame failed')
    const reply: Reply = { op: 'error', id, code, message: code === 'INTERNAL' ? 'internal error' : (err as Error).message }
    const retryAfterMs = (err as { retryAfterMs?: number }).retryAfterMs
    if (retryAfterMs !== undefined) reply.retryAfterMs = retryAfterMs
    this.#send(reply)
  }

  #send (reply: Reply): void {
    if (this.#closed || this.#socket.readyState !== this.#socket.OPEN) return
    this.#socket.send(JSON.stringify(reply))
  }

  #cleanup (): void {
    this.#closed = true
    clearTimeout(this.#expiryTimer)
    this.#deps.hub.remove(this)
    this.#deps.sessions.delete(this)
    this.#budget?.release?.()
    this.#wakeDrainWaiters()
  }
}
