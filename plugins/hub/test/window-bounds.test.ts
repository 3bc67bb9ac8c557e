// A topic's window bounds come from the products that serve it (a product's
// `resume` in the policy): the largest among them, each unset bound the node's
// default; a reload resizes the windows of running feeds, a smaller window
// evicting at once. Pure logic over hand-made records and a fake policy; the
// suite on the broker is test/stream/resume-window-product.test.ts.
import { test, type Test } from 'tap'
import type { ConsumedRecord, RecordBatch } from '@sluice/kafka'
import type { ResumeWindowDocument } from '@sluice/policy/schema'
import { Hub } from '../src/hub.ts'
import type { Outlet, SubscriptionTerms } from '../src/outlet.ts'
import { nativeFormat } from '../src/frame.ts'
import { boundsOf, WindowBudget, type ProductWindows } from '../src/window.ts'
import { fakeKafka, records } from './fake-kafka.ts'

const DEFAULTS = { maxBytes: 1024 * 1024, maxAgeMs: 60_000 }
const TERMS: SubscriptionTerms = { encoding: 'json', slowClient: 'lagging' }
const range = (from: number, to: number) => Array.from({ length: to - from }, (_v, i) => from + i)

function recordsAt (offsets: number[], partition = 0): ConsumedRecord[] {
  return offsets.map(o => ({ topic: 't', partition, offset: String(o), timestamp: '0', key: null, value: Buffer.from(String(o).padStart(8, '0')), headers: {} }))
}

/** the bytes one chunk of `n` same-sized records weighs in a window (no frames) */
function chunkBytes (n: number): number {
  const window = new WindowBudget().window('probe', { maxBytes: Infinity, maxAgeMs: Infinity })
  window.append(0, recordsAt(range(0, n)))
  return window.bytes
}

/** a policy the test edits: topic -> the `resume` of each product serving it */
function products () {
  const served = new Map<string, ResumeWindowDocument[]>()
  const listeners = new Set<() => void>()
  const source: ProductWindows = {
    resumeWindows: topic => served.get(topic) ?? [],
    onChange (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
  return {
    source,
    listeners,
    reload (topic: string, windows: ResumeWindowDocument[]) {
      served.set(topic, windows)
      for (const listener of listeners) listener()
    }
  }
}

function outlet (t: Test): Outlet & { offsets: number[] } {
  const offsets: number[] = []
  const o = {
    id: 's',
    format: nativeFormat,
    maxQueueBytes: 1 << 20,
    closed: false,
    offsets,
    queuedBytes: () => 0,
    write (frame: Buffer) {
      for (const m of frame.toString('latin1').matchAll(/"offset":"(\d+)"/g)) offsets.push(Number(m[1]))
    },
    drained: async () => {},
    lagging () { t.fail('no lagging expected') },
    evict () {}
  }
  return o
}

function batchOf (from: number, to: number): Omit<RecordBatch, 'topic'> {
  return { partition: 0, highWatermark: String(to), records: records(from, to) }
}

test('a topic\'s bounds: the largest among its products, an unset bound being the node\'s default', async t => {
  t.same(boundsOf([], DEFAULTS), DEFAULTS, 'no product serves it: the node\'s defaults')
  t.same(boundsOf([{}], DEFAULTS), DEFAULTS, 'a product that says nothing')
  t.same(boundsOf([{ windowBytes: 4096, windowMs: 1000 }], DEFAULTS), { maxBytes: 4096, maxAgeMs: 1000 }, 'one product, smaller than the defaults')
  t.same(boundsOf([{ windowBytes: 0 }], DEFAULTS), { maxBytes: 0, maxAgeMs: 60_000 }, 'windowBytes 0: none kept')
  t.same(boundsOf([{ windowBytes: 0 }, { windowBytes: 8192, windowMs: 500 }], DEFAULTS), { maxBytes: 8192, maxAgeMs: 60_000 }, 'a product\'s 0 takes nothing from another\'s window; the first one\'s unset age is the default')
  t.same(boundsOf([{ windowBytes: 16 << 20 }, {}], DEFAULTS), { maxBytes: 16 << 20, maxAgeMs: 60_000 }, 'larger than the default')
})

test('resize(): smaller bounds evict at once, oldest first; larger ones keep the next batches longer', async t => {
  const one = chunkBytes(1)
  const budget = new WindowBudget()
  const window = budget.window('t', { maxBytes: 10 * one, maxAgeMs: Infinity })
  for (const o of range(0, 6)) window.append(0, recordsAt([o]))
  t.equal(window.bytes, 6 * one)
  window.resize({ maxBytes: 2 * one, maxAgeMs: Infinity })
  t.equal(window.bytes, 2 * one, 'down to the new bound, with no append')
  t.equal(budget.bytes, 2 * one, 'and the node counts it')
  t.equal(window.start(0), 4n, 'the oldest went')
  t.ok(window.covers(0, 6n))
  t.equal(budget.evictions.topicBytes, 4)
  window.resize({ maxBytes: 5 * one, maxAgeMs: Infinity })
  t.equal(window.start(0), 4n, 'growing brings nothing back')
  for (const o of range(6, 12)) window.append(0, recordsAt([o]))
  t.equal(window.bytes, 5 * one, 'new batches fill the larger bound')
  t.equal(window.start(0), 7n)
  window.resize({ maxBytes: 0, maxAgeMs: Infinity })
  t.equal(window.bytes, 0, '0: everything goes')
  t.equal(budget.bytes, 0)
  t.ok(window.covers(0, 12n), 'the live position is still covered, with nothing to replay')
  t.notOk(window.covers(0, 11n))
})

test('resize(): a shorter age evicts at once what is older than it', async t => {
  let now = 0
  const budget = new WindowBudget({ now: () => now })
  const window = budget.window('t', { maxBytes: Infinity, maxAgeMs: 60_000 })
  window.append(0, recordsAt(range(0, 10)))
  now = 20_000
  window.append(0, recordsAt(range(10, 20)))
  now = 25_000
  window.resize({ maxBytes: Infinity, maxAgeMs: 10_000 })
  t.equal(window.start(0), 10n, 'the batch of 25 s ago went, the one of 5 s ago stays')
  t.equal(budget.evictions.age, 1)
})

test('windowBytes 0 keeps nothing: no bytes, no copy, and the window covers the live position alone', async t => {
  const budget = new WindowBudget()
  const window = budget.window('t', { maxBytes: 0, maxAgeMs: 60_000 })
  window.open(0, 0n)
  window.append(0, recordsAt(range(0, 100)))
  window.append(0, recordsAt(range(100, 150)))
  t.equal(window.bytes, 0)
  t.equal(budget.bytes, 0)
  t.equal(budget.chunks, 0, 'not even queued for the node')
  t.same(budget.evictions, { age: 0, topicBytes: 0, nodeBytes: 0 }, 'nothing kept, so nothing evicted')
  t.equal(window.end(0), 150n)
  t.ok(window.covers(0, 150n))
  t.notOk(window.covers(0, 149n))
  t.equal(window.read(0, 100n, nativeFormat, 'json'), undefined)
  const aged = new WindowBudget().window('t', { maxBytes: 1 << 20, maxAgeMs: 0 })
  aged.append(0, recordsAt(range(0, 10)))
  t.equal(aged.bytes, 0, 'windowMs 0 too')
  t.ok(aged.covers(0, 10n))
})

test('the hub sizes a feed\'s window from its topic\'s products, and a reload resizes it', async t => {
  const { kafka, batch } = fakeKafka()
  const policy = products()
  policy.reload('t', [{ windowBytes: 0 }])
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  hub.sizeWindowsBy(policy.source)
  const live = outlet(t)
  await hub.subscribe(live, 't', TERMS)
  t.same(hub.windows.of('t')?.bounds, { maxBytes: 0, maxAgeMs: 60_000 }, 'the product\'s 0, the node\'s default age')
  await batch(batchOf(0, 50))
  t.equal(hub.windows.bytes, 0, 'none kept')
  const early = outlet(t)
  await hub.subscribe(early, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 20n]]) })
  t.equal(hub.stats.catchUps, 1, 'a resume inside what a window would hold is read from Kafka')
  t.equal(hub.stats.windowReplays, 0)
  hub.remove(early)

  // a reload: another product now serves the topic with a window
  policy.reload('t', [{ windowBytes: 0 }, { windowBytes: 1 << 20, windowMs: 30_000 }])
  t.same(hub.windows.of('t')?.bounds, { maxBytes: 1 << 20, maxAgeMs: 60_000 }, 'the largest of the two: the second\'s bytes, the first\'s (default) age')
  await batch(batchOf(50, 100))
  const resumed = outlet(t)
  await hub.subscribe(resumed, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 60n]]) })
  await new Promise(resolve => setImmediate(resolve))
  t.same(resumed.offsets, range(60, 100), 'served from the window')
  t.equal(hub.stats.catchUps, 1, 'no new reader')
  t.equal(hub.stats.windowReplays, 1)

  // and back to nothing: what the window held goes at once
  t.ok(hub.windows.bytes > 0)
  policy.reload('t', [{ windowBytes: 0 }])
  t.equal(hub.windows.bytes, 0, 'evicted on the reload, before any batch')
  await hub.close()
  t.equal(policy.listeners.size, 0, 'a closed hub stops listening')
})
