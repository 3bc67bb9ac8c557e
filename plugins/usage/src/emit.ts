// Fastify-free: a closed period's usage as CloudEvents (JSON, structured mode)
// on a Kafka topic (`sluice.usage` by default) that billing systems such as
// OpenMeter or Lago read. At least once: a node claims a closed period in
// Redis (a lock that expires), seals it (later flushes count in the open
// period), writes one event per application and product, and marks the period
// done only once Kafka acknowledged them all. A node that dies in between
// leaves the lock to expire and another node (or itself, restarted) writes the
// same events again, with the same ids: the event id is the idempotency key
// billing systems deduplicate on (CloudEvents: source + id are unique).
import type { OutgoingRecord } from '@sluice/kafka'
import type { Logger } from '@sluice/protocol/logger'
import { addTo, emptyTotals, type UsageStore, type UsageTotals } from './store.ts'

export const EVENT_TYPE = 'io.sluice.usage.v1'
export const EVENT_SOURCE = 'sluice/usage'
// periods emitted per check: a node back after a long Kafka outage catches up over several checks
const PERIODS_PER_CHECK = 24
const EVENTS_PER_REQUEST = 1000

export interface UsageEventData extends UsageTotals {
  application: string
  product: string
  /** ISO 8601, the period's start (inclusive) and end (exclusive) */
  periodStart: string
  periodEnd: string
}

export interface UsageEvent {
  specversion: '1.0'
  id: string
  source: string
  type: string
  subject: string
  time: string
  datacontenttype: 'application/json'
  data: UsageEventData
}

/** The idempotency key of an application's usage of a product in a period: the same every time it is written. */
export function eventId (periodStart: number, application: string, product: string): string {
  return `${new Date(periodStart).toISOString()}/${encodeURIComponent(application)}/${encodeURIComponent(product)}`
}

export interface EmitterOptions {
  store: UsageStore
  kafka: { produceBatch (topic: string, records: OutgoingRecord[]): Promise<void>, ensureTopics? (topics: Array<{ topic: string, partitions: number }>): Promise<void> }
  topic: string
  periodMs: number
  /** a period is emitted this long after it closed: every live node has flushed it by then */
  graceMs: number
  /** how long a claim holds: past it, another node takes the period over */
  lockMs: number
  node: string
  log: Logger
}

export class UsageEmitter {
  readonly #o: EmitterOptions
  /** events written, for /metrics and tests */
  events = 0
  periods = 0
  /** the topic was created (or found) once: asked before the first write, not at boot (most nodes never emit) */
  #topicReady = false

  constructor (options: EmitterOptions) {
    this.#o = options
  }

  /** Emits every closed period whose grace has passed and no other node holds; returns how many it emitted. */
  async check (now: number): Promise<number> {
    const o = this.#o
    const due = await o.store.duePeriods(now - o.periodMs - o.graceMs, PERIODS_PER_CHECK)
    let emitted = 0
    for (const start of due) {
      if (!await o.store.claim(start, o.node, o.lockMs)) continue
      try {
        await this.#emit(start)
        await o.store.emitted(start)
        emitted++
      } catch (err) {
        o.log.warn({ err, period: new Date(start).toISOString() }, 'usage events not written; the period is tried again')
        await o.store.unclaim(start, o.node).catch(() => {})
      }
    }
    return emitted
  }

  async #emit (start: number): Promise<void> {
    const o = this.#o
    const lines = await o.store.period(start)
    const periodStart = new Date(start).toISOString()
    const periodEnd = new Date(start + o.periodMs).toISOString()
    const records: OutgoingRecord[] = []
    for (const line of lines.values()) {
      const totals = emptyTotals()
      for (const [metric, amount] of Object.entries(line.amounts)) addTo(totals, metric, amount)
      const { connectionMs: _ms, ...counts } = totals as UsageTotals & { connectionMs?: number }
      const event: UsageEvent = {
        specversion: '1.0',
        id: eventId(start, line.application, line.product),
        source: EVENT_SOURCE,
        type: EVENT_TYPE,
        subject: line.application,
        time: periodEnd,
        datacontenttype: 'application/json',
        data: { application: line.application, product: line.product, periodStart, periodEnd, ...counts }
      }
      records.push({
        // one application's events in one partition, in period order
        key: line.application,
        value: JSON.stringify(event),
        headers: { 'content-type': 'application/cloudevents+json', 'idempotency-key': event.id }
      })
    }
    if (!this.#topicReady && o.kafka.ensureTopics) {
      // one partition: a billing consumer reads the periods in order; created if absent (a broker that
      // auto-creates topics would make it with its own defaults)
      await o.kafka.ensureTopics([{ topic: o.topic, partitions: 1 }])
      this.#topicReady = true
    }
    // in slices: one produce request stays well under Kafka's default 1 MiB message batch (~300 bytes an event)
    for (let i = 0; i < records.length; i += EVENTS_PER_REQUEST) await o.kafka.produceBatch(o.topic, records.slice(i, i + EVENTS_PER_REQUEST))
    this.events += records.length
    this.periods++
    o.log.info({ period: periodStart, events: records.length, topic: o.topic }, 'usage events written')
  }
}
