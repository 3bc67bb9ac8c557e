// One client socket of /v2/broker/: reads kafka-text and kafka-binary frames
// and produces them, and is the hub's outlet for the topics it opened with.
// Every frame is checked again (shape, publish ACL, rate limit) although the
// upgrade was authorized; what every route's socket shares (outlet, registry,
// close, keepalive, invalid-frame flood limit, expiry, publish backpressure)
// comes from SocketSession.
import type { RawData } from 'ws'
import { isTopicName, type FrameFormat, type SubscriptionTerms } from '@sluice/hub'
import { CLOSE, SocketSession, type AllowedDecision, type SessionDeps, type SessionStart } from '@sluice/sessions'
import type { TransformMessage } from '@sluice/policy'
import type { ValueEncoding } from '@sluice/policy/access'
import { asBuffer, errorMessage, parseBinaryFrame, parseTextFrame, valueBytes, type ProduceRequest, type Subprotocol } from './codec.ts'
import { ForbiddenError, frameCode, LaggingError, publishWireCode, RateLimitedError, TransformFailedError } from './errors.ts'
import { compatFormat } from './format.ts'
import { PublishQueue } from './publish-queue.ts'
import type { TransformRunner, TransformRunners } from './transform-runner.ts'

export interface CompatStart extends SessionStart {
  subprotocol: Subprotocol
  /** the topics of the query string, authorized before the upgrade */
  topics: string[]
  decisions: ReadonlyMap<string, AllowedDecision>
  /** group mode: the Kafka consumer group (namespaced per subject) this socket joins */
  groupId?: string
}

export interface CompatDeps extends SessionDeps {
  runners: TransformRunners
  /** metrics: a client frame that could not be read, by code; a record kafka-binary could not frame */
  invalidFrame (code: string): void
  unframeable (): void
}

// records per produce request: a backlog goes out in requests of at most this many (the
// pending limit, 64 by default, is lower: this only bounds a request if that is raised)
const MAX_BATCH = 500

// /v1/stream's wire codes, for notices other plugins send to any session
const NOTICE_CODES: Record<string, string> = {
  RATE_LIMITED: 'SLUICE_COMPAT_RATE_LIMITED',
  FORBIDDEN: 'SLUICE_COMPAT_FORBIDDEN',
  UNAVAILABLE: 'SLUICE_COMPAT_UNAVAILABLE'
}

export class CompatSession extends SocketSession {
  readonly format: FrameFormat
  readonly subprotocol: Subprotocol
  readonly #compat: CompatDeps
  readonly #topics: string[]
  readonly #terms = new Map<string, SubscriptionTerms>()
  readonly #groupId: string | undefined
  readonly #publishes: PublishQueue

  constructor (start: CompatStart, deps: CompatDeps) {
    super(start, deps)
    this.#compat = deps
    this.#publishes = new PublishQueue({
      produceBatch: async (topic, records) => {
        await this.publishTimeout(deps.kafka.produceBatch(topic, records))
        this.publishAcked(records.length)
      },
      failed: (topic, err) => {
        this.publishFailed(publishWireCode(err))
        this.sendError(err, topic)
      },
      maxPending: deps.limits.maxInflightPublishes,
      maxBatch: MAX_BATCH,
      pause: () => this.socket.pause(),
      resume: () => this.socket.resume()
    })
    this.subprotocol = start.subprotocol
    this.#topics = start.topics
    this.#groupId = start.groupId
    const outputs = new Map<string, TransformRunner>()
    const encodings = new Map<string, ValueEncoding>()
    for (const topic of start.topics) {
      const decision = start.decisions.get(topic)!
      this.#terms.set(topic, { encoding: decision.encoding, slowClient: decision.slowClient, product: decision.product })
      this.usedProduct(decision.product)
      encodings.set(topic, decision.encoding)
      const output = decision.transforms?.output
      if (output) outputs.set(topic, deps.runners.get(output, 'output'))
    }
    this.format = compatFormat({ subprotocol: start.subprotocol, outputs, encodings, log: deps.log, unframeable: deps.unframeable })
  }

  get groupMode (): boolean {
    return this.#groupId !== undefined
  }

  /** Subscribes to the topics of the query string: the live feed, or the consumer group. */
  async open (): Promise<void> {
    const topics = this.#topics
    if (topics.length === 0) return
    const hub = this.deps.hub
    if (this.#groupId !== undefined) {
      await hub.joinGroup(this, this.#groupId, topics, this.#terms.get(topics[0]!)!)
      return
    }
    const done: string[] = []
    try {
      for (const topic of topics) {
        await hub.subscribe(this, topic, this.#terms.get(topic)!)
        done.push(topic)
      }
    } catch (err) {
      for (const topic of done) hub.unsubscribe(this, topic)
      throw err
    }
  }

  /** frames read and not yet produced or refused (the protocol has no acks: a drain waits for Kafka's) */
  protected override pendingPublishes (): number {
    return this.#publishes.pending
  }

  topics (): string[] {
    if (this.#groupId !== undefined) return this.closed ? [] : [...this.#topics]
    return this.deps.hub.topicsOf(this)
  }

  /** A policy change withdrew topics: the client hears which; a group member cannot leave part of its group, so it is closed (4003). */
  unsubscribe (topics: string[], _code: string, message: string): void {
    if (this.#groupId !== undefined) {
      const withdrawn = topics.filter(topic => this.#topics.includes(topic))
      if (withdrawn.length === 0) return
      this.#error(new ForbiddenError(message), { topics: withdrawn })
      this.close(CLOSE.ACCESS_WITHDRAWN, message)
      return
    }
    const removed = topics.filter(topic => this.deps.hub.unsubscribe(this, topic))
    if (removed.length > 0) this.#error(new ForbiddenError(message), { topics: removed })
  }

  /**
   * The socket fell behind and lost records of `topic`. An old client cannot
   * resume from a cursor: it is told how many it lost and gets the topic live
   * again (its product said `lagging`, not `evict`).
   */
  lagging (topic: string, dropped: number, _resume: string): void {
    this.#error(new LaggingError(topic, dropped), { topic, dropped })
    const terms = this.#terms.get(topic)
    if (!terms || this.closed || !this.deps.access.authorize(this.identity, 'subscribe', topic).allowed) return
    this.deps.hub.subscribe(this, topic, terms).catch(err => {
      this.deps.log.warn({ err, session: this.id, topic }, 'could not subscribe again after lagging')
      this.sendError(err, topic)
    })
  }

  // ---- client frames ------------------------------------------------------------------

  protected onFrame (data: RawData, isBinary: boolean): void | Promise<unknown> {
    const request = isBinary ? parseBinaryFrame(asBuffer(data)) : parseTextFrame(asBuffer(data).toString('utf8'))
    if (request instanceof Error) {
      this.#compat.invalidFrame((request as Error & { code: string }).code)
      this.invalidFrame(request)
      return
    }
    // checked concurrently, queued for Kafka in the order the frames came in
    this.#publishes.reserve()
    return this.inOrder(this.#prepare(request)).then(message => {
      if (message === null) this.#publishes.cancel()
      else this.#publishes.push(message.topic, { key: message.key, value: message.value, headers: message.headers, timestamp: String(message.timestamp) })
    }, err => {
      this.#publishes.cancel()
      this.publishFailed(publishWireCode(err))
      this.sendError(err, request.topic)
    })
  }

  /** The message to produce for a client's frame (null: discarded by the input transform), or why not. */
  async #prepare (request: ProduceRequest): Promise<TransformMessage | null> {
    const access = this.deps.access
    const decision = access.authorize(this.identity, 'publish', request.topic)
    if (!decision.allowed) throw new ForbiddenError(`not allowed to publish to "${request.topic}": ${decision.reason}`)
    this.usedProduct(decision.product)
    const value = valueBytes(request, decision.encoding)
    if (value instanceof Error) throw value
    // before the transform: a client pays for the work it asks for, discarded or not
    const limited = await this.publishLimited(decision)
    if (limited) throw Object.assign(new RateLimitedError(), { retryAfterMs: limited.retryAfterMs })
    let message: TransformMessage = {
      topic: request.topic,
      key: request.key === null ? null : Buffer.from(request.key, 'utf8'),
      value,
      headers: {},
      timestamp: Date.now()
    }
    const input = decision.transforms?.input
    if (input) {
      const outcome = this.#compat.runners.get(input, 'input').run(message)
      if (!outcome.ok) throw outcome.error
      // discarded on purpose: as in the Java server, the client is not told
      if (outcome.message === null) return null
      message = outcome.message
      if (message.topic !== request.topic) {
        // a transform routes a message, it does not widen access: the client must be allowed the new topic too
        if (!isTopicName(message.topic)) throw new TransformFailedError('input', `it sends the message to "${message.topic.slice(0, 64)}", which is not a topic name`)
        const rerouted = access.authorize(this.identity, 'publish', message.topic)
        if (!rerouted.allowed) throw new ForbiddenError(`not allowed to publish to "${message.topic}", where the input transform sends the message: ${rerouted.reason}`)
      }
    }
    // produced without an acknowledgement: the kafka-websocket protocol has none, and an old client would not expect one
    return message
  }

  /** A server notice outside any request (the rate limiter's daily-quota notice, written for /v1/stream), as an error frame. */
  notify (frame: Record<string, unknown>): void {
    const { op: _op, code, message, ...extra } = frame
    this.sendText(errorMessage(NOTICE_CODES[String(code)] ?? 'SLUICE_COMPAT_INTERNAL', String(message ?? ''), extra))
  }

  protected sendError (err: unknown, topic?: string): void {
    this.#error(err, topic === undefined ? {} : { topic })
  }

  /** An error frame, always text: {"error":{"code":"SLUICE_...","message":"...",...}}. */
  #error (err: unknown, extra: Record<string, unknown>): void {
    let code = frameCode(err)
    let message = (err as Error)?.message ?? String(err)
    if (code === undefined) {
      this.deps.log.error({ err, session: this.id }, 'compat frame failed')
      code = 'SLUICE_COMPAT_INTERNAL'
      message = 'internal error'
    }
    const retryAfterMs = (err as { retryAfterMs?: number })?.retryAfterMs
    this.sendText(errorMessage(code, message, retryAfterMs === undefined ? extra : { ...extra, retryAfterMs }))
  }
}
