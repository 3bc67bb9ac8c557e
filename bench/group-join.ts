// Group mode's join and rebalance times (issue 14, "group mode on the modern protocol"),
// on a broker of its own with Kafka's default group settings (group.initial.rebalance.delay.ms
// 3 s for classic groups; KIP-848 groups: group.consumer.heartbeat.interval.ms 5 s,
// session 45 s), three ways in one run:
//   kafkajs classic      KafkaClient.consumer(), what hub.joinGroup uses today
//   platformatic classic GroupReaders.reader({ protocol: 'classic' }) (group-reader.ts)
//   platformatic KIP-848 GroupReaders.reader({ protocol: 'consumer' })
// Per run and client, a new group on one 4-partition topic that a producer writes one record
// per partition to every 50 ms (so "first record" is the first after the join, not a backlog):
//   1. first member: start() -> its first record
//   2. second member: start() -> the two members' assignments split the 4 partitions
//      (each has some, together all 4), and -> the second member's first record
//   3. the second leaves: stop() called -> the first owns all 4 again, and -> the first's
//      first record of a partition the second had
// Before the second joins and before it leaves each run waits 0-5 s (phase(), the same for the
// three clients), as a member joins at any point of the others' heartbeat cycle.
// Members are made as the hub makes them (fromBeginning false, commit after each batch,
// session 10 s, heartbeat every 3.3 s for classic). Bounded: every wait has a deadline.
//
//   bash deploy/local/node.sh bench/group-join.ts [--runs 5] [--brokers host:port]
//
// Takes ~6 min with 5 runs (a broker start, a warm-up, then 3 clients x 5 runs of three rebalances).
import { parseArgs } from 'node:util'
import { KafkaClient, type RecordBatch, type TopicConsumer } from '@sluice/kafka'
import { GroupReaders, type GroupProtocol } from '@sluice/kafka/group-reader'
import { KafkaBroker } from '@sluice/stack'

const TOPIC = 'bench.group'
const PARTITIONS = 4
const PRODUCE_EVERY_MS = 50
const STEP_TIMEOUT_MS = 60_000
// kafkajs's and group-reader.ts's default: classic members heartbeat every third of it
const SESSION_TIMEOUT_MS = 10_000

type Kind = 'kafkajs classic' | 'platformatic classic' | 'platformatic KIP-848'
const KINDS: Kind[] = ['kafkajs classic', 'platformatic classic', 'platformatic KIP-848']

interface Member {
  consumer: TopicConsumer
  /** partitions owned now, as the member's last onGroupJoin said */
  owned: number[]
  /** when the member's first record came, and of which partitions since `mark` */
  firstAt?: number
  seenAfter: (mark: number, partitions: number[]) => number | undefined
}

interface Sample {
  join: number
  rebalance: number
  secondFirst: number
  leave: number
  leaveFirst: number
}

function member (kind: Kind, kafka: KafkaClient, readers: GroupReaders, groupId: string): Member {
  const arrivals: Array<{ at: number, partition: number }> = []
  const m: Member = {
    consumer: undefined as unknown as TopicConsumer,
    owned: [],
    seenAfter (mark, partitions) {
      return arrivals.find(a => a.at >= mark && partitions.includes(a.partition))?.at
    }
  }
  const options = {
    groupId,
    topics: [TOPIC],
    fromBeginning: false,
    autoCommit: false,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    onBatch: async (batch: RecordBatch) => {
      const now = performance.now()
      m.firstAt ??= now
      arrivals.push({ at: now, partition: batch.partition })
      const last = batch.records[batch.records.length - 1]
      if (last) await m.consumer.commit([{ topic: last.topic, partition: last.partition, offset: last.offset }])
    },
    onGroupJoin: (assignment: Record<string, number[]>) => { m.owned = [...(assignment[TOPIC] ?? [])].sort() }
  }
  const protocol: GroupProtocol | undefined = kind === 'platformatic classic' ? 'classic' : kind === 'platformatic KIP-848' ? 'consumer' : undefined
  m.consumer = protocol ? readers.reader({ ...options, protocol }) : kafka.consumer(options)
  return m
}

async function until (check: () => boolean, what: string): Promise<number> {
  const deadline = performance.now() + STEP_TIMEOUT_MS
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  return performance.now()
}

/**
 * Where in its heartbeat cycle the first member is when the second joins or leaves decides
 * much of a rebalance's time (classic: up to a heartbeat interval, 3.3 s here; KIP-848: up to
 * the broker's 5 s): each run waits a different time before both, spread evenly over 0-5 s,
 * the same for the three clients.
 */
function phase (n: number, runs: number): number {
  return n < 0 ? 0 : Math.round(((n + 0.5) / runs) * 5000)
}

async function run (kind: Kind, kafka: KafkaClient, readers: GroupReaders, n: number, wait: number): Promise<Sample> {
  const groupId = `bench.group.${kind.replace(/\W+/g, '-')}.${n}.${Date.now()}`
  const a = member(kind, kafka, readers, groupId)
  const b = member(kind, kafka, readers, groupId)
  try {
    const t0 = performance.now()
    await a.consumer.start()
    await until(() => a.firstAt !== undefined, `${kind}: first member's first record`)
    const join = a.firstAt! - t0
    await until(() => a.owned.length === PARTITIONS, `${kind}: first member owns all`)

    await new Promise(resolve => setTimeout(resolve, wait))
    const t1 = performance.now()
    await b.consumer.start()
    const split = await until(() => a.owned.length > 0 && b.owned.length > 0 &&
      a.owned.length + b.owned.length === PARTITIONS && new Set([...a.owned, ...b.owned]).size === PARTITIONS, `${kind}: split`)
    await until(() => b.firstAt !== undefined, `${kind}: second member's first record`)
    const rebalance = split - t1
    const secondFirst = b.firstAt! - t1

    const theirs = [...b.owned]
    await new Promise(resolve => setTimeout(resolve, wait))
    const t2 = performance.now()
    await b.consumer.stop()
    const back = await until(() => a.owned.length === PARTITIONS, `${kind}: first member owns all again`)
    await until(() => a.seenAfter(t2, theirs) !== undefined, `${kind}: first member reads the second's partitions`)
    return { join, rebalance, secondFirst, leave: back - t2, leaveFirst: a.seenAfter(t2, theirs)! - t2 }
  } finally {
    await Promise.allSettled([a.consumer.stop(), b.consumer.stop()])
  }
}

function quantile (xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, brokers: { type: 'string' } } })
  const runs = Number(values.runs)
  const broker = values.brokers ? undefined : new KafkaBroker()
  const started = Date.now()
  await broker?.start()
  const brokers = values.brokers ? values.brokers.split(',') : broker!.brokers
  process.stderr.write(`[bench] broker ${brokers.join(',')} ${broker ? '(own, Kafka\'s default group settings) ' : ''}ready in ${Date.now() - started} ms\n`)
  const kafka = new KafkaClient({ brokers, clientId: 'bench-group-join' })
  const readers = new GroupReaders({ brokers, clientId: 'bench-group-join', connectionTimeoutMs: 3000, requestTimeoutMs: 10_000 })
  const state = { producing: true, produced: 0 }
  let producer: Promise<void> = Promise.resolve()
  try {
    await kafka.ensureTopics([{ topic: TOPIC, partitions: PARTITIONS }], 60_000)
    process.stderr.write(`[bench] the broker offers: ${await readers.protocol()}\n`)
    producer = (async () => {
      while (state.producing) {
        await kafka.produceBatch(TOPIC, Array.from({ length: PARTITIONS }, (_v, partition) => ({ value: String(state.produced++), partition })))
        await new Promise(resolve => setTimeout(resolve, PRODUCE_EVERY_MS))
      }
    })()
    // the broker's first group creates __consumer_offsets: not part of any client's figures
    for (const kind of KINDS) await run(kind, kafka, readers, -1, 0)
    process.stderr.write(`[bench] warm-up done in ${Date.now() - started} ms\n`)
    const samples = new Map<Kind, Sample[]>(KINDS.map(k => [k, []]))
    for (let n = 0; n < runs; n++) {
      // interleaved, so a noisy moment of the machine falls on all three
      for (const kind of KINDS) {
        const s = await run(kind, kafka, readers, n, phase(n, runs))
        samples.get(kind)!.push(s)
        process.stderr.write(`[bench] ${kind} #${n} (phase ${phase(n, runs)} ms): ${JSON.stringify(Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Math.round(v)])))}\n`)
      }
    }
    const rows: Array<[string, keyof Sample]> = [
      ['1. first member: start -> first record', 'join'],
      ['2. second member: start -> partitions split', 'rebalance'],
      ['2. second member: start -> its first record', 'secondFirst'],
      ['3. second leaves: stop -> first owns all', 'leave'],
      ['3. second leaves: stop -> first reads its partitions', 'leaveFirst']
    ]
    process.stdout.write(`\nGroup join and rebalance: node ${process.version}, one broker (Kafka 4, KRaft, loopback, default group settings), ${runs} runs, ms p50 (min-max)\n\n`)
    const lines = [['', ...KINDS, 'plt classic / kjs', 'plt 848 / kjs', 'plt 848 / plt classic']]
    for (const [label, key] of rows) {
      const p50 = KINDS.map(k => quantile(samples.get(k)!.map(s => s[key]), 0.5))
      const cells = KINDS.map((k, i) => {
        const xs = samples.get(k)!.map(s => s[key])
        return `${Math.round(p50[i]!)} (${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))})`
      })
      lines.push([label, ...cells, (p50[1]! / p50[0]!).toFixed(2), (p50[2]! / p50[0]!).toFixed(2), (p50[2]! / p50[1]!).toFixed(2)])
    }
    const widths = lines[0]!.map((_c, i) => Math.max(...lines.map(l => l[i]!.length)))
    for (const l of lines) process.stdout.write(l.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ') + '\n')
    process.stdout.write(`\nraw: ${JSON.stringify(Object.fromEntries(samples))}\n`)
  } finally {
    state.producing = false
    await producer.catch(() => {})
    await readers.close()
    await kafka.close()
    await broker?.destroy()
  }
}

main().catch(err => {
  process.stderr.write(`[bench] ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
