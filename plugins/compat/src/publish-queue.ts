// Fastify-free: one socket's produces, in the order its frames came in.
//
// The kafka-websocket protocol has no acknowledgements, so an old client
// writes as fast as it likes and relies on its messages landing in the order
// it sent them (the Java server's KafkaProducer kept that order). Concurrent
// sends through the shared kafkajs producer do not: measured here, with 200
// sends in flight the last two land swapped. So a socket has at most one
// request per topic in flight; what the client sends meanwhile waits and goes
// out in the next request, in order: one round trip per batch, not per message.
//
// Backpressure: a frame counts from the moment it is read (reserve()) until
// its record is acked or refused; past `maxPending` the socket stops being
// read, and it is read again below half of that.
import type { OutgoingRecord } from '@sluice/kafka'

export interface PublishQueueOptions {
  /** one request: every record or none (SLUICE_KAFKA_* errors) */
  produceBatch (topic: string, records: OutgoingRecord[]): Promise<void>
  /** a record Kafka refused, and why: once per record */
  failed (topic: string, err: unknown): void
  /** frames read and not yet acked or refused before the socket stops being read */
  maxPending: number
  /** records per request: bounds a request's size whatever the backlog */
  maxBatch: number
  pause (): void
  resume (): void
}

export class PublishQueue {
  readonly #options: PublishQueueOptions
  readonly #waiting = new Map<string, OutgoingRecord[]>()
  readonly #busy = new Set<string>()
  #pending = 0
  #paused = false

  constructor (options: PublishQueueOptions) {
    this.#options = options
  }

  /** frames read and not yet acked or refused */
  get pending (): number {
    return this.#pending
  }

  /** A frame was read: it counts until push() or cancel(). */
  reserve (): void {
    this.#pending++
    if (this.#pending >= this.#options.maxPending && !this.#paused) {
      this.#paused = true
      this.#options.pause()
    }
  }

  /** The reserved frame produces nothing (refused before Kafka, or discarded by a transform). */
  cancel (): void {
    this.#done(1)
  }

  /** The reserved frame's record, behind the records pushed before it to the same topic. */
  push (topic: string, record: OutgoingRecord): void {
    let list = this.#waiting.get(topic)
    if (!list) {
      list = []
      this.#waiting.set(topic, list)
    }
    list.push(record)
    if (!this.#busy.has(topic)) this.#send(topic)
  }

  async #send (topic: string): Promise<void> {
    this.#busy.add(topic)
    try {
      for (;;) {
        const list = this.#waiting.get(topic)
        if (!list || list.length === 0) break
        const batch = list.splice(0, this.#options.maxBatch)
        if (list.length === 0) this.#waiting.delete(topic)
        try {
          await this.#options.produceBatch(topic, batch)
        } catch (err) {
          if ((err as { code?: string })?.code === 'SLUICE_KAFKA_TOO_LARGE' && batch.length > 1) {
            // one record too large fails its whole request: send them one by one, in order, so only it is refused
            for (const record of batch) await this.#options.produceBatch(topic, [record]).catch(e => this.#options.failed(topic, e))
          } else {
            for (let i = 0; i < batch.length; i++) this.#options.failed(topic, err)
          }
        }
        this.#done(batch.length)
      }
    } finally {
      this.#busy.delete(topic)
    }
  }

  #done (count: number): void {
    this.#pending -= count
    if (this.#paused && this.#pending < this.#options.maxPending / 2) {
      this.#paused = false
      this.#options.resume()
    }
  }
}
