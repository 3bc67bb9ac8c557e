// Test support for the suites that kill a partition leader (not a test file):
// a three-node KRaft cluster of the stack's own jars (packages/stack/src/stack.ts
// KafkaCluster: replication factor 3, min.insync.replicas 2, Kafka's default
// group settings), started once per file and gone with it even when the file
// fails; who leads a partition; a publisher that sends through the gateway at
// a steady rate and keeps every answer; the per-partition delivery check.
import { rmSync } from 'node:fs'
import type { Test } from 'tap'
import kafkajs from 'kafkajs'
import { parseCursor } from '@sluice/hub'
import { KafkaCluster } from '@sluice/stack'
import { Client, type Frame } from '../harness/client.ts'

/**
 * Starts the cluster for this test file and tears it down after it: at the file's end, and
 * at the process's exit whatever the cause (the JVMs themselves die with this process, see
 * dieWithParent in stack.ts; this removes their stores). Resolves with how long the start took.
 */
export async function startKafkaCluster (t: Test, brokers = 3): Promise<{ cluster: KafkaCluster, startMs: number }> {
  const cluster = new KafkaCluster({ brokers })
  const onExit = () => {
    for (const node of cluster.nodes) if (node.pid) process.kill(node.pid, 'SIGKILL')
    rmSync(cluster.dataDir, { recursive: true, force: true })
  }
  process.once('exit', onExit)
  t.teardown(async () => {
    await cluster.destroy()
    process.removeListener('exit', onExit)
    // The file's results are written by now. A kafkajs consumer the hub lost track of (one that
    // restarted itself after a failed join, issue 14) retries its dead brokers for good and would
    // keep this process alive until the runner's timeout turns a passed file into a failed one.
    // Past 10 s, say what is still open and go.
    setTimeout(() => {
      const handles = (process as unknown as { _getActiveHandles (): object[] })._getActiveHandles()
        .map(h => `${h.constructor.name}${'remotePort' in h && h.remotePort ? `:${String(h.remotePort)}` : ''}`)
      process.stderr.write(`[kafka-cluster-harness] still open 10 s after the cluster stopped: ${handles.join(', ')}; exiting\n`)
      process.exit()
    }, 10_000).unref()
  })
  const started = Date.now()
  await cluster.start()
  return { cluster, startMs: Date.now() - started }
}

export interface PartitionState {
  partition: number
  /** node id, or -1 while there is none */
  leader: number
  isr: number[]
}

/** What the cluster's metadata says of a topic's partitions (kafkajs's admin, straight: the gateway's client is under test). */
export async function partitionStates (brokers: string[], topic: string): Promise<PartitionState[]> {
  const kafka = new kafkajs.Kafka({ brokers, clientId: 'test-cluster-probe', logLevel: kafkajs.logLevel.NOTHING, connectionTimeout: 1000, retry: { retries: 2, initialRetryTime: 100 } })
  const admin = kafka.admin()
  try {
    await admin.connect()
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    return topics[0]!.partitions
      .map(p => ({ partition: p.partitionId, leader: p.leader, isr: [...p.isr].sort() }))
      .sort((a, b) => a.partition - b.partition)
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/** Polls the metadata until `check` holds for the topic's partitions; fails after `timeoutMs` with the last state seen. */
export async function waitForPartitions (brokers: string[], topic: string, check: (states: PartitionState[]) => boolean, timeoutMs: number, what: string): Promise<PartitionState[]> {
  const deadline = Date.now() + timeoutMs
  let last: PartitionState[] | string = 'no answer'
  for (;;) {
    try {
      last = await partitionStates(brokers, topic)
      if (check(last)) return last
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}; last ${JSON.stringify(last)}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

export type Phase = 'before' | 'during' | 'after'

export interface Publish {
  n: number
  phase: Phase
  /** `${partition}:${offset}` once acked */
  at?: string
  /** the error code when refused */
  refused?: string
}

/**
 * Publishes `{"n": i}` records through the gateway (publish frames on one /v1/stream socket) at a
 * steady rate, each tagged with the phase it was sent in, and keeps every answer. At most
 * `maxInflight` unanswered (the session's limit is 64): a tick that finds them all out sends nothing.
 */
export class Publisher {
  readonly client: Client
  readonly publishes: Publish[] = []
  phase: Phase = 'before'
  skipped = 0
  #timer: NodeJS.Timeout | undefined
  #seen = 0
  readonly #topic: string
  readonly #maxInflight: number

  constructor (url: string, topic: string, maxInflight = 48) {
    this.client = new Client(`${url}/v1/stream`)
    this.#topic = topic
    this.#maxInflight = maxInflight
    this.client.ws.on('message', () => this.#collect())
  }

  get inflight (): number {
    return this.publishes.filter(p => p.at === undefined && p.refused === undefined).length
  }

  acked (phase?: Phase): Publish[] {
    return this.publishes.filter(p => p.at !== undefined && (phase === undefined || p.phase === phase))
  }

  refused (): Publish[] {
    return this.publishes.filter(p => p.refused !== undefined)
  }

  #collect (): void {
    const frames = this.client.frames
    for (; this.#seen < frames.length; this.#seen++) {
      const f = frames[this.#seen]!
      if (typeof f.id !== 'string' || !f.id.startsWith('p')) continue
      const publish = this.publishes[Number(f.id.slice(1))]
      if (!publish) continue
      if (f.op === 'ack') publish.at = `${f.partition as number}:${f.offset as string}`
      else if (f.op === 'error') publish.refused = String(f.code)
    }
  }

  async start (perSecond: number): Promise<void> {
    await this.client.opened
    this.#timer = setInterval(() => {
      if (this.inflight >= this.#maxInflight) {
        this.skipped++
        return
      }
      const n = this.publishes.length
      this.publishes.push({ n, phase: this.phase })
      this.client.send({ op: 'publish', id: `p${n}`, topic: this.#topic, value: { n } })
    }, 1000 / perSecond)
  }

  /** Stops sending and waits (at most `timeoutMs`) until every publish has its answer. */
  async stop (timeoutMs = 30_000): Promise<void> {
    clearInterval(this.#timer)
    const deadline = Date.now() + timeoutMs
    while (this.inflight > 0) {
      if (Date.now() > deadline) throw new Error(`${this.inflight} publishes unanswered ${timeoutMs} ms after the last one`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    this.client.close()
  }
}

/** The starting positions a `subscribed` frame names for `topic` (its complete cursor). */
export function startOf (subscribed: Frame, topic: string): Map<number, bigint> {
  const positions = parseCursor(subscribed.cursor as string).get(topic)
  if (!positions) throw new Error(`the subscribed frame names no position of ${topic}: ${JSON.stringify(subscribed)}`)
  return positions
}

/**
 * What is wrong with one subscriber's deliveries, or nothing: per partition, the offsets it
 * received must be exactly start, start+1, ..., end-1 in that order (every record of the
 * partition once, in order: a topic written without transactions has no gaps), and every acked
 * publish (`partition:offset`) must be among them, with the value that was published.
 */
export function deliveryFaults (messages: Frame[], start: Map<number, bigint>, end: Map<number, bigint>, acked: Publish[]): string[] {
  const faults: string[] = []
  const byPartition = new Map<number, Frame[]>()
  for (const m of messages) {
    const list = byPartition.get(m.partition as number) ?? []
    list.push(m)
    byPartition.set(m.partition as number, list)
  }
  for (const [partition, high] of end) {
    const got = byPartition.get(partition) ?? []
    let expected = start.get(partition) ?? 0n
    const fault = got.find(m => BigInt(m.offset as string) !== expected++)
    if (fault) {
      const offset = BigInt(fault.offset as string)
      expected--
      faults.push(`partition ${partition}: offset ${offset} where ${expected} was due (${offset < expected ? 'a duplicate or out of order' : 'a gap'})`)
    } else if (expected !== high) {
      faults.push(`partition ${partition}: received up to ${expected}, the partition ends at ${high}`)
    }
  }
  const extra = [...byPartition.keys()].filter(p => !end.has(p))
  if (extra.length > 0) faults.push(`records of partitions ${extra.join(', ')}, which the topic does not have`)
  const delivered = new Map(messages.map(m => [`${m.partition as number}:${m.offset as string}`, (m.value as { n?: number }).n]))
  const missing = acked.filter(p => delivered.get(p.at!) !== p.n)
  if (missing.length > 0) faults.push(`${missing.length} acked publishes not delivered as acked, first n=${missing[0]!.n} at ${missing[0]!.at} (got n=${delivered.get(missing[0]!.at!)})`)
  return faults
}
