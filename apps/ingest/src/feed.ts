// One feed: a WebSocket client that (re)connects with backoff, sends its
// subscription messages on every open and turns each frame into a record in a
// bounded buffer, which its produce loop (produce-loop.ts) drains into Kafka in
// batches. Fastify-free: the app, the tests and the benchmark drive it directly.
//
// Backpressure (STYLE.md, as ws and Platformatic do it): when Kafka is slower
// than the feed the buffer fills; at half full the socket is paused (if the
// feed allows it), and resumed at a quarter, so the buffer overflows only when
// the feed cannot be paused.
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import type { Logger } from '@sluice/kafka'
import { CLOSE } from '@sluice/protocol/codes'
import { backoffDelay } from './backoff.ts'
import { FeedBuffer } from './buffer.ts'
import { RECORD_OVERHEAD_BYTES, type FeedConfig } from './config.ts'
import {
  FeedConnectTimeoutError,
  FeedConnectionError,
  FeedFrameTooLargeError,
  FeedHandshakeRejectedError,
  FeedReconnectDisabledError,
  FeedReconnectExhaustedError
} from './errors.ts'
import { compilePointer, keyOf, type CompiledPointer } from './json-pointer.ts'
import { ProduceLoop, type FeedRecord, type Producer } from './produce-loop.ts'
import { SequenceTracker } from './sequence.ts'

export interface FeedStats {
  /** frames received from the feed */
  received: number
  /** records Kafka acknowledged */
  produced: number
  /** records discarded because the buffer was full */
  droppedOverflow: number
  /** frames or records discarded as too large (for the frame limit, or for Kafka) */
  droppedTooLarge: number
  /** reconnect attempts scheduled */
  reconnects: number
  /** times reading was paused because Kafka fell behind */
  pauses: number
  /** failed produce requests (each retried) */
  produceErrors: number
  /** records sent without a key because the key pointer found nothing */
  keyMissing: number
  /** text frames that were not JSON although a key or sequence pointer is set */
  unparsable: number
}

export type FeedState = 'idle' | 'connecting' | 'open' | 'backoff' | 'failed' | 'stopped'

export interface FeedOptions {
  config: FeedConfig
  kafka: Producer
  logger: Logger
  /** the jitter's randomness (unit tests pin it) */
  random?: () => number
}

// Pause reading at half the buffer: after pause(), ws still delivers what it
// has already read (up to one 64 KiB socket chunk), which needs headroom; resume
// at a quarter, so that a pause is not undone by the next acknowledged batch.
const PAUSE_AT = 0.5
const RESUME_AT = 0.25
// A feed that does not answer our close frame within 1 s is cut: the shutdown deadline is for Kafka.
const CLOSE_GRACE_MS = 1000

export class Feed extends EventEmitter {
  readonly name: string
  readonly config: FeedConfig
  readonly stats: FeedStats = {
    received: 0,
    produced: 0,
    droppedOverflow: 0,
    droppedTooLarge: 0,
    reconnects: 0,
    pauses: 0,
    produceErrors: 0,
    keyMissing: 0,
    unparsable: 0
  }

  readonly sequence = new SequenceTracker()
  readonly #buffer: FeedBuffer<FeedRecord>
  readonly #producer: ProduceLoop
  readonly #log: Logger
  readonly #random: () => number
  readonly #keyPointer: CompiledPointer | undefined
  readonly #sequencePointer: CompiledPointer | undefined
  readonly #pauseAt: { records: number, bytes: number }
  readonly #resumeAt: { records: number, bytes: number }
  /** host only: a path or query may carry an API key */
  readonly #host: string
  #ws: WebSocket | undefined
  #state: FeedState = 'idle'
  #attempt = 0
  #reconnectTimer: NodeJS.Timeout | undefined
  #paused = false
  #lastMessageAt = 0
  #lastError: Error | undefined
  #stopping = false

  constructor (options: FeedOptions) {
    super()
    this.config = options.config
    this.name = options.config.name
    this.#log = options.logger
    this.#random = options.random ?? Math.random
    const { capacity, maxBytes, overflow } = options.config.buffer
    this.#buffer = new FeedBuffer({ capacity, maxBytes, overflow })
    this.#producer = new ProduceLoop({
      name: this.name,
      config: options.config,
      buffer: this.#buffer,
      kafka: options.kafka,
      logger: this.#log,
      random: this.#random,
      stats: this.stats,
      onBatchDone: () => { this.#maybeResume() },
      onProduced: batch => { if (this.listenerCount('produced') > 0) this.emit('produced', batch) }
    })
    this.#keyPointer = options.config.key ? compilePointer(options.config.key) : undefined
    this.#sequencePointer = options.config.sequence ? compilePointer(options.config.sequence) : undefined
    this.#pauseAt = { records: Math.max(1, Math.ceil(capacity * PAUSE_AT)), bytes: maxBytes * PAUSE_AT }
    this.#resumeAt = { records: Math.floor(capacity * RESUME_AT), bytes: maxBytes * RESUME_AT }
    this.#host = new URL(options.config.url).host
  }

  get state (): FeedState {
    return this.#state
  }

  get connected (): boolean {
    return this.#state === 'open'
  }

  get paused (): boolean {
    return this.#paused
  }

  /** records waiting in the buffer (at most the capacity) */
  get queueSize (): number {
    return this.#buffer.size
  }

  get queueBytes (): number {
    return this.#buffer.bytes
  }

  get queueCapacity (): number {
    return this.#buffer.capacity
  }

  /** records handed to the producer and not yet acknowledged (at most batch.maxRecords) */
  get inFlight (): number {
    return this.#producer.inFlight
  }

  /** -1 until the first message, as the Kafka Connect connector reports it */
  get msSinceLastMessage (): number {
    return this.#lastMessageAt === 0 ? -1 : Date.now() - this.#lastMessageAt
  }

  /** why the last connection attempt or connection ended (SLUICE_INGEST_* codes) */
  get lastError (): Error | undefined {
    return this.#lastError
  }

  /** the last produce failure, until a produce succeeds again */
  get lastProduceError (): Error | undefined {
    return this.#producer.lastError
  }

  start (): void {
    if (this.#state !== 'idle') return
    this.#connect()
  }

  #connect (): void {
    if (this.#stopping) return
    this.#state = 'connecting'
    let ws: WebSocket
    try {
      ws = new WebSocket(this.config.url, {
        headers: this.config.headers,
        handshakeTimeout: this.config.connectTimeoutMs,
        maxPayload: this.config.maxMessageBytes,
        followRedirects: false
      })
    } catch (err) {
      this.#lastError = this.#classify(err as Error)
      this.#log.warn({ feed: this.name, host: this.#host, code: (this.#lastError as { code?: string }).code }, 'feed connection failed')
      this.#scheduleReconnect()
      return
    }
    this.#ws = ws
    ws.on('open', () => this.#onOpen(ws))
    ws.on('message', this.#onMessage)
    ws.on('error', err => {
      this.#lastError = this.#classify(err)
      if ((this.#lastError as { code?: string }).code === 'SLUICE_INGEST_FRAME_TOO_LARGE') this.stats.droppedTooLarge++
      // the error's code and host only: never the URL, headers or token
      this.#log.warn({ feed: this.name, host: this.#host, code: (this.#lastError as { code?: string }).code, reason: this.#lastError.message }, 'feed connection error')
    })
    ws.on('close', (code: number) => this.#onClose(ws, code))
  }

  #onOpen (ws: WebSocket): void {
    if (ws !== this.#ws) return
    this.#state = 'open'
    this.#attempt = 0
    this.#lastError = undefined
    // after every (re)connect, in order: a feed forgets subscriptions with the connection
    for (const message of this.config.subscribe) ws.send(message)
    this.#log.info({ feed: this.name, host: this.#host, subscriptions: this.config.subscribe.length }, 'feed connected')
    this.#maybePause()
    this.emit('open')
  }

  #onClose (ws: WebSocket, code: number): void {
    if (ws !== this.#ws) return
    this.#ws = undefined
    const wasOpen = this.#state === 'open'
    this.#paused = false
    if (this.#stopping) {
      this.#state = 'stopped'
      return
    }
    if (wasOpen) this.#log.warn({ feed: this.name, host: this.#host, closeCode: code }, 'feed disconnected')
    this.emit('close', code)
    this.#scheduleReconnect()
  }

  #scheduleReconnect (): void {
    if (this.#stopping) return
    const { enabled, attempts } = this.config.reconnect
    if (!enabled) {
      this.#fail(new FeedReconnectDisabledError(this.name))
      return
    }
    this.#attempt++
    if (attempts !== -1 && this.#attempt > attempts) {
      this.#fail(new FeedReconnectExhaustedError(this.name, attempts))
      return
    }
    const delayMs = backoffDelay(this.#attempt, this.config.reconnect, this.#random)
    this.stats.reconnects++
    this.#state = 'backoff'
    this.#log.info({ feed: this.name, attempt: this.#attempt, delayMs }, 'feed reconnect scheduled')
    this.emit('backoff', { attempt: this.#attempt, delayMs })
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      this.#connect()
    }, delayMs)
  }

  #fail (err: Error): void {
    this.#state = 'failed'
    this.#lastError = err
    this.#log.error({ feed: this.name, host: this.#host, code: (err as { code?: string }).code }, err.message)
    this.emit('failed', err)
  }

  #classify (err: Error): Error {
    const e = err as Error & { code?: string }
    if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return new FeedFrameTooLargeError(this.name, this.config.maxMessageBytes)
    const rejected = /^Unexpected server response: (\d+)/.exec(e.message)
    if (rejected) return new FeedHandshakeRejectedError(this.name, rejected[1])
    if (e.message === 'Opening handshake has timed out') return new FeedConnectTimeoutError(this.name, this.config.connectTimeoutMs)
    // a system error code (ECONNREFUSED, ENOTFOUND) says enough; a message might quote the URL
    return new FeedConnectionError(this.name, typeof e.code === 'string' ? e.code : e.message.replaceAll(this.config.url, '[feed url]'))
  }

  // binaryType is ws's default 'nodebuffer': every payload, text or binary, is one Buffer
  readonly #onMessage = (data: Buffer, isBinary: boolean): void => {
    const now = Date.now()
    this.stats.received++
    this.#lastMessageAt = now
    let key: string | null = null
    if (this.#keyPointer || this.#sequencePointer) {
      let document: unknown
      let parsed = false
      if (!isBinary) {
        try {
          document = JSON.parse(data.toString('utf8'))
          parsed = true
        } catch {
          this.stats.unparsable++
        }
      }
      if (this.#keyPointer) {
        key = parsed ? keyOf(this.#keyPointer(document)) : null
        if (key === null) this.stats.keyMissing++
      }
      if (this.#sequencePointer) this.sequence.observe(parsed ? this.#sequencePointer(document) : undefined)
    }
    const record: FeedRecord = {
      key,
      value: data,
      timestamp: String(now),
      bytes: data.length + (key === null ? 0 : Buffer.byteLength(key)) + RECORD_OVERHEAD_BYTES,
      receivedAt: performance.now()
    }
    if (record.bytes > this.#buffer.maxBytes) {
      // within maxMessageBytes, but with its key and record overhead larger than the whole buffer
      this.stats.droppedTooLarge++
      const err = new FeedFrameTooLargeError(this.name, this.#buffer.maxBytes)
      this.#log.warn({ feed: this.name, code: err.code, bytes: record.bytes }, err.message)
      return
    }
    const dropped = this.#buffer.push(record)
    if (dropped > 0) this.#onDrop(dropped)
    this.#maybePause()
    this.#producer.kick()
  }

  #onDrop (count: number): void {
    const before = this.stats.droppedOverflow
    this.stats.droppedOverflow += count
    // a line when the total crosses a power of two: visible at once, never a log flood
    if (before === 0 || Math.clz32(before) !== Math.clz32(this.stats.droppedOverflow)) {
      this.#log.warn({
        feed: this.name,
        dropped: this.stats.droppedOverflow,
        policy: this.config.buffer.overflow,
        capacity: this.#buffer.capacity
      }, 'feed buffer full: records dropped')
    }
  }

  #maybePause (): void {
    const ws = this.#ws
    if (!this.config.buffer.pause || this.#paused || !ws || ws.readyState !== WebSocket.OPEN) return
    if (this.#buffer.size < this.#pauseAt.records && this.#buffer.bytes < this.#pauseAt.bytes) return
    ws.pause()
    this.#paused = true
    this.stats.pauses++
    this.#log.debug({ feed: this.name, queued: this.#buffer.size }, 'feed paused: Kafka is behind')
  }

  #maybeResume (): void {
    if (!this.#paused) return
    if (this.#buffer.size > this.#resumeAt.records || this.#buffer.bytes > this.#resumeAt.bytes) return
    this.#paused = false
    this.#ws?.resume()
    this.#log.debug({ feed: this.name, queued: this.#buffer.size }, 'feed resumed')
  }

  /**
   * Stops reading (close 1001), then flushes the buffer to Kafka until it is
   * empty or `deadlineMs` has passed. Resolves with the number of records not
   * acknowledged by then (0 on a clean flush); those are logged, not hidden.
   */
  async stop (deadlineMs: number): Promise<number> {
    const started = Date.now()
    this.#stopping = true
    clearTimeout(this.#reconnectTimer)
    const ws = this.#ws
    if (ws) {
      if (this.#paused || ws.readyState === WebSocket.CONNECTING) {
        // a paused socket cannot read the feed's closing handshake
        ws.terminate()
      } else {
        // 1001 going away (RFC 6455): we are shutting down, not rejecting the feed
        ws.close(CLOSE.GOING_AWAY, 'connector shutting down')
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref()
      }
    }
    if (this.#state !== 'failed') this.#state = 'stopped'
    const unflushed = await this.#producer.flush(deadlineMs, started)
    if (unflushed === 0) this.#log.info({ feed: this.name, received: this.stats.received, produced: this.stats.produced }, 'feed flushed')
    return unflushed
  }
}
