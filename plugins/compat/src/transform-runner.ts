// Fastify-free: runs a product's transform modules (loaded by the policy) in
// the hot path, where one bad module must not cost more than its own messages.
//
// - A throw, or a result that is not a message, costs that one message: it is
//   skipped, counted and logged (at most one log line per module per 10 s).
// - Time: a transform is synchronous JS on the event loop, so a call cannot be
//   interrupted; it is measured and bounded by what follows from running over.
//   What counts is the CPU the call spent on the event loop's thread
//   (process.threadCpuUsage), not the clock: on a busy machine the process is
//   descheduled mid-call and a 50 us call reads 10-30 ms on the clock (the
//   clean-clone suite at load average 12 lost a record to that: test/
//   compat-transforms.test.ts). A call that blocks without spending CPU
//   (synchronous I/O, Atomics.wait) is caught by the clock at WALL_LIMIT_MS.
//   A call over its budget (5 ms) counts as failed:
//   the message is skipped, exactly as if it had thrown, so there is one rule
//   for every failure and a slow module shows in the drop counters at once.
//   A module over its budget 10 times within a minute is disabled for a
//   minute: its messages are skipped without calling it (fail closed: a
//   transform may be the filter that keeps data from clients, so passing
//   messages through untransformed is not an option), then it is tried again.
//   A process stalled by one slow module thus loses at most ~10 budgets of
//   time a minute to it, plus whatever its one worst call takes.
// - Output transforms run once per record per module, whatever the number of
//   sockets and formats (the result is kept with the record, which the hub
//   shares between them), and get copies of the record's buffers: a module
//   that writes into them cannot change what /v1/stream clients receive.
import { performance } from 'node:perf_hooks'
import type { ConsumedRecord, Logger } from '@sluice/kafka'
import type { LoadedTransform, TransformDirection, TransformMessage } from '@sluice/policy'
import { TransformDisabledError, TransformFailedError, TransformSlowError } from './errors.ts'

export interface TransformLimits {
  /** a call that takes longer than this fails */
  budgetMs: number
  /** this many failed-for-time calls within `overrunWindowMs` disable the module */
  maxOverruns: number
  overrunWindowMs: number
  /** how long a disabled module stays disabled before it is tried again */
  disabledMs: number
}

export const DEFAULT_TRANSFORM_LIMITS: TransformLimits = {
  // a transform parses and rewrites one small record: tens of microseconds. 5 ms is a hundred
  // times that and still a hard ceiling: a loop spending 5 ms a message serves 200 messages a second
  budgetMs: 5,
  // a GC pause or a descheduled process can push one call over; ten in a minute is a slow module
  maxOverruns: 10,
  overrunWindowMs: 60_000,
  // long enough that a disabled module costs nothing for a while, short enough to recover without an admin
  disabledMs: 60_000
}

// A call blocked this long on the clock fails whatever its CPU: longer than any descheduling seen
// on this 2-core machine at load 13 (/healthz took 413-476 ms there), short enough to catch a
// module that waits on I/O or a lock
const WALL_LIMIT_MS = 1000

/** Milliseconds of CPU the calling thread has spent, or the clock where Node cannot tell (before 22.19 / 23.9). */
const threadCpuMs: () => number = typeof process.threadCpuUsage === 'function'
  ? () => {
      const { user, system } = process.threadCpuUsage()
      return (user + system) / 1000
    }
  : () => performance.now()

// a module failing on every message must not write a log line per message
const LOG_INTERVAL_MS = 10_000

export type FailureReason = 'threw' | 'invalid' | 'slow' | 'disabled'

export interface TransformReport {
  failure (direction: TransformDirection, reason: FailureReason): void
  discard (direction: TransformDirection): void
}

export type Outcome = { ok: true, message: TransformMessage | null } | { ok: false, error: Error }

function bytes (value: unknown): Buffer | null | undefined {
  if (value === null || value === undefined) return null
  if (Buffer.isBuffer(value)) return value
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  return undefined
}

/** A module's result as a message, or what is wrong with it. Strings become UTF-8 bytes. */
export function checkResult (result: unknown): TransformMessage | string {
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return 'it returned neither a message nor null'
  const r = result as Record<string, unknown>
  if (typeof r.topic !== 'string' || r.topic.length === 0) return 'the message it returned has no topic'
  const key = bytes(r.key)
  if (key === undefined) return '"key" must be a Buffer, a string or null'
  const value = bytes(r.value)
  if (value === undefined) return '"value" must be a Buffer, a string or null'
  const headers: Record<string, Buffer> = {}
  if (r.headers !== undefined && r.headers !== null) {
    if (typeof r.headers !== 'object' || Array.isArray(r.headers)) return '"headers" must be an object'
    for (const [name, raw] of Object.entries(r.headers)) {
      const header = bytes(raw)
      if (!header) return `header "${name.slice(0, 64)}" must be a Buffer or a string`
      headers[name] = header
    }
  }
  const timestamp = r.timestamp ?? Date.now()
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) return '"timestamp" must be ms since the epoch'
  return { topic: r.topic, key, value, headers, timestamp }
}

/** A record as a transform sees it: copies of its bytes. */
export function recordMessage (record: ConsumedRecord): TransformMessage {
  const headers: Record<string, Buffer> = {}
  for (const [name, value] of Object.entries(record.headers)) headers[name] = Buffer.from(value)
  return {
    topic: record.topic,
    key: record.key === null ? null : Buffer.from(record.key),
    value: record.value === null ? null : Buffer.from(record.value),
    headers,
    timestamp: Number(record.timestamp)
  }
}

export class TransformRunner {
  readonly transform: LoadedTransform
  readonly direction: TransformDirection
  readonly #limits: TransformLimits
  readonly #log: Logger
  readonly #report: TransformReport
  readonly #results = new WeakMap<ConsumedRecord, TransformMessage | null>()
  #overruns: number[] = []
  #disabledUntil = 0
  #loggedAt = 0
  #unlogged = 0

  constructor (transform: LoadedTransform, direction: TransformDirection, limits: TransformLimits, log: Logger, report: TransformReport) {
    this.transform = transform
    this.direction = direction
    this.#limits = limits
    this.#log = log
    this.#report = report
  }

  get id (): string {
    return this.transform.id
  }

  get disabled (): boolean {
    return this.#disabledUntil > Date.now()
  }

  /** Runs the module on one message: the message to use, null to discard it, or why it is skipped. */
  run (message: TransformMessage): Outcome {
    const now = Date.now()
    if (this.#disabledUntil !== 0) {
      if (this.#disabledUntil > now) return this.#fail('disabled', new TransformDisabledError(this.direction, Math.ceil((this.#disabledUntil - now) / 1000)))
      this.#disabledUntil = 0
      this.#log.warn({ transform: this.transform.file, direction: this.direction }, 'transform enabled again after being disabled; trying it')
    }
    let result: unknown
    const started = performance.now()
    const startedCpu = threadCpuMs()
    try {
      result = this.transform.fn(message)
    } catch (err) {
      return this.#fail('threw', new TransformFailedError(this.direction, String((err as Error)?.message ?? err).slice(0, 200)), err)
    }
    const cpu = threadCpuMs() - startedCpu
    const wall = performance.now() - started
    if (cpu > this.#limits.budgetMs || wall > WALL_LIMIT_MS) {
      const elapsed = Math.max(cpu, wall > WALL_LIMIT_MS ? wall : 0)
      this.#overrun(now)
      return this.#fail('slow', new TransformSlowError(this.direction, elapsed.toFixed(1), this.#limits.budgetMs))
    }
    if (result === undefined) result = message
    if (result === null) {
      this.#report.discard(this.direction)
      return { ok: true, message: null }
    }
    const checked = checkResult(result)
    if (typeof checked === 'string') return this.#fail('invalid', new TransformFailedError(this.direction, checked))
    return { ok: true, message: checked }
  }

  /** The output side: a record's transformed message, or null when it is discarded or the transform failed; once per record. */
  output (record: ConsumedRecord): TransformMessage | null {
    const known = this.#results.get(record)
    if (known !== undefined) return known
    const outcome = this.run(recordMessage(record))
    const message = outcome.ok ? outcome.message : null
    this.#results.set(record, message)
    return message
  }

  #overrun (now: number): void {
    const since = now - this.#limits.overrunWindowMs
    this.#overruns = this.#overruns.filter(at => at > since)
    this.#overruns.push(now)
    if (this.#overruns.length < this.#limits.maxOverruns) return
    this.#overruns = []
    this.#disabledUntil = now + this.#limits.disabledMs
    this.#log.error({ transform: this.transform.file, direction: this.direction, budgetMs: this.#limits.budgetMs, disabledMs: this.#limits.disabledMs },
      `transform disabled: over its time budget ${this.#limits.maxOverruns} times within ${this.#limits.overrunWindowMs} ms; its messages are skipped until it is tried again`)
  }

  #fail (reason: FailureReason, error: Error, cause?: unknown): Outcome {
    this.#report.failure(this.direction, reason)
    const now = Date.now()
    if (reason !== 'disabled') {
      this.#unlogged++
      if (now - this.#loggedAt >= LOG_INTERVAL_MS) {
        this.#log.warn({ transform: this.transform.file, direction: this.direction, reason, failures: this.#unlogged, err: cause ?? error },
          'transform failed: the message is skipped')
        this.#loggedAt = now
        this.#unlogged = 0
      }
    }
    return { ok: false, error }
  }
}

/** One runner per loaded module and direction, for the life of the app. */
export class TransformRunners {
  readonly #runners = new WeakMap<LoadedTransform, Map<TransformDirection, TransformRunner>>()
  readonly #limits: TransformLimits
  readonly #log: Logger
  readonly #report: TransformReport

  constructor (limits: TransformLimits, log: Logger, report: TransformReport) {
    this.#limits = limits
    this.#log = log
    this.#report = report
  }

  get (transform: LoadedTransform, direction: TransformDirection): TransformRunner {
    let byDirection = this.#runners.get(transform)
    if (!byDirection) {
      byDirection = new Map()
      this.#runners.set(transform, byDirection)
    }
    let runner = byDirection.get(direction)
    if (!runner) {
      runner = new TransformRunner(transform, direction, this.#limits, this.#log, this.#report)
      byDirection.set(direction, runner)
    }
    return runner
  }
}
