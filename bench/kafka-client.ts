// Kafka client benchmark for group-less reads (the Kafka-layer issue): the hub
// reads each topic through a kafkajs consumer group, and on a broker with
// Kafka's default group.initial.rebalance.delay.ms (3 s) every first
// subscriber and every resume waits for a group join. Measured here, on a
// broker of its own with Kafka's default group settings, against
//   (a) kafkajs as the hub uses it: KafkaClient.consumer (a group per reader),
//       seek to the offsets after start;
//   (b) @platformatic/kafka without a group: Consumer.metadata() for the
//       partition leaders and topic ids, then Consumer.fetch() (its documented
//       low-level fetch, "Advanced Methods") at explicit offsets, one fetch loop
//       per broker node multiplexing every partition read (KIP-227 fetch sessions);
//   (c) kafkajs without a group: not measured, it has no supported API for it
//       (no assign(); tulios/kafkajs#373 open, #853 "not possible at this time").
// Each client runs in a child process of its own (CPU, RSS and sockets are
// that process's); loopback only; bounded: every wait has a deadline.
//
//   bash deploy/local/node.sh bench/kafka-client.ts [--runs 20] [--topics 200] [--records 200000]
//
// Takes ~2 min 40 s here (kafkajs: 20 + 5 + 3 group joins of 3 s, 10 s idle per client). Figures: bench/README.md.
import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Consumer, type FetchOptions } from '@platformatic/kafka'
import { KafkaClient, type ConsumedRecord, type OutgoingRecord } from '@sluice/kafka'
import { KafkaBroker } from '@sluice/stack'
import { connectionsTo } from '../test/helpers.ts'

const self = fileURLToPath(import.meta.url)

// scenario 1: the topic: 3 partitions, 1,000 records, read from offset 100 of each
const FIRST_TOPIC = 'bench.first'
const FIRST_FROM = 100n
// scenario 2: a resume reads the second half of 3 x 10,000 records: enough to time "to last" apart from "to first"
const RESUME_TOPIC = 'bench.resume'
const RESUME_PER_PARTITION = 10_000
const RESUME_RUNS = 5
// scenario 3: topics of one partition (the broker's num.partitions) with one record each, read from 0
const MANY_PREFIX = 'bench.many.'
const IDLE_SECONDS = 10
// scenario 4: small records (~64 bytes of value), 3 partitions
const BULK_TOPIC = 'bench.bulk'
const BULK_RUNS = 3
// a topic no one writes to: the shared platformatic client's fetch loop is parked on it
const PARKED_TOPIC = 'bench.parked'
const PARTITIONS = 3
// How long the broker may hold a group-less fetch with nothing to return. It also bounds how
// long a reader added while the node's fetch is parked waits for its first request: 500 ms
// keeps that under a human's notice at 2 fetches/s per broker when idle (kafkajs: 5 s per consumer).
const PLT_MAX_WAIT_MS = 500
// kafkajs's defaults, so both clients may take the same from one fetch
const MAX_BYTES = 10 * 1024 * 1024
const MAX_BYTES_PER_PARTITION = 1024 * 1024
const SCENARIO_TIMEOUT_MS = 120_000
const CHILD_TIMEOUT_MS = 330_000

type Msg = Record<string, unknown> & { type: string }
type OnRecords = (topic: string, partition: number, records: ConsumedRecord[]) => void

interface Reader { stop (): Promise<void> }
interface Client {
  /** starts reading `topic` at `from` (partition -> offset); resolves when the read is under way */
  open (topic: string, from: Map<number, bigint>, onRecords: OnRecords): Promise<Reader>
  close (): Promise<void>
}

// ---- (a) kafkajs as the hub uses it ---------------------------------------------------

function kafkajsClient (brokers: string[]): Client {
  const kafka = new KafkaClient({ brokers, clientId: 'bench-kafkajs' })
  return {
    async open (topic, from, onRecords) {
      // a group per reader, as the hub's feeds and catch-up readers have
      const reader = kafka.consumer({
        groupId: `bench.${topic}.${randomUUID().slice(0, 8)}`,
        topics: [topic],
        fromBeginning: true,
        autoCommit: false,
        onBatch: async batch => { onRecords(batch.topic, batch.partition, batch.records) }
      })
      await reader.start()
      for (const [partition, offset] of from) reader.seek(topic, partition, offset.toString())
      return { stop: () => reader.stop() }
    },
    close: () => kafka.close()
  }
}

// ---- (b) @platformatic/kafka without a group -------------------------------------------

type FetchTopic = FetchOptions<Buffer, Buffer, Buffer, Buffer>['topics'][number]
type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>
interface Wanted { next: bigint, leader: number, onRecords: OnRecords, starting: boolean }

/**
 * Reads partitions at explicit offsets with no group: one fetch in flight per broker
 * node, carrying every wanted partition of every topic led by that node. A partition
 * added while its node's fetch is parked joins the next request (<= PLT_MAX_WAIT_MS),
 * unless a start lane is given: a second client (its own connection and fetch session)
 * whose fetches for the new partitions return at once (maxWaitTime 0) until they reach
 * their high watermark; they then move to the parked loop.
 */
class Fetcher {
  readonly #consumer: Consumer
  readonly #starter: Consumer | undefined
  readonly #wanted = new Map<string, Map<number, Wanted>>()
  readonly #ids = new Map<string, string>()
  readonly #names = new Map<string, string>()
  readonly #inFlight = new Set<number>()
  readonly #starting = new Set<number>()
  readonly #pending = new Set<string>()
  #resolving: Promise<void> | undefined
  #closed = false
  errors = 0

  constructor (consumer: Consumer, starter?: Consumer) {
    this.#consumer = consumer
    this.#starter = starter
  }

  /** Adds a topic's partitions; topics added in the same tick share one Metadata request. */
  async add (topic: string, from: Map<number, bigint>, onRecords: OnRecords): Promise<void> {
    const partitions = new Map<number, Wanted>()
    for (const [partition, next] of from) partitions.set(partition, { next, leader: -1, onRecords, starting: this.#starter !== undefined })
    this.#wanted.set(topic, partitions)
    this.#pending.add(topic)
    this.#resolving ??= new Promise(resolve => setImmediate(resolve)).then(() => this.#resolve())
    await this.#resolving
  }

  remove (topic: string): void {
    this.#wanted.delete(topic)
  }

  async #resolve (): Promise<void> {
    const topics = [...this.#pending]
    this.#pending.clear()
    this.#resolving = undefined
    // Kafka answers a connection's requests one at a time, in order: a Metadata request on the
    // parked loop's connection waits behind its fetch (a first read took 257 ms instead of 3 here)
    const metadata = await (this.#starter ?? this.#consumer).metadata({ topics })
    for (const topic of topics) {
      const meta = metadata.topics.get(topic)
      const wanted = this.#wanted.get(topic)
      if (!meta || !wanted) continue
      this.#ids.set(topic, meta.id)
      this.#names.set(meta.id, topic)
      for (const [partition, w] of wanted) w.leader = meta.partitions[partition]?.leader ?? -1
    }
    this.#kick()
  }

  #kick (): void {
    const nodes = new Set<number>()
    const starting = new Set<number>()
    for (const partitions of this.#wanted.values()) {
      for (const w of partitions.values()) {
        if (w.leader < 0) continue
        if (w.starting) starting.add(w.leader)
        else nodes.add(w.leader)
      }
    }
    for (const node of starting) if (!this.#starting.has(node)) this.#start(node)
    for (const node of nodes) if (!this.#inFlight.has(node)) this.#fetch(node)
  }

  #request (node: number, starting: boolean): FetchTopic[] {
    const topics: FetchTopic[] = []
    for (const [topic, partitions] of this.#wanted) {
      const topicId = this.#ids.get(topic)
      if (topicId === undefined) continue
      const request: FetchTopic = { topicId, partitions: [] }
      for (const [partition, w] of partitions) {
        if (w.leader !== node || w.starting !== starting) continue
        request.partitions.push({ partition, fetchOffset: w.next, partitionMaxBytes: MAX_BYTES_PER_PARTITION, currentLeaderEpoch: -1, lastFetchedEpoch: -1 })
      }
      if (request.partitions.length > 0) topics.push(request)
    }
    return topics
  }

  /** The start lane: immediate fetches of the partitions just added, until they are caught up. */
  #start (node: number): void {
    const starter = this.#starter
    if (this.#closed || !starter) return
    const topics = this.#request(node, true)
    if (topics.length === 0) return
    this.#starting.add(node)
    starter.fetch({ node, topics, maxWaitTime: 0, minBytes: 1, maxBytes: MAX_BYTES }, (err, response) => {
      this.#starting.delete(node)
      if (this.#closed) return
      if (err || !response) {
        this.errors++
        setTimeout(() => this.#start(node), 100).unref()
        return
      }
      this.#deliver(response)
      // a partition stays in the start lane until it has caught up with its high watermark (a
      // resume reads its backlog at once), then joins the parked loop, which waits for new records
      // (one a fetch session left out of the response had nothing new: caught up too, or this would spin)
      const highs = new Map<string, bigint>()
      for (const { topicId, partitions } of response.responses) {
        for (const p of partitions) highs.set(`${topicId}:${p.partitionIndex}`, p.highWatermark)
      }
      for (const { topicId, partitions } of topics) {
        const wanted = this.#wanted.get(this.#names.get(topicId) ?? topicId)
        for (const { partition } of partitions) {
          const w = wanted?.get(partition)
          const high = highs.get(`${topicId}:${partition}`)
          if (w && (high === undefined || w.next >= high)) w.starting = false
        }
      }
      this.#kick()
    })
  }

  #fetch (node: number): void {
    if (this.#closed) return
    const topics = this.#request(node, false)
    if (topics.length === 0) return
    this.#inFlight.add(node)
    this.#consumer.fetch({ node, topics, maxWaitTime: PLT_MAX_WAIT_MS, minBytes: 1, maxBytes: MAX_BYTES }, (err, response) => {
      this.#inFlight.delete(node)
      if (this.#closed) return
      if (err || !response) {
        // a leader change or a new partition: the hub would refresh metadata here; on one broker it is not expected
        this.errors++
        setTimeout(() => this.#fetch(node), 100).unref()
        return
      }
      this.#deliver(response)
      this.#fetch(node)
    })
  }

  #deliver (response: FetchResponse): void {
    for (const { topicId, partitions } of response.responses) {
      const topic = this.#names.get(topicId) ?? topicId
      const wanted = this.#wanted.get(topic)
      if (!wanted) continue
      for (const p of partitions) {
        const w = wanted.get(p.partitionIndex)
        if (!w || !p.records) continue
        const records: ConsumedRecord[] = []
        let next = w.next
        for (const batch of p.records) {
          for (const r of batch.records) {
            const offset = batch.firstOffset + BigInt(r.offsetDelta)
            // a batch is returned whole: records before the fetch offset were delivered already
            if (offset < w.next) continue
            const headers: Record<string, Buffer> = {}
            for (const [name, value] of r.headers) if (name && value) headers[name.toString()] = value
            records.push({
              topic,
              partition: p.partitionIndex,
              offset: offset.toString(),
              timestamp: (batch.firstTimestamp + r.timestampDelta).toString(),
              key: r.key,
              value: r.value,
              headers
            })
          }
          const end = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n
          if (end > next) next = end
        }
        w.next = next
        if (records.length > 0) w.onRecords(topic, p.partitionIndex, records)
      }
    }
  }

  close (): void {
    this.#closed = true
  }
}

function platformaticConsumer (brokers: string[]): Consumer {
  // groupId is required by the constructor; it is never sent to the broker, as no
  // consume(), joinGroup() or commit() is called (the parent checks the broker's groups)
  return new Consumer({ clientId: 'bench-platformatic', bootstrapBrokers: brokers, groupId: 'bench.never-joined', autocommit: false })
}

/** A new client per reader: connect, metadata, fetch, as kafkajs does per consumer. */
function platformaticNewClient (brokers: string[]): Client {
  return {
    async open (topic, from, onRecords) {
      const consumer = platformaticConsumer(brokers)
      const fetcher = new Fetcher(consumer)
      await fetcher.add(topic, from, onRecords)
      return {
        async stop () {
          fetcher.close()
          await consumer.close()
        }
      }
    },
    async close () {}
  }
}

/**
 * One client for the process (the plan for the hub): a reader adds its partitions to the
 * shared fetch loop; with `lane`, through a second client's immediate fetch first.
 */
async function platformaticShared (brokers: string[], parked: boolean, lane: boolean): Promise<Client & { fetcher: Fetcher }> {
  const consumer = platformaticConsumer(brokers)
  const starter = lane ? platformaticConsumer(brokers) : undefined
  const fetcher = new Fetcher(consumer, starter)
  // connected beforehand, as a hub's would be (its first fetch would otherwise connect: 266 ms once seen here)
  await starter?.metadata({ topics: [PARKED_TOPIC] })
  if (parked) {
    // connect and leave the node's fetch parked on an idle topic, as a hub's loop mostly is
    const [end] = await consumer.listOffsets({ topics: [PARKED_TOPIC] }).then(o => o.get(PARKED_TOPIC) ?? [0n])
    await fetcher.add(PARKED_TOPIC, new Map([[0, end ?? 0n]]), () => {})
    await sleep(PLT_MAX_WAIT_MS / 2)
  }
  return {
    fetcher,
    async open (topic, from, onRecords) {
      await fetcher.add(topic, from, onRecords)
      return { async stop () { fetcher.remove(topic) } }
    },
    async close () {
      fetcher.close()
      await Promise.all([consumer.close(), starter?.close()])
    }
  }
}

// ---- measurements (in a child) ----------------------------------------------------------

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

function deadline<T> (promise: Promise<T>, what: string, ms = SCENARIO_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function cpuMicros (): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

function memory (): { rss: number, heap: number } {
  globalThis.gc?.()
  globalThis.gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, heap: m.heapUsed + m.external + m.arrayBuffers }
}

function percentile (sorted: number[], q: number): number {
  // nearest rank: with 20 runs p99 is the slowest run
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}

function fromEach (offset: bigint): Map<number, bigint> {
  return new Map(Array.from({ length: PARTITIONS }, (_v, p) => [p, offset]))
}

async function firstRecord (client: Client, runs: number): Promise<{ p50: number, p99: number, runs: number[] }> {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    let seen!: (ms: number) => void
    const first = new Promise<number>(resolve => { seen = resolve })
    const t0 = performance.now()
    const reader = await deadline(client.open(FIRST_TOPIC, fromEach(FIRST_FROM), () => seen(performance.now() - t0)), 'first record: open')
    times.push(await deadline(first, 'first record'))
    await reader.stop()
  }
  const sorted = [...times].sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), runs: times }
}

async function resume (client: Client, ends: bigint[]): Promise<{ first: number, last: number, records: number }> {
  const firsts: number[] = []
  const lasts: number[] = []
  let records = 0
  for (let i = 0; i < RESUME_RUNS; i++) {
    const from = BigInt(RESUME_PER_PARTITION / 2)
    let left = ends.length
    let count = 0
    let firstAt = 0
    let done!: (ms: number) => void
    const finished = new Promise<number>(resolve => { done = resolve })
    const reached = new Set<number>()
    const t0 = performance.now()
    const reader = await deadline(client.open(RESUME_TOPIC, fromEach(from), (_topic, partition, batch) => {
      if (firstAt === 0) firstAt = performance.now() - t0
      count += batch.length
      const last = batch[batch.length - 1]
      if (last && BigInt(last.offset) + 1n >= ends[partition]! && !reached.has(partition)) {
        reached.add(partition)
        if (--left === 0) done(performance.now() - t0)
      }
    }), 'resume: open')
    lasts.push(await deadline(finished, 'resume'))
    firsts.push(firstAt)
    records = count
    await reader.stop()
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  return { first: median(firsts), last: median(lasts), records }
}

async function many (client: Client, topics: number, port: number): Promise<Record<string, number>> {
  const mem0 = memory()
  const delivered = new Set<string>()
  let all!: () => void
  const allReading = new Promise<void>(resolve => { all = resolve })
  const t0 = performance.now()
  const readers = await deadline(Promise.all(Array.from({ length: topics }, (_v, i) => client.open(`${MANY_PREFIX}${i}`, new Map([[0, 0n]]), topic => {
    delivered.add(topic)
    if (delivered.size === topics) all()
  }))), 'many: open')
  await deadline(allReading, `many: ${topics} topics reading`)
  const allReadingMs = performance.now() - t0
  // all of the process's connections to the broker, the shared client's included
  const sockets = connectionsTo(port)
  const mem1 = memory()
  const cpu0 = cpuMicros()
  await sleep(IDLE_SECONDS * 1000)
  const idleCpuMs = (cpuMicros() - cpu0) / 1000
  const s0 = performance.now()
  await deadline(Promise.all(readers.map(r => r.stop())), 'many: stop')
  return { allReadingMs, sockets, rssPerTopicKiB: (mem1.rss - mem0.rss) / topics / 1024, heapPerTopicKiB: (mem1.heap - mem0.heap) / topics / 1024, idleCpuMsPer10s: idleCpuMs * 10 / IDLE_SECONDS, stopMs: performance.now() - s0 }
}

/**
 * A full read, BULK_RUNS times, each on a client of its own (a shared loop left parked by the
 * previous run would add up to PLT_MAX_WAIT_MS): the median run by records/s (one run is
 * 0.2-0.6 s here, noisy on shared cores).
 */
async function bulk (clientFor: () => Promise<Client>, ends: bigint[]): Promise<Record<string, number>> {
  const runs: Array<Record<string, number>> = []
  for (let i = 0; i < BULK_RUNS; i++) {
    const client = await clientFor()
    runs.push(await bulkOnce(client, ends))
    await client.close()
  }
  runs.sort((a, b) => a.recordsPerSecond! - b.recordsPerSecond!)
  return { ...runs[Math.floor(runs.length / 2)]!, slowestRecordsPerSecond: runs[0]!.recordsPerSecond!, fastestRecordsPerSecond: runs[runs.length - 1]!.recordsPerSecond! }
}

async function bulkOnce (client: Client, ends: bigint[]): Promise<Record<string, number>> {
  const total = ends.reduce((sum, e) => sum + Number(e), 0)
  let count = 0
  let done!: () => void
  const finished = new Promise<void>(resolve => { done = resolve })
  const t0 = performance.now()
  const cpu0 = cpuMicros()
  // measured from the open's end (kafkajs: the group joined, its first fetch sent) to the last
  // record, not from the first record: a first callback may carry most of a small topic
  let tReady = 0
  let cpuReady = 0
  const reader = await deadline(client.open(BULK_TOPIC, fromEach(0n), (_topic, _partition, records) => {
    count += records.length
    if (count >= total) done()
  }), 'bulk: open')
  tReady = performance.now()
  cpuReady = cpuMicros()
  await deadline(finished, 'bulk read')
  const end = performance.now()
  const cpuEnd = cpuMicros()
  await reader.stop()
  return {
    records: count,
    openMs: tReady - t0,
    openToLastMs: end - t0,
    readMs: end - tReady,
    recordsPerSecond: count / ((end - tReady) / 1000),
    cpuMicrosPerRecord: (cpuEnd - cpuReady) / count,
    cpuMicrosPerRecordWithStart: (cpuEnd - cpu0) / count
  }
}

async function child (kind: string, brokers: string[], port: number, options: { runs: number, topics: number }, ends: { resume: bigint[], bulk: bigint[] }): Promise<Msg> {
  const out: Msg = { type: 'result', kind }
  if (kind === 'kafkajs') {
    const client = kafkajsClient(brokers)
    out.first = await firstRecord(client, options.runs)
    out.resume = await resume(client, ends.resume)
    out.many = await many(client, options.topics, port)
    await client.close()
    // a KafkaClient per run, as the platformatic side has: each consumer connects anyway
    out.bulk = await bulk(async () => kafkajsClient(brokers), ends.bulk)
    return out
  }
  const fresh = platformaticNewClient(brokers)
  out.first = await firstRecord(fresh, options.runs)
  out.resume = await resume(fresh, ends.resume)
  const parked = await platformaticShared(brokers, true, false)
  out.firstShared = await firstRecord(parked, options.runs)
  out.resumeShared = await resume(parked, ends.resume)
  await parked.close()
  const laned = await platformaticShared(brokers, true, true)
  out.firstLane = await firstRecord(laned, options.runs)
  out.resumeLane = await resume(laned, ends.resume)
  await laned.close()
  const shared = await platformaticShared(brokers, false, true)
  out.many = await many(shared, options.topics, port)
  let errors = shared.fetcher.errors
  await shared.close()
  errors += parked.fetcher.errors + laned.fetcher.errors
  out.bulk = await bulk(async () => {
    const client = await platformaticShared(brokers, false, false)
    return { ...client, async close () { errors += client.fetcher.errors; await client.close() } }
  }, ends.bulk)
  out.errors = errors
  return out
}

// ---- parent: broker, data, children, table ------------------------------------------------

async function produceSpread (kafka: KafkaClient, topic: string, count: number, value: (n: number) => string): Promise<void> {
  // 10,000 per request: ~640 KB, one batch per partition well under the broker's 1 MiB
  for (let start = 0; start < count; start += 10_000) {
    const records: OutgoingRecord[] = []
    for (let n = start; n < Math.min(count, start + 10_000); n++) records.push({ value: value(n), partition: n % PARTITIONS })
    await kafka.produceBatch(topic, records)
  }
}

async function highs (kafka: KafkaClient, topic: string): Promise<bigint[]> {
  return (await kafka.topicOffsets(topic)).map(o => BigInt(o.high))
}

function runChild (kind: string, brokers: string[], port: number, options: { runs: number, topics: number }, ends: { resume: bigint[], bulk: bigint[] }): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const proc: ChildProcess = fork(self, ['child'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`${kind}: no result within ${CHILD_TIMEOUT_MS} ms`))
    }, CHILD_TIMEOUT_MS)
    proc.on('message', (m: Msg) => {
      if (m.type === 'result' || m.type === 'error') {
        clearTimeout(timer)
        proc.kill()
        if (m.type === 'error') reject(new Error(`${kind}: ${String(m.message)}`))
        else resolve(m)
      }
    })
    proc.on('exit', code => {
      clearTimeout(timer)
      reject(new Error(`${kind}: child exited (${code}) without a result`))
    })
    proc.send({ type: 'run', kind, brokers, port, options, ends: { resume: ends.resume.map(String), bulk: ends.bulk.map(String) } })
  })
}

function fmt (n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return '-'
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

function printTable (a: Msg, b: Msg): void {
  const get = (m: Msg, path: string): number | undefined => {
    let v: unknown = m
    for (const key of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[key]
    return typeof v === 'number' ? v : undefined
  }
  const rows: Array<[string, string, string?, number?]> = [
    ['1. first record p50 (ms)', 'first.p50', undefined, 0],
    ['1. first record p99 (ms)', 'first.p99', undefined, 0],
    ['1. first record p50, shared client, loop parked (ms)', 'first.p50', 'firstShared.p50', 0],
    ['1. first record p99, shared client, loop parked (ms)', 'first.p99', 'firstShared.p99', 0],
    ['1. first record p50, shared + start lane (ms)', 'first.p50', 'firstLane.p50', 0],
    ['1. first record p99, shared + start lane (ms)', 'first.p99', 'firstLane.p99', 0],
    ['2. resume: first record, median of 5 (ms)', 'resume.first', undefined, 0],
    ['2. resume: last record, median of 5 (ms)', 'resume.last', undefined, 0],
    ['2. resume: first record, shared client (ms)', 'resume.first', 'resumeShared.first', 0],
    ['2. resume: last record, shared client (ms)', 'resume.last', 'resumeShared.last', 0],
    ['2. resume: first record, shared + start lane (ms)', 'resume.first', 'resumeLane.first', 0],
    ['2. resume: last record, shared + start lane (ms)', 'resume.last', 'resumeLane.last', 0],
    ['2. resume: records read', 'resume.records', undefined, 0],
    ['3. topics all reading (ms)', 'many.allReadingMs', undefined, 0],
    ['3. broker connections', 'many.sockets', undefined, 0],
    ['3. RSS per topic (KiB)', 'many.rssPerTopicKiB', undefined, 1],
    ['3. heap + external per topic (KiB)', 'many.heapPerTopicKiB', undefined, 1],
    ['3. idle CPU over 10 s (ms)', 'many.idleCpuMsPer10s', undefined, 1],
    ['3. stopping all readers (ms)', 'many.stopMs', undefined, 0],
    ['4. open (kafkajs: group join) (ms)', 'bulk.openMs', undefined, 0],
    ['4. read after open (ms)', 'bulk.readMs', undefined, 0],
    ['4. records/s (after open), median of 3', 'bulk.recordsPerSecond', undefined, 0],
    ['4. records/s, slowest of 3', 'bulk.slowestRecordsPerSecond', undefined, 0],
    ['4. records/s, fastest of 3', 'bulk.fastestRecordsPerSecond', undefined, 0],
    ['4. CPU µs per record (after open)', 'bulk.cpuMicrosPerRecord', undefined, 3],
    ['4. CPU µs per record (with open)', 'bulk.cpuMicrosPerRecordWithStart', undefined, 3],
    ['4. open to last record (ms)', 'bulk.openToLastMs', undefined, 0]
  ]
  const lines = [['', 'kafkajs (group)', 'platformatic (no group)', 'ratio plt/kjs']]
  for (const [label, kjsPath, pltPath, digits] of rows) {
    const x = get(a, kjsPath)
    const y = get(b, pltPath ?? kjsPath)
    lines.push([label, fmt(x, digits), fmt(y, digits), x && y !== undefined ? (y / x).toFixed(3) : '-'])
  }
  const widths = lines[0]!.map((_c, i) => Math.max(...lines.map(l => l[i]!.length)))
  for (const l of lines) process.stdout.write(l.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ') + '\n')
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, topics: { type: 'string', default: '200' }, records: { type: 'string', default: '200000' } } })
  const options = { runs: Number(values.runs), topics: Number(values.topics) }
  const bulkRecords = Number(values.records)
  const broker = new KafkaBroker()
  const started = Date.now()
  await broker.start()
  process.stderr.write(`[bench] broker ${broker.brokers[0]} (group.initial.rebalance.delay.ms at Kafka's default) ready in ${Date.now() - started} ms\n`)
  const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'bench-setup' })
  try {
    await kafka.ensureTopics([
      { topic: FIRST_TOPIC, partitions: PARTITIONS },
      { topic: RESUME_TOPIC, partitions: PARTITIONS },
      { topic: BULK_TOPIC, partitions: PARTITIONS },
      { topic: PARKED_TOPIC, partitions: 1 },
      ...Array.from({ length: options.topics }, (_v, i) => ({ topic: `${MANY_PREFIX}${i}`, partitions: 1 }))
    ], 60_000)
    const pad = 'x'.repeat(40)
    await produceSpread(kafka, FIRST_TOPIC, 1000, n => JSON.stringify({ n, pad }))
    await produceSpread(kafka, RESUME_TOPIC, RESUME_PER_PARTITION * PARTITIONS, n => JSON.stringify({ n, pad }))
    // ~64-byte values: "small records"
    await produceSpread(kafka, BULK_TOPIC, bulkRecords, n => JSON.stringify({ n, sym: 'BTC-USD', pad: 'y'.repeat(32) }))
    for (let i = 0; i < options.topics; i++) await kafka.produce(`${MANY_PREFIX}${i}`, { value: JSON.stringify({ i }) })
    const ends = { resume: await highs(kafka, RESUME_TOPIC), bulk: await highs(kafka, BULK_TOPIC) }
    process.stderr.write(`[bench] data written in ${Date.now() - started} ms since start\n`)
    const results: Msg[] = []
    for (const kind of ['kafkajs', 'platformatic']) {
      const t = Date.now()
      results.push(await runChild(kind, broker.brokers, broker.port, options, ends))
      process.stderr.write(`[bench] ${kind} done in ${Date.now() - t} ms\n`)
    }
    const groups = await kafka.listGroups()
    process.stdout.write(`\nKafka client for group-less reads: node ${process.version}, one broker (Kafka 4, KRaft, loopback), ${options.runs} runs in 1., ${options.topics} topics in 3., ${bulkRecords.toLocaleString('en-US')} records in 4.\n\n`)
    printTable(results[0]!, results[1]!)
    process.stdout.write(`\nplatformatic fetch errors: ${String(results[1]!.errors)}; groups on the broker afterwards: ${groups.length}, of which platformatic's: ${groups.filter(g => g === 'bench.never-joined').length}\n`)
    process.stdout.write(`raw: ${JSON.stringify(results)}\n`)
  } finally {
    await kafka.close()
    await broker.destroy()
  }
}

if (process.argv[2] === 'child') {
  process.on('message', (m: Msg) => {
    if (m.type !== 'run') return
    const ends = m.ends as { resume: string[], bulk: string[] }
    child(m.kind as string, m.brokers as string[], m.port as number, m.options as { runs: number, topics: number }, { resume: ends.resume.map(BigInt), bulk: ends.bulk.map(BigInt) })
      .then(result => process.send!(result))
      .catch(err => process.send!({ type: 'error', message: err instanceof Error ? err.stack : String(err) }))
  })
} else {
  main().catch(err => {
    process.stderr.write(`[bench] ${err instanceof Error ? err.stack : String(err)}\n`)
    process.exitCode = 1
  })
}
