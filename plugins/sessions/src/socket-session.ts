// What every WebSocket session shares, whatever its route (/v1/stream,
// /v2/broker/): it is the hub's outlet on the raw connection, it is in the
// session registry (so a policy change, a revoked key or an admin's kick
// reaches it), it closes with a bounded grace, answers keepalive, limits
// floods of invalid frames, honours the plan's delivery budget, and publishes
// to Kafka with backpressure and a timeout. A credential's expiry is the auth
// plugin's: its sweep closes sockets at exp plus skew with 4001.
// A route's session extends it with its protocol: how client frames are read
// and how errors and notices are written.
import type { Duplex } from 'node:stream'
import type { WebSocket, RawData } from 'ws'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl } from '@sluice/policy/access'
import type { KafkaClient, OutgoingRecord, RecordMetadata } from '@sluice/kafka'
import type { Logger } from '@sluice/protocol/logger'
import { KafkaTimeoutError } from '@sluice/kafka/errors'
import type { FrameFormat, Hub, Outlet } from '@sluice/hub'
import type { LiveSession, SessionRegistry, UsageCounts } from './registry.ts'
import type { RoutePublishes } from './publish-counts.ts'
import { gatewayDefaults } from '@sluice/config/gateway'
import { CLOSE } from '@sluice/protocol/codes'
import { sessionId } from './session-id.ts'

export interface SessionLimits {
  /** per-socket send queue bound; past it the hub drops or evicts (docs/design.md: slow clients) */
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
}

/**
 * Every route's defaults: /v1/stream's configuration (stream.*) applies to all routes. The values and their
 * reasons are the gateway's schema's (packages/config/src/gateway.ts), here for a route used without config.
 */
export const DEFAULT_LIMITS: SessionLimits = {
  maxQueueBytes: gatewayDefaults.stream.maxQueueBytes,
  invalidFrameBurst: gatewayDefaults.stream.invalidFrameBurst,
  // not a config key: the allowance refills one frame a second, so that only a burst of mistakes closes the socket
  invalidFramesPerSecond: 1,
  maxInflightPublishes: gatewayDefaults.stream.maxInflightPublishes,
  publishTimeoutMs: gatewayDefaults.stream.publishTimeoutMs,
  idleTimeoutMs: gatewayDefaults.stream.idleTimeoutMs
}

/** Rate limits as the WebSocket routes see them (the rate-limit plugin implements it). */
export interface StreamGuard {
  /** before each publish: undefined to go ahead, or RATE_LIMITED with a wait; `close` once abuse goes on (4029) */
  publish (session: SocketSession, terms?: { plan: string }): Promise<{ retryAfterMs: number, close?: boolean } | undefined>
  /** the socket's delivery budget, asked per frame by the hub; undefined: no delivery limit */
  delivery? (session: SocketSession): DeliveryBudget | undefined
}

export interface DeliveryBudget {
  /** synchronous: a local lease of tokens, refilled in batches */
  take (bytes: number): boolean
  /** settles once the first tokens arrived (or were refused): the hub subscribes after it */
  readonly ready?: Promise<unknown>
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
  /** the route's publish outcomes, for /metrics (acks, errors by wire code) */
  publishes?: RoutePublishes
}

export interface SessionStart {
  socket: WebSocket
  /** the connection under the WebSocket: frames are written to it directly */
  raw: Duplex
  identity: Identity
  remoteAddress: string
  route: string
}

/** One settled promise for every session's empty queues (a promise each is 48 bytes per socket for nothing). */
export const SETTLED: Promise<void> = Promise.resolve()

// written behind a queue to learn when it has gone to the kernel (no bytes reach the peer)
const EMPTY = Buffer.alloc(0)

// 10 s: a client draining a full queue (256 KiB) at even 50 KB/s reaches its close frame in time
const CLOSE_GRACE_MS = 10_000
// a socket closed for publishing while told to wait (4029) has its answers written first, for this long at
// most: acks wait on Kafka (tens of ms); frames read meanwhile are not acted on, so the flood stops at once
const RATE_LIMITED_CLOSE_WAIT_MS = 2000
// how often a closing socket looks whether its publishes are answered: an ack takes a few ms, a drain lasts seconds
const SETTLE_POLL_MS = 20

export abstract class SocketSession implements LiveSession, Outlet {
  // 128 random bits as hex (session-id.ts)
  readonly id = sessionId()
  readonly route: string
  readonly remoteAddress: string
  readonly connectedAt = Date.now()
  abstract readonly format: FrameFormat
  readonly maxQueueBytes: number
  protected readonly socket: WebSocket
  protected readonly raw: Duplex
  protected readonly deps: SessionDeps
  #identity: Identity
  #product: string | undefined
  #closed = false
  #goingAway = false
  #alive = true
  #lastFrameAt = Date.now()
  #invalid = 0
  #invalidAt = Date.now()
  #inflight = 0
  #drainWaiters: Array<() => void> = []
  /** an empty write is queued to wake the drain waiters (see #awaitDrain) */
  #flushMarked = false
  #budget: DeliveryBudget | undefined
  /** this socket's usage counters, when the node meters usage (plugins/usage) */
  #usage: UsageCounts | undefined
  #turn: Promise<unknown> = SETTLED

  constructor (start: SessionStart, deps: SessionDeps) {
    this.socket = start.socket
    this.raw = start.raw
    this.deps = deps
    this.#identity = start.identity
    this.route = start.route
    this.remoteAddress = start.remoteAddress
    this.maxQueueBytes = deps.limits.maxQueueBytes
    this.socket.on('message', (data, isBinary) => {
      if (this.#closed || this.#goingAway) return
      this.#lastFrameAt = Date.now()
      this.#frame(data, isBinary)
    })
    this.socket.on('pong', () => { this.#alive = true })
    this.socket.once('close', () => this.#cleanup())
    this.raw.on('drain', () => this.#wakeDrainWaiters())
    deps.sessions.add(this)
    const usage = deps.sessions.meter?.opened(this)
    if (usage) {
      this.#usage = usage
      // the hub calls it once per write (a write holds a run of frames), not per message
      this.delivered = (frames, bytes) => {
        usage.delivered += frames
        usage.deliveredBytes += bytes
      }
    }
    this.#budget = deps.guard?.delivery?.(this)
    if (this.#budget) {
      const budget = this.#budget
      this.admit = bytes => budget.take(bytes)
      this.admitReady = budget.ready
    }
  }

  /** this socket's usage counters when the node meters usage (a route that writes other than it is given counts itself) */
  protected get usage (): UsageCounts | undefined {
    return this.#usage
  }

  /** set when usage is metered (Outlet.delivered) */
  delivered: ((frames: number, bytes: number) => void) | undefined
  /** set when the plan limits delivery (see StreamGuard) */
  admit: ((bytes: number) => boolean) | undefined
  admitReady: Promise<unknown> | undefined

  get identity (): Identity {
    return this.#identity
  }

  /** the product of the first topic this socket subscribed or published to (metrics label connections by it) */
  get product (): string | undefined {
    return this.#product
  }

  /** A topic of `product` was subscribed or published to: the first one names the connection's product. */
  protected usedProduct (product: string): void {
    this.#product ??= product
  }

  /**
   * Closed, or closing: ws stops a socket on a protocol error (a frame over
   * maxPayload, invalid UTF-8) by sending its close frame and ending the TCP
   * connection itself, without a word to the session. Nothing may be written
   * after that: a write after the end is a socket error, on which ws destroys
   * the socket, and the peer, still writing, meets a RST and loses the close
   * frame (1006 instead of 1009: the fuzz suite's publish frames, seed 20696639).
   */
  get closed (): boolean {
    return this.#closed || this.socket.readyState !== this.socket.OPEN
  }

  // ---- the route's protocol -----------------------------------------------------------

  /**
   * One client frame, already known to come from an open session. Runs inside the
   * per-frame boundary (#frame): a throw, or a rejection of the promise it returns,
   * becomes an INTERNAL error for the client and a counted failure, never a crash.
   * A route answers the errors it expects itself, with the frame's id.
   */
  protected abstract onFrame (data: RawData, isBinary: boolean): void | Promise<unknown>
  /** tells the client about a refused frame or a failed request */
  protected abstract sendError (err: unknown, id?: string): void
  abstract topics (): string[]
  abstract unsubscribe (topics: string[], code: string, message: string): void
  abstract lagging (topic: string, dropped: number, resume: string): void

  /** whether a socket that sent nothing for `quietMs` is forgotten and is closed (1000); never, unless the route says */
  protected idle (_quietMs: number): boolean {
    return false
  }

  // ---- the per-frame boundary ---------------------------------------------------------

  /**
   * Whatever a client sends, nothing it causes reaches uncaughtException or is left an
   * unhandled rejection: one frame's failure is that frame's error (and a bug of ours,
   * counted by route on /metrics), and the socket goes on. Frames keep their order:
   * the route's own queues (inOrder, publish chains) are not touched here.
   */
  #frame (data: RawData, isBinary: boolean): void {
    let outcome: void | Promise<unknown>
    try {
      outcome = this.onFrame(data, isBinary)
    } catch (err) {
      this.#frameFailed(err)
      return
    }
    if (outcome) outcome.catch(err => this.#frameFailed(err))
  }

  #frameFailed (err: unknown): void {
    this.deps.publishes?.frameFailed()
    try {
      this.sendError(err)
    } catch (again) {
      // not even an error frame could be written: the socket's state is unknown, so it ends
      this.deps.log.error({ err: again, session: this.id }, 'could not report a failed frame')
      this.close(CLOSE.INTERNAL, 'internal error')
    }
  }

  // ---- Outlet: what the hub writes through ------------------------------------------

  queuedBytes (): number {
    return this.raw.writableLength
  }

  write (frame: Buffer, onWritten?: (err?: Error | null) => void): void {
    if (this.closed) {
      onWritten?.(new Error('socket closed'))
      return
    }
    this.raw.write(frame, onWritten)
  }

  drained (bytes = this.maxQueueBytes / 2): Promise<void> {
    if (this.closed || this.raw.writableLength <= bytes) return Promise.resolve()
    return new Promise(resolve => {
      const check = () => {
        if (this.closed || this.raw.writableLength <= bytes) resolve()
        else this.#awaitDrain(check)
      }
      this.#awaitDrain(check)
    })
  }

  /**
   * `wake` runs once the queue moved: on 'drain', or at the close. Node emits
   * 'drain' only as the queue empties after a write found it at its high-water
   * mark (64 KiB): a few small frames below it, ahead of a large frame that
   * waits for an empty queue, would wake nobody. Then a write of no bytes
   * marks the queue's end, and its callback runs once everything ahead of it
   * was handed to the kernel. One mark at a time, however many waiters.
   */
  #awaitDrain (wake: () => void): void {
    this.#drainWaiters.push(wake)
    if (this.#flushMarked || this.raw.writableNeedDrain || !this.raw.writable || this.closed) return
    this.#flushMarked = true
    this.raw.write(EMPTY, () => {
      this.#flushMarked = false
      this.#wakeDrainWaiters()
    })
  }

  #wakeDrainWaiters (): void {
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const wake of waiters) wake()
  }

  evict (topic: string): void {
    this.deps.log.info({ session: this.id, topic }, 'evicting a slow socket')
    this.close(CLOSE.TOO_SLOW, 'too slow: send queue full')
  }

  // ---- LiveSession: what policy, auth and admin act through ---------------------------

  close (code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.deps.hub.remove(this)
    this.deps.sessions.delete(this)
    this.socket.close(code, reason)
    // the close frame waits behind the socket's backlog: a peer that reads gets it; one that never reads is cut off after this
    const kill = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS)
    kill.unref()
    this.socket.once('close', () => clearTimeout(kill))
  }

  /**
   * A graceful close (a node draining): frames read from now on are not acted on
   * (never acked, so the client sends them again on its next connection); the
   * publishes already read are answered first, for `waitMs` at most, so that a
   * client never has to guess whether a publish in flight at the close was written.
   */
  async closeSettled (code: number, reason: string, waitMs: number): Promise<void> {
    if (this.#closed) return
    this.#goingAway = true
    const deadline = Date.now() + waitMs
    // polled: a drain is rare, and this keeps the publish paths free of drain bookkeeping
    while (!this.#closed && this.pendingPublishes() > 0 && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, SETTLE_POLL_MS))
    }
    this.close(code, reason)
  }

  /** publishes read from the client and not yet answered; a route that queues them before Kafka counts those too */
  protected pendingPublishes (): number {
    return this.#inflight
  }

  // ---- keepalive, called by the route's one timer for all its sockets ---------------

  /** Pings the peer; a peer that did not answer the last ping is dead and is cut off. */
  heartbeat (now: number): void {
    if (this.#closed) return
    if (!this.#alive) {
      this.deps.log.debug({ session: this.id }, 'no pong: terminating a dead peer')
      this.#closed = true
      this.socket.terminate()
      return
    }
    if (this.idle(now - this.#lastFrameAt)) {
      this.close(CLOSE.NORMAL, 'idle')
      return
    }
    this.#alive = false
    this.socket.ping()
  }

  // ---- for the route's protocol -------------------------------------------------------

  /** A leaky bucket of invalid frames: a burst is forgiven, a flood closes with 1008. */
  protected invalidFrame (err: Error, id?: string): void {
    const now = Date.now()
    const limits = this.deps.limits
    this.#invalid = Math.max(0, this.#invalid - ((now - this.#invalidAt) / 1000) * limits.invalidFramesPerSecond) + 1
    this.#invalidAt = now
    this.sendError(err, id)
    if (this.#invalid > limits.invalidFrameBurst) this.close(CLOSE.POLICY_VIOLATION, 'too many invalid frames')
  }

  /** A renewed credential (same subject, no wider access) replaces the current one. */
  protected renewed (fresh: Identity): void {
    this.#identity = fresh
    this.deps.sessions.refiled(this)
  }

  /**
   * The credential's plan changed while the socket is open (plugins/apps: an application's approved plan;
   * same key, same subject): the socket acts under `fresh` from now on, and its deliveries count against the
   * new plan's lease. The hub reads `admit` per batch, so the next batch already does.
   */
  retarget (fresh: Identity): void {
    if (this.#closed) return
    this.#identity = fresh
    this.deps.sessions.refiled(this)
    if (!this.#budget) return
    this.#budget.release?.()
    const budget = this.deps.guard?.delivery?.(this)
    this.#budget = budget
    this.admit = budget ? bytes => budget.take(bytes) : undefined
    this.admitReady = budget?.ready
  }

  /**
   * The plan's publish limit: undefined to go ahead, else how long to wait (and the socket is closed with 4029 once abuse goes on).
   * `terms`: the publish decision, whose plan the limit is counted against (without it, the subject's plan).
   */
  protected async publishLimited (terms?: { plan: string }): Promise<{ retryAfterMs: number } | undefined> {
    return await this.publishLimit(terms)
  }

  /**
   * publishLimited without an async function around it: undefined at once when no limit applies
   * (no guard), else the guard's answer through one reaction (the stream route's publish path
   * counts its promises: bench/publish.ts).
   */
  protected publishLimit (terms?: { plan: string }): Promise<{ retryAfterMs: number } | undefined> | undefined {
    const guard = this.deps.guard
    if (!guard) return undefined
    return guard.publish(this, terms).then(limited => {
      if (!limited) return undefined
      // the publishes read before this one are answered first (their RATE_LIMITED included), so that the
      // client hears why before the close: closed at once, a flood's first refusals still queued behind
      // acks waiting on Kafka were never sent (seen with leased publish tokens, 5a589b8: 4029 after 0 errors)
      if (limited.close) this.closeSettled(CLOSE.RATE_LIMITED, 'rate limited', RATE_LIMITED_CLOSE_WAIT_MS).catch(err => this.deps.log.warn({ err, session: this.id }, 'closing a rate-limited socket failed'))
      return { retryAfterMs: limited.retryAfterMs }
    })
  }

  /**
   * `work`'s outcome, never before the outcome of the work passed in before it:
   * a client's frames are checked concurrently (a rate-limit decision may be a
   * Redis round trip), and what is done with the results (a produce) happens in
   * the order the frames came in.
   */
  protected inOrder<T> (work: Promise<T>): Promise<T> {
    // handled where it is made: `work` may reject at once (a frame refused before its first
    // await) while the turn before it still waits on Redis, and an unhandled rejection ends
    // the process; its outcome still reaches the caller through `turn`
    work.catch(() => {})
    const turn = this.#turn.then(() => work)
    this.#turn = turn.then(() => {}, () => {})
    return turn
  }

  /** `write` (a produce), or SLUICE_KAFKA_TIMEOUT once Kafka has not acked it within publishTimeoutMs. */
  protected async publishTimeout<T> (write: Promise<T>): Promise<T> {
    const ms = this.deps.limits.publishTimeoutMs
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        write,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new KafkaTimeoutError(ms)), ms)
        })
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Writes one record and resolves once Kafka acked it; rejects with SLUICE_KAFKA_* or a timeout. */
  protected async produce (topic: string, record: OutgoingRecord): Promise<RecordMetadata> {
    const limits = this.deps.limits
    this.#inflight++
    // stop reading the socket while Kafka has this many of its publishes: the client feels TCP backpressure
    if (this.#inflight >= limits.maxInflightPublishes && !this.socket.isPaused) this.socket.pause()
    try {
      // timed out by the node's publish batcher, one timer for all publishes: a timer and a Promise.race per
      // publish here were ~3 % of the gateway's busy CPU at the maximum of bench/publish.ts
      return await this.deps.kafka.produce(topic, record, { timeoutMs: limits.publishTimeoutMs })
    } finally {
      this.#inflight--
      if (this.socket.isPaused && this.#inflight < limits.maxInflightPublishes / 2) this.socket.resume()
    }
  }

  /** Kafka acknowledged `records` of this socket's publishes: the route's count and the socket's usage. */
  protected publishAcked (records = 1): void {
    this.deps.publishes?.acked(records)
    if (this.#usage) this.#usage.published += records
  }

  /** A publish was refused (before Kafka or by it), with the route's wire error code. */
  protected publishFailed (code: string): void {
    this.deps.publishes?.failed(code)
    this.#usage?.refuse(code)
  }

  /** A text frame through ws, if the socket is still open. */
  protected sendText (text: string): void {
    if (this.closed) return
    this.socket.send(text)
  }

  /** the socket closed: a route's own clean-up (before the hub forgets the outlet) */
  protected onCleanup (): void {}

  #cleanup (): void {
    this.#closed = true
    this.onCleanup()
    this.deps.hub.remove(this)
    this.deps.sessions.delete(this)
    this.#budget?.release?.()
    this.#wakeDrainWaiters()
  }
}
