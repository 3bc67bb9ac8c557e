// One client socket of /v1/stream: reads its frames, answers them, and is the
// hub's outlet for it. Everything the client sends is checked again here
// (shape, ACL per topic) even though the upgrade was already authorized. What
// every route's socket shares (outlet, registry, close, keepalive, flood
// limit, publish backpressure) is @sluice/sessions' SocketSession.
import type { RawData } from 'ws'
import type { AccessDecision } from '@sluice/policy/access'
import type { OutgoingRecord, RecordMetadata } from '@sluice/kafka'
import { formatCursor, nativeFormat, parseCursor, type Cursor, type FrameFormat, type Positions, type StartPosition } from '@sluice/hub'
import { compileClientPattern, isTopicPattern, parseClientFrame, valueBytes, type PublishOp, type SubscribeOp } from './protocol.ts'
import { BadRequestError, ForbiddenTopicError, GroupModeError, RateLimitedError, wireCode } from './errors.ts'
import { CLOSE, holdWrites, SocketSession, type SessionDeps, type SessionStart as SocketStart } from '@sluice/sessions'

export interface SessionStart extends SocketStart {
  /** group mode: the Kafka consumer group this socket joins */
  groupId?: string
}

type Reply = Record<string, unknown>

// where a publish is: its check runs; checked, waiting for its turn to Kafka; handed to Kafka; its answer known
const CHECKING = 0
const CHECKED = 1
const WRITING = 2
const ANSWERED = 3

interface QueuedPublish {
  id: string | undefined
  topic: string
  state: typeof CHECKING | typeof CHECKED | typeof WRITING | typeof ANSWERED
  /** the record, from its check until it is handed to Kafka */
  record: OutgoingRecord | undefined
  ack: RecordMetadata | undefined
  /** why it was refused or failed */
  error: unknown
}

/** An ack as JSON.stringify({ op, id, topic, partition, offset }) wrote it: a topic name and an offset's digits need no escaping. */
function ackFrame (id: string | undefined, topic: string, partition: number, offset: string): string {
  return `{"op":"ack",${id === undefined ? '' : `"id":${JSON.stringify(id)},`}"topic":"${topic}","partition":${partition},"offset":"${offset}"}`
}

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
  /** publishes read and not yet answered, in frame order (#answerAt: the first unanswered; #produceAt: the next to hand to Kafka) */
  #queue: QueuedPublish[] = []
  #answerAt = 0
  #produceAt = 0
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

  gone (topic: string, partition: number, from: bigint, to: bigint): void {
    this.#send({ op: 'gap', topic, partition, from: from.toString(), to: to.toString() })
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

  /**
   * Subscribes to topics named at open (query string), as a subscribe frame would. `cursor` is
   * `from` as the upgrade's check parsed it, so that it is not parsed twice.
   */
  async open (topics: string[], from: string | undefined, decisions: Map<string, AccessDecision>, cursor?: Cursor): Promise<void> {
    if (this.#groupId !== undefined) {
      await this.#joinGroup(topics, decisions, from === 'earliest' ? 'earliest' : 'latest')
      return
    }
    if (topics.length > 0) await this.#subscribe({ op: 'subscribe', topics, from }, cursor)
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

  async #subscribe (op: SubscribeOp, parsed?: Cursor): Promise<void> {
    if (this.#groupId !== undefined) throw new GroupModeError()
    // parsed once, for the patterns and the names alike (at open, the upgrade's check parsed it already)
    const cursor = parsed ?? (op.from !== undefined && op.from !== 'latest' && op.from !== 'earliest' ? parseCursor(op.from) : undefined)
    const patterns = op.topics.filter(isTopicPattern)
    if (patterns.length > 0) {
      await this.#subscribePatterns(op, patterns, cursor)
      if (patterns.length === op.topics.length) return
      op = { ...op, topics: op.topics.filter(topic => !isTopicPattern(topic)) }
    }
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
    // client can resume exactly, even on partitions it has not heard from yet. The replay from the
    // window, scheduled by hub.subscribe for the next check phase, leaves in the same write
    if (!this.closed) holdWrites(this.raw)
    this.#send({ op: 'subscribed', id: op.id, topics: op.topics, cursor: formatCursor(starts) })
  }

  /**
   * Subscribes to every topic a pattern matches now that the identity may
   * read, and keeps watching: a topic created later that matches is
   * subscribed from its first record (announced with `subscribed` and the
   * pattern). Topics the policy does not grant are skipped, not refused: a
   * pattern is a wish, each topic is authorized on its own.
   */
  async #subscribePatterns (op: SubscribeOp, patterns: string[], cursor: Cursor | undefined): Promise<void> {
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

  /** `start`: where the group starts on a partition it has no committed offset for */
  async #joinGroup (topics: string[], decisions: Map<string, AccessDecision>, start: 'earliest' | 'latest'): Promise<void> {
    const first = decisions.get(topics[0]!)
    if (!first?.allowed) throw new ForbiddenTopicError('subscribe to', topics[0] ?? '?', 'no decision')
    this.usedProduct(first.product)
    await this.deps.hub.joinGroup(this, this.#groupId!, topics, { encoding: first.encoding, slowClient: first.slowClient, product: first.product }, start)
    this.#send({ op: 'subscribed', topics, group: true })
  }

  /**
   * A socket's publishes are pipelined: each frame is checked as it comes
   * (ACL, value, the plan's rate limit, which may be a Redis round trip),
   * concurrently with the frames before it, and its record is handed to the
   * node's publish batcher in the order the frames came, which writes each
   * partition's records in the order handed in; the answers (ack or error) go
   * out in frame order too, so a client still reads its acks' offsets as
   * order. Nothing waits for an ack before the next record goes. Past
   * maxInflightPublishes read and unanswered, the socket is not read until
   * half of them are answered.
   *
   * One queue entry per publish and two cursors over the queue (the next to
   * hand to Kafka, the next to answer) instead of chained promises: the chains
   * (inOrder's turn, a chain of answers, the check's and produce's async
   * functions) made ~15 promises per publish, whose reactions (runMicrotasks)
   * were ~8 % of the gateway's busy CPU at the maximum of bench/publish.ts.
   * Now a publish makes the rate limit's promise (none without limits) and
   * the produce's.
   */
  #enqueuePublish (op: PublishOp): void {
    this.#queuedPublishes++
    if (this.#queuedPublishes >= this.deps.limits.maxInflightPublishes && !this.socket.isPaused) this.socket.pause()
    const entry: QueuedPublish = { id: op.id, topic: op.topic, state: CHECKING, record: undefined, ack: undefined, error: undefined }
    this.#queue.push(entry)
    let limited: Promise<{ retryAfterMs: number } | undefined> | undefined
    try {
      const decision = this.#authorize('publish', op.topic)
      if (!decision.allowed) throw new ForbiddenTopicError('publish to', op.topic, decision.reason)
      this.usedProduct(decision.product)
      const value = valueBytes(op.value, decision.encoding)
      if (value instanceof Error) throw value
      entry.record = { key: op.key ?? null, value, headers: op.headers }
      limited = this.publishLimit(decision)
    } catch (err) {
      this.#checked(entry, err)
      return
    }
    if (limited === undefined) this.#checked(entry, undefined)
    else {
      limited.then(refused => {
        this.#checked(entry, refused ? Object.assign(new RateLimitedError(), { retryAfterMs: refused.retryAfterMs }) : undefined)
      }, err => { this.#checked(entry, err) })
    }
  }

  /** `entry`'s check is done (`error`: it is refused); the checked publishes at the front go to Kafka, in frame order. */
  #checked (entry: QueuedPublish, error: unknown): void {
    if (error !== undefined) {
      entry.state = ANSWERED
      entry.error = error
      entry.record = undefined
    } else entry.state = CHECKED
    const queue = this.#queue
    while (this.#produceAt < queue.length) {
      const next = queue[this.#produceAt]!
      if (next.state === CHECKING) break
      this.#produceAt++
      if (next.state !== CHECKED) continue
      next.state = WRITING
      const record = next.record!
      next.record = undefined
      // timed out by the node's publish batcher, one timer for all publishes (SocketSession.produce says why)
      this.deps.kafka.produce(next.topic, record, { timeoutMs: this.deps.limits.publishTimeoutMs }).then(ack => {
        next.ack = ack
        next.state = ANSWERED
        this.#answerReady()
      }, err => {
        next.error = err
        next.state = ANSWERED
        this.#answerReady()
      })
    }
    if (error !== undefined) this.#answerReady()
  }

  /** Answers the publishes at the front of the queue that have their outcome, in frame order. */
  #answerReady (): void {
    let queue = this.#queue
    let head = this.#answerAt
    if (head >= queue.length || queue[head]!.state !== ANSWERED) return
    this.#corkAnswers()
    while (head < queue.length && queue[head]!.state === ANSWERED) {
      const entry = queue[head++]!
      this.#queuedPublishes--
      try {
        if (entry.error === undefined) {
          const ack = entry.ack!
          this.publishAcked()
          this.sendText(ackFrame(entry.id, ack.topic, ack.partition, ack.offset))
        } else {
          this.publishFailed(wireCode(entry.error))
          this.sendError(entry.error, entry.id)
        }
      } catch (err) {
        // an answer that cannot be written: the socket's state is unknown (the per-frame boundary does the same)
        this.deps.log.error({ err, session: this.id }, 'could not answer a publish')
        this.close(CLOSE.INTERNAL, 'internal error')
      }
    }
    // the answered front goes once it is most of the array: the queue holds about what is unanswered
    if (head === queue.length) {
      queue.length = 0
      this.#produceAt = 0
      head = 0
    } else if (head >= 1024 && head * 2 >= queue.length) {
      queue = this.#queue = queue.slice(head)
      this.#produceAt -= head
      head = 0
    }
    this.#answerAt = head
    if (this.socket.isPaused && this.#queuedPublishes < this.deps.limits.maxInflightPublishes / 2) this.socket.resume()
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
