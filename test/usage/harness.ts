// Test support for the usage suites (not a test file): gateways from the
// rate-limit preset with usage metering in short periods (2 s) on a Redis
// prefix and a usage topic of the suite's own; clients that count the message
// frames they receive and their bytes on the wire; and the usage events read
// back from the topic.
import type { Test } from 'tap'
import { KafkaClient, type ConsumedRecord } from '@sluice/kafka'
import type { UsageEvent } from '@sluice/usage'
import { eventually, kafkaBrokers, readRecords, unique } from '../helpers.ts'
import { Client } from '../harness/client.ts'
import { bearer } from '../harness/rate-limit.ts'

// short periods, so that a suite sees several close: they divide a day as the config requires
export const PERIOD_S = 2
export const FLUSH_MS = 200
export const GRACE_MS = 500

export interface UsageSetup {
  topic: string
  prefix: string
  config: Record<string, unknown>
}

export function usageSetup (): UsageSetup {
  const topic = unique('usage-events')
  const prefix = unique('usage-suite') + ':'
  return { topic, prefix, config: { usage: { topic, prefix, periodSeconds: PERIOD_S, flushMs: FLUSH_MS, graceMs: GRACE_MS } } }
}

/** The bytes a server frame of `payload` bytes takes on the wire (RFC 6455 5.2: unmasked, 2, 4 or 10 bytes of header). */
export function wireBytes (payload: number): number {
  return payload + (payload < 126 ? 2 : payload < 65_536 ? 4 : 10)
}

/** A /v1/stream client of `sub` that counts the message frames it receives and their bytes on the wire. */
export function countingClient (t: Test, wsUrl: string, sub: string): { client: Client, received: { messages: number, bytes: number } } {
  const client = new Client(`${wsUrl}/v1/stream`, { headers: bearer(sub) })
  t.teardown(() => client.terminate())
  const received = { messages: 0, bytes: 0 }
  client.ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(String(data)) as { op?: string }
    if (frame.op !== 'message') return
    received.messages++
    received.bytes += wireBytes(data.length)
  })
  return { client, received }
}

/** Every usage event on `topic` (read once the topic's end is known). */
export async function usageEvents (t: Test, topic: string): Promise<UsageEvent[]> {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'usage-suite-offsets' })
  let total = 0
  try {
    for (const p of await kafka.topicOffsets(topic)) total += Number(BigInt(p.high) - BigInt(p.low))
  } finally {
    await kafka.close()
  }
  if (total === 0) return []
  const records: ConsumedRecord[] = await readRecords(t, topic, total)
  return records.map(r => JSON.parse(String(r.value)) as UsageEvent)
}

/** Until Redis has no period left to emit under `prefix` (every closed period's events are on the topic). */
export async function allEmitted (redis: { zcard (key: string): Promise<number> }, prefix: string, timeoutMs = 20_000): Promise<void> {
  await eventually(async () => await redis.zcard(`${prefix}periods`) === 0, timeoutMs, 'every usage period emitted')
}

/** Sums per application over distinct event ids; copies of one id (at least once) must carry the same data. */
export function totalsById (t: Test, events: UsageEvent[]): Map<string, { delivered: number, deliveredBytes: number, published: number, connectionMinutes: number, refused: Record<string, number> }> {
  const byId = new Map<string, UsageEvent>()
  for (const event of events) {
    const seen = byId.get(event.id)
    if (seen) t.same(event.data, seen.data, `a second copy of ${event.id} carries the same usage`)
    else byId.set(event.id, event)
  }
  const totals = new Map<string, { delivered: number, deliveredBytes: number, published: number, connectionMinutes: number, refused: Record<string, number> }>()
  for (const { data } of byId.values()) {
    const sum = totals.get(data.application) ?? { delivered: 0, deliveredBytes: 0, published: 0, connectionMinutes: 0, refused: {} }
    sum.delivered += data.delivered
    sum.deliveredBytes += data.deliveredBytes
    sum.published += data.published
    sum.connectionMinutes += data.connectionMinutes
    for (const [reason, n] of Object.entries(data.refused)) sum.refused[reason] = (sum.refused[reason] ?? 0) + n
    totals.set(data.application, sum)
  }
  return totals
}
