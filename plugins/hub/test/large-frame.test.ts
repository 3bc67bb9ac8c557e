// A frame larger than a socket's send queue bound (a record up to Kafka's
// 1 MiB against a 256 KiB queue) is deliverable: the live dispatch writes it to
// an empty queue, and the readers that wait for their socket (catch-up, group)
// wait for the queue to empty, then write it. Every wait is for an event that
// comes: the fake queue below drains on a timer, and a reader that re-checked
// without waiting would call drained() without end.
import { test, type Test } from 'tap'
import type { ConsumedRecord, RecordBatch } from '@sluice/kafka'
import { Hub } from '../src/hub.ts'
import type { Outlet, SubscriptionTerms } from '../src/outlet.ts'
import { fakeKafka } from './fake-kafka.ts'
import { nativeFormat } from '../src/frame.ts'

const TERMS: SubscriptionTerms = { encoding: 'json', slowClient: 'lagging' }
// the queue bound of these sockets; the large record's frame is five times it
const MAX_QUEUE = 1000
const LARGE = 5000
// a spinning reader calls drained() in a loop that never yields: past this many calls the fake stops
// answering, so that a spin fails the test by its deadline instead of hanging it
const SPIN = 1000

/** a record of topic t, partition 0, whose value is a JSON string of `size` characters */
function record (offset: number, size = 10): ConsumedRecord {
  return { topic: 't', partition: 0, offset: String(offset), timestamp: '0', key: null, value: Buffer.from(JSON.stringify('x'.repeat(size))), headers: {} }
}

function batchOf (...records: ConsumedRecord[]): Omit<RecordBatch, 'topic'> {
  return { partition: 0, highWatermark: String(Number(records.at(-1)!.offset) + 1), records }
}

/**
 * A socket whose send queue starts at `queued` bytes and loses `drainBytes`
 * every 5 ms, as a reading client's would; drained(bytes) resolves once the
 * queue is at most `bytes`, as SocketSession's does.
 */
function socket (t: Test, queued = 0, drainBytes = 0) {
  let queue = queued
  let drainedCalls = 0
  const writes: Array<{ offsets: number[], bytes: number, queuedBefore: number }> = []
  const lagged: Array<{ dropped: number, resume: string }> = []
  let evicted = 0
  const waiters = new Set<() => void>()
  const timer = setInterval(() => {
    queue = Math.max(0, queue - drainBytes)
    for (const wake of [...waiters]) wake()
  }, 5)
  t.teardown(() => clearInterval(timer))
  const outlet: Outlet = {
    id: 's',
    format: nativeFormat,
    maxQueueBytes: MAX_QUEUE,
    closed: false,
    queuedBytes: () => queue,
    write (frame: Buffer, onWritten?: (err?: Error | null) => void) {
      const offsets = [...frame.toString('latin1').matchAll(/"offset":"(\d+)"/g)].map(m => Number(m[1]))
      writes.push({ offsets, bytes: frame.length, queuedBefore: queue })
      queue += frame.length
      onWritten?.()
    },
    drained (bytes = MAX_QUEUE / 2): Promise<void> {
      if (++drainedCalls > SPIN) return new Promise(() => {})
      if (queue <= bytes) return Promise.resolve()
      return new Promise(resolve => {
        const wake = () => {
          if (queue > bytes) return
          waiters.delete(wake)
          resolve()
        }
        waiters.add(wake)
      })
    },
    lagging (_topic: string, dropped: number, resume: string) { lagged.push({ dropped, resume }) },
    evict () { evicted++ }
  }
  return { outlet, writes, lagged, drainedCalls: () => drainedCalls, evicted: () => evicted }
}

/** `work`, or a failure that says what did not happen within `ms` */
async function within (ms: number, work: Promise<unknown>, what: () => string): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what()}: not within ${ms} ms`)), ms) })
  try {
    await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

test('the frame sizes: the large one is over the queue bound, the small ones far under it', async t => {
  t.ok(nativeFormat.frame(record(0, LARGE), 'json')!.length > MAX_QUEUE)
  t.ok(nativeFormat.frame(record(0), 'json')!.length < MAX_QUEUE / 4)
})

test('live: a frame larger than the queue bound goes whole to an empty queue, and nobody is told lagging or evicted', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const lagging = socket(t)
  const evicting = socket(t)
  await hub.subscribe(lagging.outlet, 't', TERMS)
  await hub.subscribe(evicting.outlet, 't', { ...TERMS, slowClient: 'evict' })
  await batch(batchOf(record(0, LARGE)))
  await new Promise(resolve => setTimeout(resolve, 20))
  for (const s of [lagging, evicting]) {
    t.same(s.writes.map(w => w.offsets), [[0]], 'the frame is written')
    t.ok((s.writes[0]?.bytes ?? 0) > MAX_QUEUE, 'whole')
    t.same(s.lagged, [], 'no lagging')
    t.equal(s.evicted(), 0, 'no eviction')
  }
  t.equal(hub.stats.drops, 0)
  t.equal(hub.stats.deliveries, 2)
  t.equal(hub.subscribers('t'), 2, 'both still subscribed')
})

test('live: the records around a large one in the same batch are not dropped because of it', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const s = socket(t, 0, 1_000_000)
  await hub.subscribe(s.outlet, 't', TERMS)
  await batch(batchOf(record(0, LARGE), record(1), record(2)))
  await new Promise(resolve => setTimeout(resolve, 20))
  await batch(batchOf(record(3), record(4, LARGE), record(5)))
  await new Promise(resolve => setTimeout(resolve, 20))
  t.same(s.writes.flatMap(w => w.offsets), [0, 1, 2, 3, 4, 5], 'every record, a large one first or in the middle of its batch')
  t.same(s.lagged, [], 'no lagging')
  t.equal(hub.stats.drops, 0)
})

test('live: the bound still holds for a queue that is not empty: the large frame is dropped, then lagging', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const s = socket(t, 10, 100)
  await hub.subscribe(s.outlet, 't', TERMS)
  await batch(batchOf(record(0, LARGE)))
  t.same(s.writes, [], 'nothing written behind the queued bytes')
  t.equal(hub.stats.drops, 1)
  await within(2000, (async () => { while (s.lagged.length === 0) await new Promise(resolve => setTimeout(resolve, 5)) })(), () => 'lagging')
  t.equal(s.lagged[0]!.dropped, 1)
})

test('catch-up: a frame larger than the queue bound waits for an empty queue, then is written; no spin', async t => {
  const { kafka, batchTo } = fakeKafka('3')
  // no backfill (the resume starts the feed): the gap is the catch-up reader's, read while the queue is still full
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0, backfillTimeoutMs: 0 })
  t.teardown(() => hub.close())
  // 600 bytes queued, read at 100 bytes per 5 ms
  const s = socket(t, 600, 100)
  await hub.subscribe(s.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 0n]]) })
  await within(3000, batchTo('sluice-catchup.', batchOf(record(0), record(1, LARGE), record(2))), () => `the catch-up batch (writes: ${JSON.stringify(s.writes)}, drained() asked ${s.drainedCalls()} times)`)
  // a catch-up batch is written as the live dispatch and the window replay write theirs: the frames
  // that fit in one write, and a frame larger than the bound (with what fits behind it) to an empty queue
  t.same(s.writes.flatMap(w => w.offsets), [0, 1, 2], 'every record, in order')
  t.same(s.writes.map(w => w.offsets), [[0], [1, 2]], 'the first where it fit, then the large one and the rest to the emptied queue')
  t.equal(s.writes[1]!.queuedBefore, 0, 'the large frame went to an empty queue')
  t.ok(s.drainedCalls() <= 2, `one wait per frame that did not fit (drained() asked ${s.drainedCalls()} times)`)
  t.same(s.lagged, [])
  t.equal(hub.stats.deliveries, 3)
})

test('group: a frame larger than the queue bound waits for an empty queue, then is written; no spin', async t => {
  const { kafka, batchTo } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const s = socket(t, 600, 100)
  await hub.joinGroup(s.outlet, 'workers', ['t'], TERMS)
  await within(3000, batchTo('workers', batchOf(record(0), record(1, LARGE), record(2))), () => `the group batch (writes: ${JSON.stringify(s.writes)}, drained() asked ${s.drainedCalls()} times)`)
  t.same(s.writes.map(w => w.offsets), [[0], [1], [2]], 'every record, in order')
  t.equal(s.writes[1]!.queuedBefore, 0, 'the large frame went to an empty queue')
  t.ok(s.writes[2]!.queuedBefore + s.writes[2]!.bytes <= MAX_QUEUE, 'the next frame waited until it fit')
  t.ok(s.drainedCalls() <= 2, `one wait per frame that did not fit (drained() asked ${s.drainedCalls()} times)`)
  t.equal(hub.stats.deliveries, 3)
})
