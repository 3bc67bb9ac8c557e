// What must hold whatever a client sends (not a test file), and the runner
// that drives a fast-check property against the gateway process within the
// fuzz budget, prints its seed, and turns a counterexample into a tap
// failure that says which invariant broke, with the seed to replay it.
//
//   npm test -- test/fuzz/stream-frames.test.ts     one file, in the default budget (its SHARE of FUZZ_SECONDS=36)
//   FUZZ_SEED=1234 ...                              replay: every property of the run starts from this seed
//   FUZZ_SEED=1234 FUZZ_PATH=17 ...                 replay one run of a property (the path a failure names)
//   FUZZ_SHRINK=1 ...                               stop at the first counterexample and shrink it (restarting the gateway after a crash)
//   FUZZ_CPU_PROF=/tmp/prof ...                     the gateway writes a CPU profile there when it exits (what a stall spent its time on)
//   FUZZ_HEAP_SNAPSHOTS=/tmp/heap ...               the gateway's heap at the baseline and after the run (what memory that did not come back holds)
//
// The 10-minute run: FUZZ_SECONDS=600 (each file its SHARE of it), two files at a time, against a Kafka and a Redis already
// running (`bash deploy/local/node.sh deploy/local/stack.ts up`), with tap's per-file timeout raised past the stream file's 270 s:
//
//   FUZZ_SECONDS=600 KAFKA_BROKERS=127.0.0.1:9092 REDIS_URL=redis://127.0.0.1:6379 bash deploy/local/node.sh \
//     node_modules/tap/dist/esm/run.mjs --disable-coverage --allow-empty-coverage '--plugin=!@tapjs/typescript' \
//     --timeout=900 --jobs=2 test/fuzz/*.test.ts
import fc from 'fast-check'
import type { Test } from 'tap'
import { KafkaClient, type ConsumedRecord, type TopicConsumer } from '@sluice/kafka'
import { kafkaBrokers, unique } from '../helpers.ts'
import type { FuzzGateway, HealthReport, Resources } from './gateway.ts'

// ---- the budget ------------------------------------------------------------------------

// 36 s, each file fuzzing its SHARE of it (0.15-0.55), keeps the whole fuzz suite (boot, warm-up, settle
// included: 10-20 s a file, measured) within the 90 s it may add to `npm test`
export const FUZZ_SECONDS = Number(process.env.FUZZ_SECONDS ?? 36)
export const FUZZ_SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED)
export const SHRINK = process.env.FUZZ_SHRINK === '1'
export const FUZZ_PATH = process.env.FUZZ_PATH
// FUZZ_DEBUG=1 prints every run that took over a second, and every violation
const DEBUG = process.env.FUZZ_DEBUG === '1'

/** This file's share of the budget, in ms. */
export function budgetMs (share: number): number {
  return Math.max(1000, Math.round(FUZZ_SECONDS * 1000 * share))
}

// ---- invariants ----------------------------------------------------------------------

/** docs/design.md's close codes, and those ws sends for protocol errors (1002, 1003, 1007, 1009). */
export const DOCUMENTED_CLOSE = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 4001, 4003, 4008, 4029])

// a reply to a frame comes in milliseconds (an ack waits for Kafka: tens, a 1 MiB one hundreds); 2 s is a frame left unanswered
export const REPLY_WAIT_MS = 2000
// the close handshake: the server's close frame answers the client's at once
export const CLOSE_WAIT_MS = 5000
// the brief's bound on /healthz while fuzzed
export const HEALTHZ_MS = 200
// RSS and descriptors come back to within 5 % of the warm baseline
export const RESOURCE_SLACK = 0.05
// ...and descriptors within 4 of it at least: at a baseline of ~45, 5 % is 2, and the node's own Kafka
// connections (the admin client a pattern's topic listing opens, a producer connection to a partition
// leader, a consumer whose stop is pending) come and go one at a time: seen 45 -> 47 on a clean run.
// A leak of one per socket, with hundreds of sockets per run, is far past either bound.
export const FD_SLACK_MIN = 4
const fdBound = (baseline: number) => Math.max(Math.floor(baseline * (1 + RESOURCE_SLACK)), baseline + FD_SLACK_MIN)
// how long the gateway may take to settle after the run (sockets closed, timers fired, idle GC): the
// hub keeps a topic's consumer 5 s after its last socket (stream.consumerGraceMs) and a kafkajs consumer's
// stop waits out its fetch; one clean-clone CI run still had 8 descriptors more than the baseline (45 -> 53)
// after 15 s, so 30 s. A settle that ends early costs nothing.
export const SETTLE_MS = 30_000
// a run is a socket, a few frames and their replies: seconds at most; past this the run is abandoned
const RUN_DEADLINE_MS = 30_000

/** `work`, or a Violation once `ms` passed (the work itself goes on, unawaited). */
async function within<T> (work: Promise<T>, ms: number, invariant: string, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  // settled later, if ever: handled here so that its rejection is nobody's unhandled one
  work.catch(() => {})
  try {
    return await Promise.race([work, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Violation(invariant, what)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

export class Violation extends Error {
  readonly invariant: string
  constructor (invariant: string, detail: string) {
    super(`${invariant}: ${detail}`)
    this.invariant = invariant
  }
}

/**
 * Text as tap may print it: control characters, line separators and lone surrogates escaped (a
 * generated id with a carriage return in it, printed raw, once cut a suite's TAP output short).
 */
export function printable (text: string): string {
  // eslint-disable-next-line no-control-regex
  return Buffer.from(text).toString().replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

/** A short, printable form of a frame for a report (1 MiB strings and 10,000 brackets summarised). */
export function preview (data: string | Uint8Array, max = 200): string {
  const text = typeof data === 'string' ? data : `<${data.length} bytes ${Buffer.from(data.subarray(0, 48)).toString('hex')}${data.length > 48 ? '…' : ''}>`
  if (text.length <= max) return JSON.stringify(text)
  return `${JSON.stringify(text.slice(0, max / 2))}…(${text.length} chars)…${JSON.stringify(text.slice(-max / 4))}`
}

export function checkClose (code: number, allowed: Set<number>, what: string): void {
  if (!allowed.has(code)) throw new Violation('documented close code', `${what} ended with ${code}`)
}

/**
 * The id a frame's reply must name: a string of 1 to 128 characters in a JSON object (docs/design.md's ids),
 * as JSON.parse reads the frame (the last of two ids), that is well-formed Unicode (a lone surrogate
 * cannot be echoed as UTF-8 text).
 */
export function readableId (text: string): string | undefined {
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return undefined
  const id = (frame as { id?: unknown }).id
  return typeof id === 'string' && id.length >= 1 && id.length <= 128 && Buffer.from(id).toString() === id ? id : undefined
}

/** A server text frame: valid JSON (else a violation), parsed. */
export function serverJson (text: string, route: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new Violation('error frames are JSON', `${route} sent a text frame that is not JSON: ${preview(text)}`)
  }
}

// ---- the crash watch -------------------------------------------------------------------

/** Throws when the gateway is gone: waits a moment first, as an unhandled rejection ends it a tick after the socket. */
export async function checkAlive (gw: FuzzGateway, waitMs = 0): Promise<void> {
  if (waitMs > 0) await gw.exitedWithin(waitMs)
  if (!gw.alive) throw new Violation('the gateway never exits', gw.crashReport())
}

/** Before a warm-up run: a gateway that died or stopped answering /healthz is replaced by a fresh one. */
export async function serving (gw: FuzzGateway): Promise<void> {
  if (gw.alive && await gw.responsive()) return
  await gw.kill()
  await gw.start()
}

// ---- read back from Kafka --------------------------------------------------------------

/** Every record of one topic from its beginning, looked up by partition and offset as acks name them. */
export class TopicReader {
  readonly kafka: KafkaClient
  readonly topic: string
  readonly records = new Map<string, ConsumedRecord>()
  #consumer: TopicConsumer | undefined
  #waiters: Array<() => void> = []

  constructor (topic: string) {
    this.topic = topic
    this.kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'fuzz-reader' })
  }

  /** Creates the topic and starts reading it (the group join takes the broker's 3 s initial rebalance delay). */
  async start (partitions = 2): Promise<void> {
    await this.kafka.ensureTopics([{ topic: this.topic, partitions }])
    this.#consumer = this.kafka.consumer({
      groupId: unique('fuzz-reader'),
      topics: [this.topic],
      fromBeginning: true,
      onBatch: async batch => {
        for (const r of batch.records) this.records.set(`${r.partition}:${r.offset}`, r)
        const waiters = this.#waiters
        this.#waiters = []
        for (const w of waiters) w()
      }
    })
    await this.#consumer.start()
  }

  /** The record at partition:offset, or undefined after `ms`. */
  async record (partition: number, offset: string, ms = REPLY_WAIT_MS): Promise<ConsumedRecord | undefined> {
    const key = `${partition}:${offset}`
    const deadline = Date.now() + ms
    while (!this.records.has(key) && Date.now() < deadline) {
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.records.get(key)
  }

  /** Every record up to the topic's end offsets, within `ms`. */
  async all (ms = REPLY_WAIT_MS * 2): Promise<ConsumedRecord[]> {
    const offsets = await this.kafka.topicOffsets(this.topic)
    const expected = offsets.reduce((sum, p) => sum + Number(BigInt(p.high) - BigInt(p.low)), 0)
    const deadline = Date.now() + ms
    while (this.records.size < expected && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
    return [...this.records.values()]
  }

  async stop (): Promise<void> {
    await this.#consumer?.stop().catch(() => {})
    await this.kafka.close()
  }
}

// ---- resources -------------------------------------------------------------------------

/** RSS, descriptors and the JS heap after a full GC: what the gateway holds, not garbage it has not needed to collect yet. */
export async function collectedResources (gw: FuzzGateway): Promise<Resources> {
  // a gateway that cannot collect (stuck) is measured as it is: the comparison then says so
  const heap = await gw.forceGc().catch(() => undefined)
  return { ...gw.resources(), heapKb: heap?.heapKb, heapTotalKb: heap?.heapTotalKb }
}

const within5 = (now: number | undefined, start: number | undefined) => now !== undefined && start !== undefined && now <= start * (1 + RESOURCE_SLACK)

/** Waits (up to SETTLE_MS) for memory and descriptors after a full GC to come back within the slack of `baseline`; returns the last sample. */
export async function settledResources (gw: FuzzGateway, baseline: Resources): Promise<Resources> {
  const deadline = Date.now() + SETTLE_MS
  let now = await collectedResources(gw)
  const settled = () => now.fds <= fdBound(baseline.fds) && (within5(now.rssKb, baseline.rssKb) || within5(now.heapKb, baseline.heapKb))
  while (Date.now() < deadline && !settled()) {
    await new Promise(resolve => setTimeout(resolve, 1000))
    now = await collectedResources(gw)
  }
  return now
}

/**
 * The resource invariant, after the run and a settle: descriptors within 5 % of the warm baseline, and
 * memory: RSS within 5 %, or, where RSS stays higher, what JavaScript holds (heap in use plus Buffers,
 * after a full GC) within 5 %. RSS alone keeps every page the allocator ever held: over the first
 * hundreds of fuzzed sockets it climbs to a plateau and stays there (measured, /v1/stream: 124.5, 131,
 * 136, 137.3, 137.4, 137.6 MB after each 60 runs) with nothing leaked, while a leak of objects or
 * Buffers grows the heap figure.
 */
// the routes' session classes: every fuzzed socket is closed by the end of a run, so none of these should be left
const SESSION_CLASSES = ['StreamSession', 'CompatSession', 'MqttSession'] as const
// Libraries' object pools keep their last few requests, and with them those sockets' sessions (seen: 2
// StreamSessions held through @fastify/jwt's steed holders after a stream-frames run). The leaks this
// check is for held 282 (hub feeds, stream-frames) and 78 (the MQTT session store, mqtt-packets).
const LINGERING_SESSIONS = 8

/**
 * No session outlives its socket: after the run (and its settle), the gateway's heap holds at most
 * LINGERING_SESSIONS session objects, counted in a heap snapshot. A leak of closed sessions grows with
 * the runs, and the memory figures below cannot tell it from the heap's noise.
 */
export async function checkSessionsGone (t: Test, gw: FuzzGateway): Promise<string> {
  if (!gw.alive) return 'sessions not counted: the gateway is not running'
  const counts = await gw.heapObjects(SESSION_CLASSES)
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  const figures = Object.entries(counts).filter(([, n]) => n > 0).map(([name, n]) => `${n} ${name}`).join(', ') || 'none'
  t.ok(total <= LINGERING_SESSIONS, `no session outlives its socket: ${total} session objects left in the gateway's heap after the run (${figures}; at most ${LINGERING_SESSIONS})`)
  return `sessions left ${total}`
}

export async function checkResources (t: Test, gw: FuzzGateway, baseline: Resources, firstPid: number): Promise<string> {
  if (!gw.alive || gw.pid !== firstPid) return 'resources not compared: the gateway was restarted after a crash'
  let after: Resources
  try {
    after = await settledResources(gw, baseline)
  } catch (err) {
    // /proc/<pid> is gone: the process ended while it was measured (its exit is reported on its own)
    return `resources not compared: ${(err as Error).message}`
  }
  const figures = `RSS ${baseline.rssKb} -> ${after.rssKb} KiB, JS heap and Buffers ${baseline.heapKb ?? '?'} -> ${after.heapKb ?? '?'} KiB, V8's heap pages ${baseline.heapTotalKb ?? '?'} -> ${after.heapTotalKb ?? '?'} KiB, fds ${baseline.fds} -> ${after.fds}`
  const rss = within5(after.rssKb, baseline.rssKb)
  t.ok(rss || within5(after.heapKb, baseline.heapKb), `memory came back within 5 % of the warm baseline${rss ? '' : ' (RSS did not: the allocator keeps its pages; JavaScript holds no more)'} (${figures})`)
  t.ok(after.fds <= fdBound(baseline.fds), `open descriptors came back within 5 % or ${FD_SLACK_MIN} (${baseline.fds} -> ${after.fds})`)
  return `${figures}, ${await checkSessionsGone(t, gw)}`
}

// ---- the property runner ---------------------------------------------------------------

export interface FuzzStats {
  /** the test file, for the replay command */
  file: string
  seeds: number[]
  runs: number
  frames: number
  findings: string[]
  /** when each run ran, to name the runs a slow /healthz answer overlapped */
  timeline: Array<{ start: number, end: number, property: string, seed: number, index: number, describe: () => string }>
}

export function newStats (file: string): FuzzStats {
  return { file, seeds: [], runs: 0, frames: 0, findings: [], timeline: [] }
}

export interface PropertyOptions<T> {
  name: string
  arbitrary: fc.Arbitrary<T>
  /** one run: throws a Violation when an invariant breaks */
  run: (value: T) => Promise<void>
  /** for the report: the value as frames */
  describe: (value: T) => string
  ms: number
}

interface Broken {
  invariant: string
  count: number
  /** the first run that broke it: its index is fast-check's path under the seed */
  path: string
  message: string
  example: string
}

/**
 * Runs a property against the gateway for `ms` (fast-check's time limit: the
 * runs it completes count) and reports each invariant that broke as one
 * failed assertion, with how often, the first counterexample, its seed and
 * its path (FUZZ_SEED and FUZZ_PATH replay exactly that run). A broken
 * invariant does not end the property: a fuzz run reports everything it
 * finds, one defect does not hide the next. A gateway that died is started
 * again before the next run. FUZZ_SHRINK=1 instead stops at the first
 * counterexample and lets fast-check shrink it.
 */
export async function fuzzProperty<T> (t: Test, gw: FuzzGateway, stats: FuzzStats, options: PropertyOptions<T>): Promise<boolean> {
  const seed = FUZZ_SEED ?? (Math.random() * 2 ** 31) | 0
  stats.seeds.push(seed)
  t.comment(`fuzz ${options.name}: seed ${seed} (replay: FUZZ_SEED=${seed}), ${options.ms} ms${FUZZ_PATH ? `, path ${FUZZ_PATH}` : ''}`)
  let runs = 0
  let inflight: Promise<void> = Promise.resolve()
  const broken = new Map<string, Broken>()
  const property = fc.asyncProperty(options.arbitrary, async value => {
    const index = runs++
    const started = Date.now()
    // the whole run, a restart included: the next property waits for it
    const run = (async () => {
      if (!gw.alive) {
        t.comment(`fuzz ${options.name}: the gateway is down; starting it again`)
        await gw.start()
      }
      await within(options.run(value), RUN_DEADLINE_MS, 'every run ends', `the run took over ${RUN_DEADLINE_MS} ms`)
    })()
    // a gateway that stopped answering is stuck: it is ended, and the next run starts a fresh one
    const outcome = run.catch(async (err: unknown) => {
      if (gw.alive && !(await gw.responsive())) {
        t.comment(`fuzz ${options.name}: the gateway does not answer /healthz within 2 s after run ${index}; ending it`)
        await gw.kill()
      }
      throw err
    })
    // the run and that clean-up: what the next property (or the file's end checks) waits for
    inflight = outcome.catch(() => {})
    try {
      await outcome
    } catch (err) {
      if (SHRINK) throw err
      const violation = err instanceof Violation ? err : new Violation('the run itself', String((err as Error)?.stack ?? err))
      if (DEBUG) t.comment(`run ${index}: ${printable(violation.message.slice(0, 400))}`)
      const seen = broken.get(violation.invariant)
      if (seen) seen.count++
      else broken.set(violation.invariant, { invariant: violation.invariant, count: 1, path: FUZZ_PATH ?? String(index), message: violation.message, example: options.describe(value) })
    } finally {
      stats.timeline.push({ start: started, end: Date.now(), property: options.name, seed, index, describe: () => options.describe(value) })
      if (DEBUG && Date.now() - started > 1000) t.comment(`slow run (${Date.now() - started} ms): ${printable(options.describe(value))}`)
    }
  })
  const details = await fc.check(property, {
    seed,
    numRuns: FUZZ_PATH ? 1 : 1_000_000,
    ...(FUZZ_PATH ? { path: FUZZ_PATH } : {}),
    endOnFailure: !SHRINK,
    // a replay is one run, however long it takes
    plugins: FUZZ_PATH ? [] : [fc.interruptAfterTimeLimit(options.ms)]
  })
  // fast-check stops waiting at its time limit, not the run in flight: it finishes before the next property
  await inflight
  stats.runs += runs
  // failed with no error: fast-check's own bookkeeping of an interrupted run, not a counterexample
  if (details.failed && details.errorInstance !== null) {
    const err = details.errorInstance
    broken.set('shrunk', {
      invariant: err instanceof Violation ? err.invariant : 'the run itself',
      count: 1,
      path: details.counterexamplePath ?? '-',
      message: err instanceof Error ? err.message : String(err),
      example: details.counterexample ? options.describe((details.counterexample as [T])[0]) : '-'
    })
  }
  if (broken.size === 0) {
    t.pass(`${options.name}: ${runs} runs, every invariant held`)
    return true
  }
  for (const b of broken.values()) {
    const finding = `${options.name}: "${b.invariant}" broken in ${b.count} of ${runs} runs; seed ${seed}, path ${b.path}`
    stats.findings.push(finding)
    t.fail(`${finding}\n  ${b.message.split('\n').map(printable).join('\n  ')}\n  counterexample: ${printable(b.example)}\n  replay: FUZZ_SEED=${seed} FUZZ_PATH=${b.path} /tmp/t.sh ${stats.file}`)
  }
  return false
}

/** The /healthz invariant over the whole run, naming the runs that overlapped its slowest answers. */
export function checkHealth (t: Test, stats: FuzzStats, health: HealthReport | undefined): void {
  const ok = health !== undefined && health.failures === 0 && health.maxMs <= HEALTHZ_MS
  let suspects = ''
  if (health && !ok) {
    const runs = new Set<FuzzStats['timeline'][number]>()
    for (const w of health.worst) {
      const end = Date.parse(w.at)
      for (const r of stats.timeline) if (r.start <= end && r.end >= end - w.ms) runs.add(r)
    }
    suspects = [...runs].slice(0, 3).map(r => `\n  during ${r.property} run ${r.index} (FUZZ_SEED=${r.seed} FUZZ_PATH=${r.index}): ${printable(r.describe().slice(0, 600))}`).join('')
  }
  t.ok(ok, `/healthz answered within ${HEALTHZ_MS} ms throughout (max ${health?.maxMs} ms, ${health?.over} slow, ${health?.failures} failed of ${health?.samples}, ${health?.down} refused while down, ${health?.starved} slow while the machine starved the probe too, ${health?.queued} slow only by the gateway's wait for a CPU${health?.worst.length ? '; slowest ' + JSON.stringify(health.worst) : ''})${suspects}`)
}

/** The process ran from start to end: no exit (a crash, or our SIGKILL of a stuck process) during the whole file. */
export function checkRanThroughout (t: Test, gw: FuzzGateway): void {
  const exits = gw.exits.map(e => e.signal ?? `code ${e.code}`)
  t.ok(exits.length === 0 && gw.alive, exits.length === 0 ? 'the gateway ran throughout' : `the gateway ended ${exits.length} times (${exits.join(', ')}) and was started again; the last: ${printable(gw.lastExitReport)}`)
}

/** The summary line every fuzz file ends with. */
export function summary (t: Test, name: string, stats: FuzzStats, health: HealthReport | undefined, resources: string): void {
  const seeds = stats.seeds.length ? `${Math.min(...stats.seeds)}..${Math.max(...stats.seeds)}` : '-'
  const h = health ? `healthz max ${health.maxMs} ms over ${health.samples} probes (${health.over} over ${HEALTHZ_MS} ms, ${health.failures} failed, ${health.starved} while the machine starved the probe, ${health.queued} slow only by the gateway's wait for a CPU)` : 'healthz not probed'
  t.comment(`fuzz summary ${name}: ${stats.runs} runs, ${stats.frames} frames; seed range ${seeds}; ${h}; ${resources}; findings: ${stats.findings.length ? stats.findings.join(' | ') : 'none'}`)
}
