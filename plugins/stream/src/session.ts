// One client socket of /v1/stream: reads its frames, answers them, and is the
// hub's outlet for it. Everything the client sends is checked again here
// (shape, ACL per topic) even though the upgrade was already authorized. What
// every route's socket shares (outlet, registry, close, keepalive, flood
// limit, publish backpressure) is @sluice/sessions' SocketSession.
import type { RawData } from 'ws'
import type { AccessDecision } from '@sluice/policy/access'
import type { OutgoingRecord } from '@sluice/kafka'
import { formatCursor, nativeFormat, parseCursor, type Cursor, type FrameFormat, type Positions, type StartPosition } from '@sluice/hub'
import { compileClientPattern, isTopicPattern, parseClientFrame, valueBytes, type PublishOp, type SubscribeOp } from './protocol.ts'
import { BadRequestError, ForbiddenTopicError, GroupModeError, RateLimitedError, wireCode } from './errors.ts'
import { SETTLED, SocketSession, type SessionDeps, type SessionStart as SocketStart } from '@sluice/sessions'

export interface SessionStart extends SocketStart {
  /** group mode: the Kafka consumer group this socket joins */
  groupId?: string
}

type Reply = Record<string, unknown>

// A socket's patterns reach at most this many topics in all (past it, one error says so and
// no more are added): as for one subscribe frame, it bounds the consumers and ACL checks one socket causes.
export const MAX_PATTERN_TOPICS = 100
// Patterns a socket may hold at once: each is tested against every new topic of the cluster.
export const MAX_PATTERNS = 10
// Kafka's own topics (__consumer_offsets, __transaction_state) are never reached by a pattern
const INTERNAL_TOPIC = /^__/

interface TopicPatternSub {
  readonly matcher: RegExp
  /** topics this pattern subscribed the socket to */
  readonly topics: Set<string>
}

export class StreamSession extends SocketSession {
  #publishes: Promise<void> = SETTLED
  #queuedPublishes = 0
  #corked = false
  readonly format: FrameFormat = nativeFormat
  readonly #groupId: string | undefined
  readonly #patterns = new Map<string, TopicPatternSub>()
  #unwatch: (() => void) | undefined
  #patternCapTold = false

  constructor (start: SessionStart, deps: SessionDeps) {
    super(start, deps)
    this.#groupId = start.groupId
  }

  protected override onCleanup (): void {
    this.#unwatch?.()
    this.#unwatch = undefined
  }

  get groupMode (): boolean {
    return this.#groupId !== undefined
  }

  topics (): string[] {
    return this.deps.hub.topicsOf(this)
  }

  lagging (topic: string, dropped: number, resume: string): void {
    this.#send({ op: 'lagging', topic, dropped, resume })
  }

  unsubscribe (topics: string[], code: string, message: string): void {
    const removed = topics.filter(topic => this.deps.hub.unsubscribe(this, topic))
    if (removed.length > 0) this.#send({ op: 'error', code, message, topics: removed })
  }

  /** every publish read and not yet acked or refused: the ones waiting for their turn too */
  protected override pendingPublishes (): number {
    return this.#queuedPublishes
  }

  protected override idle (quietMs: number): boolean {
    // a socket watching a pattern waits for its topics: it is not idle
    return !this.groupMode && quietMs > this.deps.limits.idleTimeoutMs && this.topics().length === 0 && this.#patterns.size === 0
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

  protected onFrame (data: RawData, isBinary: boolean): void | Promise<unknown> {
    if (isBinary) {
      this.invalidFrame(new BadRequestError('binary frames are not part of the sluice.v1 protocol; send JSON text'))
      return
    }
    const parsed = parseClientFrame(data.toString())
    if (!parsed.ok) {
      this.invalidFrame(parsed.error, parsed.id)
      return
    }
    const op = parsed.op
    switch (op.op) {
      case 'ping':
        this.#send({ op: 'pong', id: op.id })
        break
      case 'subscribe':
        return this.#subscribe(op).catch(err => this.sendError(err, op.id))
      case 'unsubscribe': {
        const topics = op.topics.filter(topic => isTopicPattern(topic) ? this.#dropPattern(topic) : this.deps.hub.unsubscribe(this, topic))
        this.#send({ op: 'unsubscribed', id: op.id, topics })
        break
      }
      case 'publish':
        this.#enqueuePublish(op)
        break
      case 'auth':
        return this.#renew(op.token, op.id).catch(err => this.sendError(err, op.id))
    }
  }

  #authorize (action: 'subscribe' | 'publish', topic: string): AccessDecision {
    return this.deps.access.authorize(this.identity, action, topic)
  }

  async #subscribe (op: SubscribeOp): Promise<void> {
    if (this.#groupId !== undefined) throw new GroupModeError()
    const patterns = op.topics.filter(isTopicPattern)
    if (patterns.length > 0) {
      await this.#subscribePatterns(op, patterns)
      if (patterns.length === op.topics.length) return
      op = { ...op, topics: op.topics.filter(topic => !isTopicPattern(topic)) }
    }
    let cursor: Map<string, Map<number, bigint>> | undefined
    if (op.from !== undefined && op.from !== 'latest' && op.from !== 'earliest') cursor = parseCursor(op.from)
    const decisions = new Map<string, AccessDecision & { allowed: true }>()
    for (const topic of op.topics) {
      const decision = this.#authorize('subscribe', topic)
      if (!decision.allowed) throw new ForbiddenTopicError('subscribe to', topic, decision.reason)
      decisions.set(topic, decision)
    }
    const done: string[] = []
    const starts: Cursor = new Map()
    try {
      for (const [topic, decision] of decisions) {
        let from: StartPosition = { kind: 'latest' }
        if (op.from === 'earliest') from = { kind: 'earliest' }
        else if (cursor) {
          const positions = cursor.get(topic)
          // a topic the cursor does not name was never read by this client: it starts live
          if (positions) from = { kind: 'cursor', positions }
        }
        const start = await this.deps.hub.subscribe(this, topic, { encoding: decision.encoding, slowClient: decision.slowClient, product: decision.product }, from)
        if (start) starts.set(topic, start)
        this.usedProduct(decision.product)
        done.push(topic)
      }
    } catch (err) {
      // all or nothing: a frame that fails leaves no partial subscription behind
      for (const topic of done) this.deps.hub.unsubscribe(this, topic)
      throw err
    }
    // where the socket starts on every partition: with the offsets of the messages that follow, a
    // client can resume exactly, even on partitions it has not heard from yet
    this.#send({ op: 'subscribed', id: op.id, topics: op.topics, cursor: formatCursor(starts) })
  }

  /**
   * Subscribes to every topic a pattern matches now that the identity may
   * read, and keeps watching: a topic created later that matches is
   * subscribed from its first record (announced with `subscribed` and the
   * pattern). Topics the policy does not grant are skipped, not refused: a
   * pattern is a wish, each topic is authorized on its own.
   */
  async #subscribePatterns (op: SubscribeOp, patterns: string[]): Promise<void> {
    const fresh = patterns.filter(p => !this.#patterns.has(p))
    if (this.#patterns.size + fresh.length > MAX_PATTERNS) {
      throw new BadRequestError(`a socket may hold at most ${MAX_PATTERNS} topic patterns (it has ${this.#patterns.size})`)
    }
    for (const pattern of fresh) {
      const matcher = compileClientPattern(pattern)
      if (typeof matcher === 'string') throw new BadRequestError(matcher)
      this.#patterns.set(pattern, { matcher, topics: new Set() })
    }
    // watch before listing: a topic created after the list was read is reported to the watcher
    this.#unwatch ??= this.deps.hub.watchTopics(added => { this.#topicsAppeared(added) })
    let cursor: Map<string, Map<number, bigint>> | undefined
    if (op.from !== undefined && op.from !== 'latest' && op.from !== 'earliest') cursor = parseCursor(op.from)
    const names = await this.deps.hub.topicNames()
    const matched: string[] = []
    const starts: Cursor = new Map()
    for (const pattern of patterns) {
      for (const topic of names) {
        let from: StartPosition = { kind: 'latest' }
        if (op.from === 'earliest') from = { kind: 'earliest' }
        else if (cursor?.get(topic)) from = { kind: 'cursor', positions: cursor.get(topic)! }
        const start = await this.#patternTopic(pattern, topic, from)
        if (start) {
          matched.push(topic)
          starts.set(topic, start)
        }
      }
    }
    this.#send({ op: 'subscribed', id: op.id, topics: patterns, matched, ...(starts.size > 0 ? { cursor: formatCursor(starts) } : {}) })
  }

  /** Subscribes `topic` for `pattern` when it matches and is granted; where it starts when it did, else false. */
  async #patternTopic (pattern: string, topic: string, from: StartPosition): Promise<Positions | false> {
    const sub = this.#patterns.get(pattern)
    if (!sub || this.closed || INTERNAL_TOPIC.test(topic) || !sub.matcher.test(topic) || sub.topics.has(topic)) return false
    if (this.deps.hub.topicsOf(this).includes(topic)) return false
    let count = 0
    for (const p of this.#patterns.values()) count += p.topics.size
    if (count >= MAX_PATTERN_TOPICS) {
      if (!this.#patternCapTold) {
        this.#patternCapTold = true
        this.sendError(new BadRequestError(`topic patterns reach at most ${MAX_PATTERN_TOPICS} topics per socket; "${topic}" and later ones are not subscribed`))
      }
      return false
    }
    const decision = this.#authorize('subscribe', topic)
    if (!decision.allowed) return false
    sub.topics.add(topic)
    let start: Positions | undefined
    try {
      start = await this.deps.hub.subscribe(this, topic, { encoding: decision.encoding, slowClient: decision.slowClient, product: decision.product }, from)
    } catch (err) {
      sub.topics.delete(topic)
      throw err
    }
    this.usedProduct(decision.product)
    return start ?? false
  }

  #topicsAppeared (added: string[]): void {
    for (const pattern of this.#patterns.keys()) {
      for (const topic of added) {
        // a new topic: everything in it was written after the pattern was subscribed
        this.#patternTopic(pattern, topic, { kind: 'earliest' }).then(start => {
          if (start) this.#send({ op: 'subscribed', topics: [topic], pattern, cursor: formatCursor(new Map([[topic, start]])) })
        }, err => this.sendError(err))
      }
    }
  }

  /** Stops a pattern and unsubscribes the topics it brought; false when the socket had no such pattern. */
  #dropPattern (pattern: string): boolean {
    const sub = this.#patterns.get(pattern)
    if (!sub) return false
    this.#patterns.delete(pattern)
    for (const topic of sub.topics) this.deps.hub.unsubscribe(this, topic)
    if (this.#patterns.size === 0) {
      this.#unwatch?.()
      this.#unwatch = undefined
    }
    return true
  }

  async #joinGroup (topics: string[], decisions: Map<string, AccessDecision>): Promise<void> {
    const first = decisions.get(topics[0]!)
    if (!first?.allowed) throw new ForbiddenTopicError('subscribe to', topics[0] ?? '?', 'no decision')
    this.usedProduct(first.product)
    await this.deps.hub.joinGroup(this, this.#groupId!, topics, { encoding: first.encoding, slowClient: first.slowClient, product: first.product })
    this.#send({ op: 'subscribed', topics, group: true })
  }

  /**
   * A socket's publishes are pipelined: each frame is checked as it comes
   * (ACL, value, the plan's rate limit, which may be a Redis round trip),
   * concurrently with the frames before it, and its record is handed to the
   * node's publish batcher in the order the frames came (inOrder), which
   * writes each partition's records in the order handed in; the answers (ack
   * or error) go out in frame order too, so a client still reads its acks'
   * offsets as order. Nothing waits for an ack before the next record goes.
   * Past maxInflightPublishes read and unanswered, the socket is not read
   * until half of them are answered.
   */
  #enqueuePublish (op: PublishOp): void {
    const limit = this.deps.limits.maxInflightPublishes
    this.#queuedPublishes++
    if (this.#queuedPublishes >= limit && !this.socket.isPaused) this.socket.pause()
    const written = this.inOrder(this.#check(op)).then(record => this.produce(op.topic, record))
    // handled where it is made: it may fail while an earlier frame's answer still waits
    written.catch(() => {})
    this.#publishes = this.#publishes.then(() => written).then(ack => {
      this.deps.publishes?.acked()
      this.#corkAnswers()
      this.#send({ op: 'ack', id: op.id, topic: ack.topic, partition: ack.partition, offset: ack.offset })
    }, err => {
      this.deps.publishes?.failed(wireCode(err))
      this.#corkAnswers()
      this.sendError(err, op.id)
    }).finally(() => {
      this.#queuedPublishes--
      if (this.socket.isPaused && this.#queuedPublishes < limit / 2) this.socket.resume()
    })
  }

  /**
   * The answers a produce request brings are written in one go: the batcher settles all its
   * records at once, and their answers, all sent before the next tick, leave in one write
   * instead of one syscall each (measured: writev for acks was 22 % of the gateway's CPU at 20
   * sockets × 64 publishes in flight).
   */
  #corkAnswers (): void {
    if (this.#corked || this.closed) return
    this.#corked = true
    this.raw.cork()
    process.nextTick(() => {
      this.#corked = false
      this.raw.uncork()
    })
  }

  /** The record a publish frame asks for, or why it is refused. */
  async #check (op: PublishOp): Promise<OutgoingRecord> {
    const decision = this.#authorize('publish', op.topic)
    if (!decision.allowed) throw new ForbiddenTopicError('publish to', op.topic, decision.reason)
    this.usedProduct(decision.product)
    const value = valueBytes(op.value, decision.encoding)
    if (value instanceof Error) throw value
    const limited = await this.publishLimited(decision)
    if (limited) throw Object.assign(new RateLimitedError(), { retryAfterMs: limited.retryAfterMs })
    return { key: op.key ?? null, value, headers: op.headers }
  }

  /**
   * A refused renewal is the client's mistake (or an attempt): UNAUTHORIZED, counted
   * against the invalid-frame allowance like any bad frame, and one short log line
   * without a stack (2,000 refusals must not write 2.4 MB of error log).
   */
  async #renew (token: string, id?: string): Promise<void> {
    if (!this.deps.renew) {
      this.invalidFrame(new BadRequestError('in-band token renewal is not offered by this gateway'), id)
      return
    }
    let fresh
    try {
      fresh = await this.deps.renew(this.identity, token)
    } catch (err) {
      const code = wireCode(err)
      if (code === 'INTERNAL') throw err
      this.deps.log.info({ session: this.id, code: (err as { code?: string }).code }, 'in-band renewal refused')
      if (code === 'UNAUTHORIZED') this.invalidFrame(err as Error, id)
      else this.sendError(err, id)
      return
    }
    if (this.closed) return
    this.renewed(fresh)
    this.#send({ op: 'authenticated', id, expiresAt: fresh.expiresAt })
  }

  /** A server frame outside any request (the rate limiter's daily-quota notice). */
  notify (frame: Reply): void {
    this.#send(frame)
  }

  protected sendError (err: unknown, id?: string): void {
    const code = wireCode(err)
    if (code === 'INTERNAL') this.deps.log.error({ err, session: this.id }, 'stream frame failed')
    const reply: Reply = { op: 'error', id, code, message: code === 'INTERNAL' ? 'internal error' : (err as Error).message }
    const retryAfterMs = (err as { retryAfterMs?: number }).retryAfterMs
    if (retryAfterMs !== undefined) reply.retryAfterMs = retryAfterMs
    this.#send(reply)
  }

  #send (reply: Reply): void {
    this.sendText(JSON.stringify(reply))
  }
}
