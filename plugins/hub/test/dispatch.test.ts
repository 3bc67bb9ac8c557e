// The live dispatch writes each socket one buffer per batch: the batch's frames
// joined once and shared, or the part of them from the socket's own position,
// cut where its queue room or delivery budget ends. Pure logic over hand-made
// batches; the integration suites (test/stream-*.test.ts) run it on the broker.
import { test } from 'tap'
import type { RecordBatch } from '@sluice/kafka'
import { Hub } from '../src/hub.ts'
import type { Outlet } from '../src/outlet.ts'
import { fakeKafka, records } from './fake-kafka.ts'
import { nativeFormat, type FrameFormat } from '../src/frame.ts'

function batchOf (from: number, to: number): Omit<RecordBatch, 'topic'> {
  return { partition: 0, highWatermark: String(to), records: records(from, to) }
}

/** a socket that keeps what it is sent: each write, and the offsets in the frames */
function socket (id: string, extra: Partial<Outlet> & { queued?: number } = {}) {
  const writes: Buffer[] = []
  const lagged: Array<{ dropped: number, resume: string }> = []
  const outlet: Outlet = {
    id,
    format: nativeFormat,
    maxQueueBytes: 1 << 20,
    closed: false,
    queuedBytes: () => extra.queued ?? 0,
    drained: async () => {},
    write (frame: Buffer) { writes.push(frame) },
    lagging (_topic: string, dropped: number, resume: string) { lagged.push({ dropped, resume }) },
    evict () {},
    ...extra
  }
  const offsets = () => [...Buffer.concat(writes).toString('latin1').matchAll(/"offset":"(\d+)"/g)].map(m => Number(m[1]))
  return { outlet, writes, lagged, offsets }
}

const TERMS = { encoding: 'json', slowClient: 'lagging' } as const
const range = (from: number, to: number) => Array.from({ length: to - from }, (_v, i) => from + i)

test('one write per socket and batch, the same bytes for every socket', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const a = socket('a')
  const b = socket('b')
  await hub.subscribe(a.outlet, 't', TERMS)
  await hub.subscribe(b.outlet, 't', TERMS)
  await batch(batchOf(0, 10))
  await batch(batchOf(10, 11))
  t.equal(a.writes.length, 2, 'a write per batch')
  t.same(a.offsets(), range(0, 11), 'every record, in order')
  t.equal(a.writes[0], b.writes[0], 'the joined batch is one buffer, shared by the sockets')
  t.same(a.writes[0], Buffer.concat(records(0, 10).map(r => nativeFormat.frame(r, 'json')!)), 'the frames end to end')
  t.equal(hub.stats.deliveries, 22)
})

test('a batch that repeats records the socket has (a restarted consumer): only the new part, as a view', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const a = socket('a')
  await hub.subscribe(a.outlet, 't', TERMS)
  await batch(batchOf(0, 10))
  await batch(batchOf(5, 15))
  await batch(batchOf(0, 15))
  t.equal(a.writes.length, 2, 'nothing written for a batch it has whole')
  t.same(a.offsets(), range(0, 15), 'no duplicate, no gap')
  t.equal(hub.stats.deliveries, 15)
})

test('queue room ends mid-batch: the frames that fit are written, the rest dropped, then lagging with the cursor', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const frameBytes = nativeFormat.frame(records(0, 1)[0]!, 'json')!.length
  // room for three frames and a half
  const a = socket('a', { maxQueueBytes: 1000, queued: 1000 - Math.floor(frameBytes * 3.5) })
  await hub.subscribe(a.outlet, 't', TERMS)
  await batch(batchOf(0, 10))
  t.same(a.offsets(), [0, 1, 2], 'three frames fit')
  t.equal(a.writes.length, 1)
  t.equal(hub.stats.deliveries, 3, 'and are the deliveries counted')
  t.equal(hub.stats.drops, 7, 'the other seven are counted as drops')
  await new Promise(resolve => setImmediate(resolve))
  t.equal(a.lagged.length, 1, 'the socket hears lagging')
  t.equal(a.lagged[0]!.dropped, 7)
  t.match(a.lagged[0]!.resume, /./, 'with a resume cursor')
})

test('the delivery budget refuses mid-batch: what it admitted is written', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  let tokens = 4
  const a = socket('a', { admit: () => tokens-- > 0 })
  await hub.subscribe(a.outlet, 't', TERMS)
  await batch(batchOf(0, 10))
  t.same(a.offsets(), [0, 1, 2, 3])
  t.equal(hub.stats.drops, 6)
  t.equal(hub.stats.deliveries, 4)
})

test('records a format sends nothing for are skipped, and the position moves past them', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  // a format that sends even offsets only
  const evens: FrameFormat = { key: 'evens', frame: (r, e) => Number(r.offset) % 2 === 0 ? nativeFormat.frame(r, e) : undefined }
  const a = socket('a', { format: evens })
  const all = socket('all')
  await hub.subscribe(a.outlet, 't', TERMS)
  await hub.subscribe(all.outlet, 't', TERMS)
  await batch(batchOf(0, 7))
  await batch(batchOf(7, 8))
  await batch(batchOf(8, 9))
  t.same(a.offsets(), [0, 2, 4, 6, 8])
  t.equal(a.writes.length, 2, 'a batch with nothing for the socket is no write')
  t.same(all.offsets(), range(0, 9), 'another format in the same batch is framed on its own')
  t.equal(hub.stats.drops, 0)
  t.equal(hub.stats.deliveries, 5 + 9, 'a skipped record is no delivery')
})
