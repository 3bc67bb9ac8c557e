// One client socket of /v1/stream: reads its frames, answers them, and is the
// hub's outlet for it. Everything the client sends is checked again here
// (shape, ACL per topic) even though the upgrade was already authorized. What
// every route's socket shares (outlet, registry, close, keepalive, flood
// limit, publish backpressure) is in socket-session.ts.
import type { RawData } from 'ws'
import type { AccessDecision } from '@sluice/policy/access'
import { nativeFormat, parseCursor, type FrameFormat, type StartPosition } from '@sluice/hub'
import { parseClientFrame, valueBytes, type PublishOp, type SubscribeOp } from './protocol.ts'
import { BadRequestError, ForbiddenTopicError, GroupModeError, RateLimitedError, wireCode } from './errors.ts'
import { SETTLED, SocketSession, type SessionDeps, type SessionStart as SocketStart } from './socket-session.ts'

export type { SessionLimits, StreamGuard, DeliveryBudget, SessionDeps } from './socket-session.ts'

export interface SessionStart extends SocketStart {
  /** group mode: the Kafka consumer group this socket joins */
  groupId?: string
}

type Reply = Record<string, unknown>

export class StreamSession extends SocketSession {
  #publishes: Promise<void> = SETTLED
  #queuedPublishes = 0
  readonly format: FrameFormat = nativeFormat
  readonly #groupId: string | undefined

  constructor (start: SessionStart, deps: SessionDeps) {
    super(start, deps)
    this.#groupId = start.groupId
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
    return !this.groupMode && quietMs > this.deps.limits.idleTimeoutMs && this.topics().length === 0
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

  protected onFrame (data: RawData, isBinary: boolean): void {
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
        this.#subscribe(op).catch(err => this.sendError(err, op.id))
        break
      case 'unsubscribe': {
        const topics = op.topics.filter(topic => this.deps.hub.unsubscribe(this, topic))
        this.#send({ op: 'unsubscribed', id: op.id, topics })
        break
      }
      case 'publish':
        this.#enqueuePublish(op)
        break
      case 'auth':
        this.#renew(op.token, op.id).catch(err => this.sendError(err, op.id))
        break
    }
  }

  #authorize (action: 'subscribe' | 'publish', topic: string): AccessDecision {
    return this.deps.access.authorize(this.identity, action, topic)
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
        await this.deps.hub.subscribe(this, topic, { encoding: decision.encoding, slowClient: decision.slowClient, product: decision.product }, from)
        this.usedProduct(decision.product)
        done.push(topic)
      }
    } catch (err) {
      // all or nothing: a frame that fails leaves no partial subscription behind
      for (const topic of done) this.deps.hub.unsubscribe(this, topic)
      throw err
    }
    this.#send({ op: 'subscribed', id: op.id, topics: op.topics })
  }

  async #joinGroup (topics: string[], decisions: Map<string, AccessDecision>): Promise<void> {
    const first = decisions.get(topics[0]!)
    if (!first?.allowed) throw new ForbiddenTopicError('subscribe to', topics[0] ?? '?', 'no decision')
    this.usedProduct(first.product)
    await this.deps.hub.joinGroup(this, this.#groupId!, topics, { encoding: first.encoding, slowClient: first.slowClient, product: first.product })
    this.#send({ op: 'subscribed', topics, group: true })
  }

  /**
   * Publishes run one after another, in the order the frames came: concurrent
   * sends through kafkajs's shared producer can land out of order (seen: the
   * last two of 200 swapped), and a client reads its acks' offsets as order.
   * Past maxInflightPublishes waiting, the socket is not read until half drained.
   */
  #enqueuePublish (op: PublishOp): void {
    const limit = this.deps.limits.maxInflightPublishes
    this.#queuedPublishes++
    if (this.#queuedPublishes >= limit && !this.socket.isPaused) this.socket.pause()
    this.#publishes = this.#publishes.then(() => this.#publish(op)).catch(err => {
      this.deps.publishes?.failed(wireCode(err))
      this.sendError(err, op.id)
    }).finally(() => {
      this.#queuedPublishes--
      if (this.socket.isPaused && this.#queuedPublishes < limit / 2) this.socket.resume()
    })
  }

  async #publish (op: PublishOp): Promise<void> {
    const decision = this.#authorize('publish', op.topic)
    if (!decision.allowed) throw new ForbiddenTopicError('publish to', op.topic, decision.reason)
    this.usedProduct(decision.product)
    const value = valueBytes(op.value, decision.encoding)
    if (value instanceof Error) throw value
    const limited = await this.publishLimited(decision)
    if (limited) throw Object.assign(new RateLimitedError(), { retryAfterMs: limited.retryAfterMs })
    const ack = await this.produce(op.topic, { key: op.key ?? null, value, headers: op.headers })
    this.deps.publishes?.acked()
    this.#send({ op: 'ack', id: op.id, topic: ack.topic, partition: ack.partition, offset: ack.offset })
  }

  async #renew (token: string, id?: string): Promise<void> {
    if (!this.deps.renew) throw new BadRequestError('in-band token renewal is not offered by this gateway')
    const fresh = await this.deps.renew(this.identity, token)
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
