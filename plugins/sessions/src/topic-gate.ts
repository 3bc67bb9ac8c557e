// The checks every WebSocket route runs on the topics a client names in its
// upgrade request, before the upgrade (docs/design.md: a rejected client never
// holds a socket): a bounded list of valid names, the ACL per topic (403),
// then that each topic exists (404; 503 when Kafka cannot say and gave no list
// in the last minute). A refusal is
// returned, not thrown, and each route writes it in its own body.
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl, AccessDecision } from '@sluice/policy/access'
import type { KafkaClient } from '@sluice/kafka'
import { isTopicName } from '@sluice/protocol/topics'
import type { WireErrorCode } from '@sluice/protocol/codes'

export interface Refusal {
  status: number
  code: WireErrorCode
  message: string
  /** the topic Kafka does not have, for UNKNOWN_TOPIC */
  topic?: string
  /** seconds, for a Retry-After header */
  retryAfter?: number
}

export type AllowedDecision = AccessDecision & { allowed: true }

// the topic list is asked of Kafka at most this often for upgrade checks
const TOPIC_CACHE_MS = 2000
// an upgrade waits at most this long for the topic list
const LIST_TOPICS_TIMEOUT_MS = 2000
// When Kafka cannot list its topics, the last list it gave serves for this long. A partition
// leader killed makes the metadata request fail whenever it goes to that broker, for the whole
// failover (Kafka's broker.session.timeout.ms, 9 s, then the election: 8.0-12.7 s from the kill
// on the three-node suite), and a refusal then would send a whole drained node's clients into
// backoff for a topic that exists. A minute covers a failover several times over; a topic deleted
// within it passes this check and is refused by the hub's reader when it subscribes.
const STALE_TOPICS_MS = 60_000

// A subscribe names what one screen or one service follows; 100 topics is far
// beyond that and keeps one frame's work (ACL checks, consumers) bounded.
export const MAX_TOPICS_PER_FRAME = 100

export function isRefusal (value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && 'status' in value && 'code' in value
}

/** The names of a `topics` parameter, split already: empty names dropped, duplicates removed, at most MAX_TOPICS_PER_FRAME, each a topic name. */
export function topicList (names: string[]): string[] | Refusal {
  const topics = [...new Set(names.filter(Boolean))]
  if (topics.length > MAX_TOPICS_PER_FRAME) return { status: 400, code: 'BAD_REQUEST', message: `at most ${MAX_TOPICS_PER_FRAME} topics` }
  const badTopic = topics.find((t): boolean => !isTopicName(t))
  if (badTopic !== undefined) return { status: 400, code: 'BAD_REQUEST', message: `"${badTopic.slice(0, 64)}" is not a topic name` }
  return topics
}

export class TopicGate {
  readonly #kafka: KafkaClient
  readonly #access: AccessControl
  #cache: { at: number, topics: Promise<Set<string>> } | undefined
  /** the last list Kafka gave, and when: what an upgrade is checked against while Kafka cannot answer */
  #lastKnown: { at: number, topics: Set<string> } | undefined
  readonly #now: () => number

  constructor (kafka: KafkaClient, access: AccessControl, now: () => number = Date.now) {
    this.#kafka = kafka
    this.#access = access
    this.#now = now
  }

  #known (): Promise<Set<string>> {
    const now = this.#now()
    if (!this.#cache || now - this.#cache.at > TOPIC_CACHE_MS) {
      const topics = this.#kafka.listTopics(LIST_TOPICS_TIMEOUT_MS).then(list => {
        const known = new Set(list)
        this.#lastKnown = { at: now, topics: known }
        return known
      }, err => {
        if (this.#cache?.topics === topics) this.#cache = undefined
        const last = this.#lastKnown
        if (last && this.#now() - last.at <= STALE_TOPICS_MS) return last.topics
        throw err
      })
      this.#cache = { at: now, topics }
    }
    return this.#cache.topics
  }

  /** The decision per topic, or why the upgrade is refused: the ACL first (403), then existence (404, 503). */
  async check (identity: Identity, topics: string[]): Promise<Map<string, AllowedDecision> | Refusal> {
    const decisions = new Map<string, AllowedDecision>()
    for (const topic of topics) {
      const decision = this.#access.authorize(identity, 'subscribe', topic)
      if (!decision.allowed) return { status: 403, code: 'FORBIDDEN', message: `not allowed to subscribe to "${topic}": ${decision.reason}` }
      decisions.set(topic, decision)
    }
    if (topics.length > 0) {
      let known: Set<string>
      try {
        known = await this.#known()
      } catch {
        return { status: 503, code: 'UNAVAILABLE', message: 'Kafka is unavailable; try again', retryAfter: 5 }
      }
      const missing = topics.find(t => !known.has(t))
      if (missing !== undefined) return { status: 404, code: 'UNKNOWN_TOPIC', message: `topic "${missing}" does not exist`, topic: missing }
    }
    return decisions
  }
}
