// Shared by the integration suites: where the run's Kafka and Redis are
// (test/run.ts starts them and passes their addresses), and unique names.
import { randomBytes } from 'node:crypto'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import type { Test } from 'tap'
import { KafkaClient, type ConsumedRecord } from '@sluice/kafka'

export function kafkaBrokers (): string[] {
  const brokers = process.env.KAFKA_BROKERS
  if (!brokers) throw new Error('KAFKA_BROKERS is not set: run the suites through `npm test`, which starts Kafka')
  return brokers.split(',')
}

export function redisUrl (): string {
  const url = process.env.REDIS_URL
  if (!url) throw new Error('REDIS_URL is not set: run the suites through `npm test`, which starts Redis')
  return url
}

/** A topic or group name no other suite uses (suites run in parallel on one broker). */
export function unique (prefix: string): string {
  return `${prefix}.${randomBytes(4).toString('hex')}`
}

/** Polls `check` until it returns true, failing after `timeoutMs`. Not a timing assertion: a bound on waiting. */
/**
 * Waits until `check` holds. A check that throws counts as not yet, until the deadline, when its
 * last error is thrown: a broker still loading answers admin requests with retriable errors
 * (NOT_COORDINATOR for a group on a fresh broker's first minute) that kafkajs's admin does not retry.
 */
export async function eventually (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let failure: unknown
    try {
      if (await check()) return
    } catch (err) {
      failure = err
    }
    if (Date.now() > deadline) {
      if (failure !== undefined) throw new Error(`not within ${timeoutMs} ms: ${what} (last: ${(failure as Error).message})`, { cause: failure })
      throw new Error(`not within ${timeoutMs} ms: ${what}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y

/** Parses Prometheus text exposition (format 0.0.4): every sample line, with its labels unescaped; comments skipped. */
export function parseMetrics (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE_LINE.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    const body = m[2] ?? ''
    LABEL.lastIndex = 0
    while (LABEL.lastIndex < body.length) {
      const at = LABEL.lastIndex
      const l = LABEL.exec(body)
      if (!l) throw new Error(`bad labels at ${at}: ${line}`)
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_all, c: string) => c === 'n' ? '\n' : c)
    }
    const raw = m[3]!
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw)
    samples.push({ name: m[1]!, labels, value })
  }
  return samples
}

/** The samples of `name` whose labels include every one of `labels`. */
export function samplesOf (text: string, name: string, labels: Record<string, string> = {}): Sample[] {
  return parseMetrics(text).filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}

/** The sum of those samples: 0 when there is none (a labelled series appears with its first event). */
export function metricSum (text: string, name: string, labels: Record<string, string> = {}): number {
  return samplesOf(text, name, labels).reduce((sum, s) => sum + s.value, 0)
}

/**
 * The first `count` records of `topic`, read from its beginning by a plain consumer of the run's
 * Kafka (what any other client would read); fails after 60 s naming how many came.
 */
export async function readRecords (t: Test, topic: string, count: number): Promise<ConsumedRecord[]> {
  const reader = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-plain-consumer' })
  t.teardown(() => reader.close())
  const seen: ConsumedRecord[] = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${seen.length} of ${count} records of ${topic}`)), 60_000)
    const consumer = reader.consumer({
      groupId: unique('plain'),
      topics: [topic],
      fromBeginning: true,
      async onBatch (batch) {
        seen.push(...batch.records)
        if (seen.length >= count) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
    t.teardown(() => consumer.stop())
    consumer.start().catch(reject)
  })
  return seen
}

/** ESTABLISHED TCP connections of this process to `port` (the socket inodes of its descriptors, found in /proc/net/tcp{,6}). */
export function connectionsTo (port: number): number {
  const inodes = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (m) inodes.add(m[1]!)
    } catch {}
  }
  let n = 0
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      // remote address (hex port), state (01: ESTABLISHED), inode
      if (cols.length >= 10 && parseInt(cols[2]!.split(':')[1]!, 16) === port && cols[3] === '01' && inodes.has(cols[9]!)) n++
    }
  }
  return n
}
