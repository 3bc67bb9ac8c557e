// The hub serves a resume whose gap its feed's window covers from memory: no
// catch-up reader, the gap exactly, then the live feed with no gap and no
// duplicate; what does not fit the socket waits for it, and a part the window
// lets go meanwhile is read from Kafka. Hand-made batches (fake-kafka.ts); the
// suite on the broker is test/stream/resume-window.test.ts.
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

/** a socket whose queue loses `drainBytes` every 5 ms, as a reading client's would (0: a queue that is never full) */
function socket (t: Test, maxQueueBytes = 1 << 20, drainBytes = 0) {
  let queue = 0
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
      for (const m of frame.toString('latin1').matchAll(/"offset":"(\d+)"/g)) offsets.push(Number(m[1]))
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
  return { outlet, offsets, lagged }
}

async function until (check: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what()}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

test('a resume inside the window is written from memory, the gap exactly, then live: no catch-up reader', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  await batch(batchOf(0, 50))
  await batch(batchOf(50, 100))
  const resumed = socket(t)
  const start = await hub.subscribe(resumed.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 30n]]) })
  t.same(start, new Map([[0, 30n]]), 'it starts where its cursor says')
  t.same(resumed.offsets, [], 'nothing before subscribe() resolved: the subscribed frame goes first')
  await turn()
  t.same(resumed.offsets, range(30, 100), 'the gap, on the next turn')
  await batch(batchOf(100, 110))
  t.same(resumed.offsets, range(30, 110), 'then the live feed, no gap, no duplicate')
  t.equal(hub.stats.catchUps, 0, 'no reader was started')
  t.equal(hub.stats.windowReplays, 1)
  t.equal(hub.lag()[0]?.catchUp, 0)
})

test('a live batch that comes before the replay\'s turn is replayed too, not lost nor doubled', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  await batch(batchOf(0, 20))
  const resumed = socket(t)
  await hub.subscribe(resumed.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 5n]]) })
  await batch(batchOf(20, 30))
  t.same(resumed.offsets, [], 'the live feed skips a socket being replayed')
  await turn()
  t.same(resumed.offsets, range(5, 30))
  await batch(batchOf(30, 31))
  t.same(resumed.offsets, range(5, 31))
})

test('a resume from below the window is read from Kafka, as before', async t => {
  const { kafka, batch, batchTo } = fakeKafka('10')
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  await batch(batchOf(10, 20))
  const resumed = socket(t)
  await hub.subscribe(resumed.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 5n]]) })
  t.equal(hub.stats.catchUps, 1, 'the window starts at 10: a catch-up reader')
  t.equal(hub.stats.windowReplays, 0)
  await turn()
  await batchTo('sluice-catchup.', batchOf(5, 20))
  await batch(batchOf(20, 25))
  t.same(resumed.offsets, range(5, 25))
})

test('a replay larger than the socket\'s queue waits for room, and hears no lagging', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  for (let i = 0; i < 10; i++) await batch(batchOf(i * 20, i * 20 + 20))
  // about 12 frames of ~130 bytes fit; 2,000 bytes leave every 5 ms
  const slow = socket(t, 1600, 2000)
  await hub.subscribe(slow.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 0n]]) })
  await turn()
  t.ok(slow.offsets.length < 200, `not all at once (${slow.offsets.length})`)
  const more = (async () => { for (let i = 10; i < 15; i++) { await batch(batchOf(i * 20, i * 20 + 20)); await new Promise(resolve => setTimeout(resolve, 3)) } })()
  await more
  await until(() => slow.offsets.length >= 300, () => `${slow.offsets.length} of 300`)
  t.same(slow.offsets, range(0, 300), 'every record once, in order, what came meanwhile included')
  t.same(slow.lagged, [])
  t.equal(hub.stats.catchUps, 0)
})

test('the window lets the socket\'s part go while it waits: the rest is read from Kafka, no gap, no duplicate', async t => {
  // what a batch of 10 weighs in a window, with the frames its live dispatch built (a hub of its own)
  const probe = fakeKafka()
  const measure = new Hub({ kafka: probe.kafka, nodeId: 'probe', graceMs: 0 })
  await measure.subscribe(socket(t).outlet, 't', TERMS)
  await probe.batch(batchOf(0, 10))
  const perBatch = measure.windows.bytes
  await measure.close()
  t.ok(perBatch > 0, `a batch of 10 weighs ${perBatch} bytes`)
  const { kafka, batch, batchTo } = fakeKafka()
  // a window of four such batches: 40 records
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0, window: { maxBytes: 4 * perBatch } })
  t.teardown(() => hub.close())
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  await batch(batchOf(0, 10))
  await batch(batchOf(10, 20))
  // room for about four frames; its client reads nothing until the test says, then everything
  let reading = false
  const stuck = socket(t, 600, 0)
  let queue = 0
  const waiters = new Set<() => void>()
  Object.assign(stuck.outlet, {
    queuedBytes: () => reading ? 0 : queue,
    write (frame: Buffer) {
      for (const m of frame.toString('latin1').matchAll(/"offset":"(\d+)"/g)) stuck.offsets.push(Number(m[1]))
      queue += frame.length
    },
    drained: (bytes = 300) => new Promise<void>(resolve => {
      const wake = () => { if (reading || queue <= bytes) { waiters.delete(wake); resolve() } }
      waiters.add(wake)
      wake()
    })
  })
  await hub.subscribe(stuck.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 0n]]) })
  await turn()
  const first = stuck.offsets.length
  t.ok(first > 0 && first < 10, `a few written (${first}), then it waits`)
  // meanwhile the topic moves on and its window lets records 0-19 go
  for (let i = 1; i < 8; i++) await batch(batchOf(i * 10 + 10, i * 10 + 20))
  t.equal(hub.stats.catchUps, 0, 'no reader while it waits')
  reading = true
  for (const wake of [...waiters]) wake()
  await until(() => hub.stats.catchUps === 1, () => `catch-ups ${hub.stats.catchUps}`)
  await turn()
  await batchTo('sluice-catchup.', batchOf(first, 90))
  await batch(batchOf(90, 95))
  t.same(stuck.offsets, range(0, 95), 'what the window had, then Kafka, then live')
  t.same(stuck.lagged, [])
})

test('a replay waiting for the socket when the hub closes ends there: no Kafka reader, no lagging', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  const live = socket(t)
  await hub.subscribe(live.outlet, 't', TERMS)
  for (let i = 0; i < 5; i++) await batch(batchOf(i * 20, i * 20 + 20))
  // room for about four frames, drained slowly: the replay waits
  const slow = socket(t, 600, 100)
  await hub.subscribe(slow.outlet, 't', TERMS, { kind: 'cursor', positions: new Map([[0, 0n]]) })
  await turn()
  t.ok(slow.offsets.length < 100, 'waiting for room')
  await hub.close()
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(hub.stats.catchUps, 0)
  t.same(slow.lagged, [])
})
