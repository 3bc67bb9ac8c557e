// A feed's produce loop: drains the feed's buffer into Kafka, one batch
// (batch.maxRecords, batch.maxBytes) at a time, retrying a failed batch until
// Kafka acknowledges it or the shutdown deadline passes. It runs while the
// buffer holds records and stops by itself when it is empty; the socket client
// (feed.ts) kicks it on every record it buffers.
import type { KafkaClient, Logger, OutgoingRecord } from '@sluice/kafka'
import { backoffDelay, type BackoffOptions } from './backoff.ts'
import type { FeedBuffer } from './buffer.ts'
import type { FeedConfig } from './config.ts'
import { FlushDeadlineError, RecordTooLargeError } from './errors.ts'

export interface FeedRecord extends OutgoingRecord {
  key: string | null
  /**
   * The frame's payload exactly as it arrived, text or binary. ws hands out
   * views on its socket chunks; buffered records are contiguous runs of
   * frames, so they share those chunks rather than pin one chunk each.
   */
  value: Buffer
  /** arrival time, epoch ms as a decimal string: the Kafka record's timestamp */
  timestamp: string
  /** payload + key + record overhead: what the record weighs in the buffer and in a produce request */
  bytes: number
  /** performance.now() at arrival, for the feed-to-Kafka latency */
  receivedAt: number
}

export type Producer = Pick<KafkaClient, 'produceBatch'>

/** The feed's counters the loop keeps (FeedStats has them all). */
export interface ProduceCounts {
  produced: number
  droppedTooLarge: number
  produceErrors: number
}

export interface ProduceLoopOptions {
  /** the feed's name, in logs and errors */
  name: string
  config: Pick<FeedConfig, 'topic' | 'batch'>
  buffer: FeedBuffer<FeedRecord>
  kafka: Producer
  logger: Logger
  random: () => number
  stats: ProduceCounts
  /** after each batch left the buffer for good (acknowledged, or dropped as too large): the buffer has room again */
  onBatchDone: () => void
  /** a batch Kafka acknowledged */
  onProduced: (batch: FeedRecord[]) => void
}

// Between failed produce requests: kafkajs has already retried inside each one
// (about 1.5 s against a refusing broker); 2 s at most bounds how long the
// buffer waits after Kafka comes back.
const PRODUCE_RETRY: BackoffOptions = { baseMs: 100, maxMs: 2000, jitter: 0.2 }

export class ProduceLoop {
  readonly #name: string
  readonly #config: ProduceLoopOptions['config']
  readonly #buffer: FeedBuffer<FeedRecord>
  readonly #kafka: Producer
  readonly #log: Logger
  readonly #random: () => number
  readonly #stats: ProduceCounts
  readonly #onBatchDone: () => void
  readonly #onProduced: (batch: FeedRecord[]) => void
  #lastError: Error | undefined
  #inFlight: FeedRecord[] = []
  #pumping: Promise<void> | undefined
  /** set when the shutdown deadline passed: the loop stops retrying */
  #abandoned = false
  #wake: (() => void) | undefined

  constructor (options: ProduceLoopOptions) {
    this.#name = options.name
    this.#config = options.config
    this.#buffer = options.buffer
    this.#kafka = options.kafka
    this.#log = options.logger
    this.#random = options.random
    this.#stats = options.stats
    this.#onBatchDone = options.onBatchDone
    this.#onProduced = options.onProduced
  }

  /** records handed to the producer and not yet acknowledged (at most batch.maxRecords) */
  get inFlight (): number {
    return this.#inFlight.length
  }

  /** the last produce failure, until a produce succeeds again */
  get lastError (): Error | undefined {
    return this.#lastError
  }

  /** Starts the loop unless it runs; it stops by itself when the buffer is empty. */
  kick (): void {
    if (this.#pumping || this.#buffer.size === 0 || this.#abandoned) return
    // cleared in a callback, which always runs after this assignment, even when the loop ends at once
    this.#pumping = this.#pump().finally(() => { this.#pumping = undefined })
  }

  async #pump (): Promise<void> {
    while (this.#buffer.size > 0 && !this.#abandoned) {
      const batch = this.#buffer.take(this.#config.batch.maxRecords, this.#config.batch.maxBytes)
      this.#inFlight = batch
      await this.#deliver(batch)
      this.#inFlight = []
      this.#onBatchDone()
    }
  }

  /** Sends one batch, retrying until Kafka acknowledges it or the shutdown deadline passes. */
  async #deliver (batch: FeedRecord[]): Promise<void> {
    let failures = 0
    while (!this.#abandoned) {
      try {
        await this.#kafka.produceBatch(this.#config.topic, batch)
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'SLUICE_KAFKA_TOO_LARGE') {
          await this.#splitTooLarge(batch)
          return
        }
        failures++
        this.#stats.produceErrors++
        this.#lastError = err as Error
        // the first failure, then one line per power of two: an outage is seen, not flooded
        if ((failures & (failures - 1)) === 0) {
          this.#log.warn({ feed: this.#name, topic: this.#config.topic, code, failures, queued: this.#buffer.size + batch.length }, 'produce failed; retrying')
        }
        await this.#sleep(backoffDelay(failures, PRODUCE_RETRY, this.#random))
        continue
      }
      this.#stats.produced += batch.length
      if (failures > 0) this.#log.info({ feed: this.#name, topic: this.#config.topic, failures }, 'produce recovered')
      this.#lastError = undefined
      this.#onProduced(batch)
      return
    }
  }

  /** Kafka refused the batch as too large: halves until the one record that is, which is dropped and counted. */
  async #splitTooLarge (batch: FeedRecord[]): Promise<void> {
    if (batch.length === 1) {
      const err = new RecordTooLargeError(this.#name, batch[0]!.bytes)
      this.#stats.droppedTooLarge++
      this.#log.error({ feed: this.#name, topic: this.#config.topic, code: err.code, bytes: batch[0]!.bytes }, err.message)
      return
    }
    const half = Math.ceil(batch.length / 2)
    await this.#deliver(batch.slice(0, half))
    await this.#deliver(batch.slice(half))
  }

  #sleep (ms: number): Promise<void> {
    return new Promise(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = done
    })
  }

  /**
   * Drains the buffer until it is empty or `deadlineMs` has passed since
   * `started`. Resolves with the number of records not acknowledged by then
   * (0 on a clean flush); those are logged, and the loop stops retrying them.
   */
  async flush (deadlineMs: number, started: number): Promise<number> {
    for (;;) {
      this.kick()
      const pumping = this.#pumping
      if (!pumping) break
      const left = deadlineMs - (Date.now() - started)
      if (left <= 0) break
      let timer: NodeJS.Timeout | undefined
      await Promise.race([pumping, new Promise(resolve => { timer = setTimeout(resolve, left) })])
      clearTimeout(timer)
    }
    const unflushed = this.#buffer.size + this.#inFlight.length
    if (unflushed > 0) {
      this.#abandoned = true
      this.#wake?.()
      const err = new FlushDeadlineError(this.#name, unflushed, deadlineMs)
      this.#log.error({ feed: this.#name, topic: this.#config.topic, code: err.code, unflushed, inFlight: this.#inFlight.length }, err.message)
    }
    return unflushed
  }
}
