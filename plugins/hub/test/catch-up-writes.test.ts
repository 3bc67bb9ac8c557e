// A catch-up reader (a resume from before the feed's window, read from Kafka) writes
// each fetched batch as the live dispatch and the window replay do: the part of it
// the socket is to get in one write, not one write (and one await) per record. What
// the socket's queue or delivery budget does not take waits for it, then goes on in
// order: no gap, no duplicate, no lagging. Hand-made batches (fake-kafka.ts).
import { test, type Test } from 'tap'
import type { RecordBatch } from '@sluice/kafka'
import { Hub } from '../src/hub.ts'
import type { Outlet, SubscriptionTerms } from '../src/outlet.ts'
import { fakeKafka, records } from './fake-kafka.ts'
import { nativeFormat } from '../src/frame.ts'

const TERMS: SubscriptionTerms = { encoding: 'json', slowClient: 'lagging' }
const range = (from: number, to: number) => Array.from({ length: to - from }, (_v, i) => from + i)
const turn = () => new Promise(resolve => setImmediate(resolve))

function batchOf (from: number, to: number): Omit<RecordBatch, 'topic'> {
  return { partition: 0, highWatermark: String(to), records: records(from, to) }
}

/** a socket that keeps its writes and the offsets in them; its queue loses `drainBytes` every 5 ms (0: never full) */
function socket (t: Test, maxQueueBytes = 1 << 20, drainBytes = 0) {
  let queue = 0
  const writes: number[][] = []
  const offsets: number[] = []
  const lagged: string[] = []
  const waiters = new Set<() => void>()
  const timer = setInterval(() => {
    queue = Math.max(0, queue - drainBytes)
    for (const wake of [...waiters]) wake()
  }, 5)
  t.teardown(() => clearInterval(timer))
  const outlet: Outlet = {
    id: 's',
    format: nativeFormat,
    maxQueueBytes,
    closed: false,
    queuedBytes: () => drainBytes === 0 ? 0 : queue,
    write (frame: Buffer) {
      const inWrite = [...frame.toString('latin1').matchAll(/"offset":"(\d+)"/g)].map(m => Number(m[1]))
      writes.push(inWrite)
      offsets.push(...inWrite)
      queue += frame.length
    },
    drained (bytes = maxQueueBytes / 2): Promise<void> {
      return new Promise(resolve => {
        const wake = () => {
          if (queue > bytes) return
          waiters.delete(wake)
          resolve()
        }
        waiters.add(wake)
        wake()
      })
    },
    lagging (_topic: string, _dropped: number, resume: string) { lagged.push(resume) },
    evict () {}
  }
  return { outlet, writes, offsets, lagged }
}

async function until (check: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what()}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

test('a catch-up batch is one write from the socket\'s position to the live one, then the live feed takes over', async t => {
  const { kafka, batch, batchTo } = fakeKafka('100')
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  await batch(batchOf(100, 110))
  const resumed = socket(t)
  await hub.subscribe(resumed.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 20n]]) })
  t.equal(hub.stats.catchUps, 1, 'the window starts at 100: a catch-up reader')
  await turn()
  // Kafka hands the reader batches from where it asked, the last reaching past the live position
  await batchTo('sluice-catchup.', batchOf(20, 70))
  await batchTo('sluice-catchup.', batchOf(70, 120))
  t.same(resumed.writes, [range(20, 70), range(70, 110)], 'a write per fetched batch, and nothing the live feed is to send')
  await batch(batchOf(110, 115))
  t.same(resumed.offsets, range(20, 115), 'no gap, no duplicate across the hand-over')
  t.same(resumed.writes.length, 3)
  t.same(resumed.lagged, [])
})

test('a catch-up batch larger than the socket\'s queue waits for room and goes on in order', async t => {
  const { kafka, batch, batchTo } = fakeKafka('300')
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  await batch(batchOf(300, 301))
  // about 12 frames of ~130 bytes fit; 2,000 bytes leave every 5 ms
  const slow = socket(t, 1600, 2000)
  await hub.subscribe(slow.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 0n]]) })
  await turn()
  const handled = batchTo('sluice-catchup.', batchOf(0, 301))
  // the live feed moves on while the reader waits: its records are the live feed's after the hand-over
  for (let i = 301; i < 320; i += 5) {
    await batch(batchOf(i, i + 5))
    await new Promise(resolve => setTimeout(resolve, 3))
  }
  await handled
  // Kafka's next fetch for the reader: what came meanwhile, up to the live position and past it
  await batchTo('sluice-catchup.', batchOf(301, 322))
  await until(() => slow.offsets.length >= 320, () => `${slow.offsets.length} of 320`)
  t.ok(slow.writes.length < 320 / 4, `fewer writes than records (${slow.writes.length} for 320)`)
  t.ok(slow.writes.every(w => w.length > 0), 'no empty write')
  // the live feed drops for a full socket (it is everyone's): once the client has read up
  await slow.outlet.drained(0)
  await batch(batchOf(321, 325))
  t.same(slow.offsets, range(0, 325), 'every record once, in order')
  t.same(slow.lagged, [])
})
