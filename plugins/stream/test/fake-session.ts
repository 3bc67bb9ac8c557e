// A StreamSession with fakes around it, for unit tests of what the session
// itself decides: the frames it reads, what it asks the hub, the answers it
// sends and their order. The socket, the connection under it, the hub, the
// policy and Kafka are fakes here only; test/stream-*.test.ts run the same
// session against the broker.
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { RawData, WebSocket } from 'ws'
import type { Hub, Positions, StartPosition, SubscriptionTerms, TopicWatcher } from '@sluice/hub'
import type { RecordMetadata } from '@sluice/kafka'
import type { AccessControl, AccessDecision, Action } from '@sluice/policy/access'
import type { Identity } from '@sluice/protocol/identity'
import { SessionRegistry, type SessionDeps, type SessionLimits } from '@sluice/sessions'
import { StreamSession, type SessionStart } from '../src/session.ts'

/** The WebSocket as the session uses it: what it sends, whether it is paused, and the frames a test makes arrive. */
export class FakeSocket extends EventEmitter {
  readonly OPEN = 1
  readyState = 1
  isPaused = false
  readonly sent: Array<Record<string, unknown>> = []
  closedWith: { code: number, reason: string } | undefined
  pauses = 0

  send (text: string): void { this.sent.push(JSON.parse(text) as Record<string, unknown>) }
  pause (): void { this.isPaused = true; this.pauses++ }
  resume (): void { this.isPaused = false }
  ping (): void {}
  terminate (): void { this.readyState = 3; this.emit('close') }
  close (code: number, reason: string): void {
    this.closedWith = { code, reason }
    this.readyState = 3
    this.emit('close')
  }

  /** a frame from the client, as ws hands it over */
  receive (frame: unknown, isBinary = false): void {
    const data = typeof frame === 'string' ? frame : JSON.stringify(frame)
    this.emit('message', Buffer.from(data) as RawData, isBinary)
  }
}

/** The connection under the socket: the session corks its answers and reads its queue length. */
class FakeConnection extends EventEmitter {
  writableLength = 0
  writableNeedDrain = false
  writable = true
  corks = 0
  cork (): void { this.corks++ }
  uncork (): void {}
  write (_chunk: Buffer, callback?: () => void): boolean { callback?.(); return true }
}

export interface HubCall { topic: string, terms: SubscriptionTerms, from: StartPosition }

/** The hub's side: subscriptions kept per topic, each call recorded, with hooks to make one fail or wait. */
export class FakeHub {
  readonly subscribed = new Map<string, HubCall>()
  readonly calls: HubCall[] = []
  readonly unsubscribed: string[] = []
  topics: string[] = []
  watchers = new Set<TopicWatcher>()
  /** per partition, where a new subscription starts (the hub's answer) */
  start: Positions = new Map([[0, 5n]])
  /** makes the subscribe to this topic throw */
  failOn: { topic: string, error: Error } | undefined

  async subscribe (_outlet: unknown, topic: string, terms: SubscriptionTerms, from: StartPosition = { kind: 'latest' }): Promise<Positions | undefined> {
    const call = { topic, terms, from }
    this.calls.push(call)
    await Promise.resolve()
    if (this.failOn?.topic === topic) throw this.failOn.error
    this.subscribed.set(topic, call)
    return new Map(this.start)
  }

  unsubscribe (_outlet: unknown, topic: string): boolean {
    this.unsubscribed.push(topic)
    return this.subscribed.delete(topic)
  }

  topicsOf (): string[] { return [...this.subscribed.keys()] }
  async topicNames (): Promise<string[]> { return this.topics }
  watchTopics (watcher: TopicWatcher): () => void {
    this.watchers.add(watcher)
    return () => { this.watchers.delete(watcher) }
  }

  remove (): void { this.subscribed.clear() }
  async joinGroup (): Promise<void> {}
}

/** Kafka's produce: each call waits until the test acks or fails it, in whatever order it likes. */
export class FakeKafka {
  readonly pending: Array<{ topic: string, value: Buffer | null, ack: (offset: number) => void, fail: (err: Error) => void }> = []

  produce (topic: string, record: { value: Buffer | null }): Promise<RecordMetadata> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        topic,
        value: record.value,
        ack: offset => resolve({ topic, partition: 0, offset: String(offset) } as RecordMetadata),
        fail: reject
      })
    })
  }
}

/** grants every topic starting with `allowed` (json encoding, text for a topic ending in ".text"; `lagging` for slow clients, product "p", plan "free"); refuses the rest */
export function access (allowed = 'ok.'): AccessControl {
  return {
    authorize (_identity: Identity, _action: Action, topic: string): AccessDecision {
      if (!topic.startsWith(allowed)) return { allowed: false, reason: 'no access rule grants it' }
      return { allowed: true, product: 'p', plan: 'free', encoding: topic.endsWith('.text') ? 'text' : 'json', slowClient: 'lagging' }
    },
    onChange: () => () => {}
  }
}

const LIMITS: SessionLimits = { maxQueueBytes: 256 * 1024, invalidFrameBurst: 3, invalidFramesPerSecond: 0.001, maxInflightPublishes: 4, publishTimeoutMs: 5000, idleTimeoutMs: 60_000 }

export function streamSession (options: { access?: SessionDeps['access'], limits?: Partial<SessionLimits>, start?: Partial<SessionStart> } = {}) {
  const socket = new FakeSocket()
  const raw = new FakeConnection()
  const hub = new FakeHub()
  const kafka = new FakeKafka()
  const deps = {
    hub: hub as unknown as Hub,
    kafka: kafka as unknown as SessionDeps['kafka'],
    access: options.access ?? access(),
    sessions: new SessionRegistry(),
    log: { error () {}, warn () {}, info () {}, debug () {}, child () { return this } } as unknown as SessionDeps['log'],
    limits: { ...LIMITS, ...options.limits }
  } satisfies SessionDeps
  const session = new StreamSession({
    socket: socket as unknown as WebSocket,
    raw: raw as unknown as Duplex,
    identity: { kind: 'dev', subject: 'dev', claims: {} },
    remoteAddress: '127.0.0.1',
    route: '/v1/stream',
    ...options.start
  }, deps)
  return { session, socket, raw, hub, kafka }
}

/** Lets every promise the session chained settle (a few turns of microtasks and one of the event loop). */
export async function settle (): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
}
