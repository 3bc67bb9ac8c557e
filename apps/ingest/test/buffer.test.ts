import { test } from 'tap'
import { FeedBuffer } from '../src/buffer.ts'

interface Item { id: number, bytes: number }
const item = (id: number, bytes = 10): Item => ({ id, bytes })
const ids = (items: Item[]) => items.map(i => i.id)

test('drop-newest keeps the first records and counts every refused one', async t => {
  const buffer = new FeedBuffer<Item>({ capacity: 3, maxBytes: 1000, overflow: 'drop-newest' })
  const dropped = [1, 2, 3, 4, 5].map(i => buffer.push(item(i)))
  t.same(dropped, [0, 0, 0, 1, 1], 'each push says what it dropped')
  t.equal(buffer.dropped, 2)
  t.equal(buffer.size, 3)
  t.same(ids(buffer.take(10, 1000)), [1, 2, 3])
})

test('drop-oldest keeps the latest records and counts every evicted one', async t => {
  const buffer = new FeedBuffer<Item>({ capacity: 3, maxBytes: 1000, overflow: 'drop-oldest' })
  for (let i = 1; i <= 5; i++) buffer.push(item(i))
  t.equal(buffer.dropped, 2)
  t.same(ids(buffer.take(10, 1000)), [3, 4, 5])
})

test('the byte bound applies as the count bound does, under both policies', async t => {
  const newest = new FeedBuffer<Item>({ capacity: 100, maxBytes: 100, overflow: 'drop-newest' })
  newest.push(item(1, 40))
  newest.push(item(2, 40))
  t.equal(newest.push(item(3, 40)), 1, 'the newest does not fit')
  t.equal(newest.bytes, 80)

  const oldest = new FeedBuffer<Item>({ capacity: 100, maxBytes: 100, overflow: 'drop-oldest' })
  oldest.push(item(1, 40))
  oldest.push(item(2, 40))
  t.equal(oldest.push(item(3, 90)), 2, 'a large record evicts as many old ones as it needs')
  t.same(ids(oldest.take(10, 1000)), [3])
  t.equal(oldest.dropped, 2)
})

test('a record larger than the whole buffer is dropped, never stored', async t => {
  for (const overflow of ['drop-newest', 'drop-oldest'] as const) {
    const buffer = new FeedBuffer<Item>({ capacity: 10, maxBytes: 100, overflow })
    buffer.push(item(1, 50))
    t.equal(buffer.push(item(2, 101)), 1, overflow)
    t.same(ids(buffer.take(10, 1000)), [1], `${overflow}: the buffered record is kept`)
  }
})

test('take honours the record and byte limits but always takes one', async t => {
  const buffer = new FeedBuffer<Item>({ capacity: 10, maxBytes: 10_000, overflow: 'drop-newest' })
  for (let i = 1; i <= 6; i++) buffer.push(item(i, 100))
  t.same(ids(buffer.take(2, 10_000)), [1, 2], 'record limit')
  t.same(ids(buffer.take(10, 250)), [3, 4], 'byte limit')
  t.same(ids(buffer.take(10, 50)), [5], 'one record even over the byte limit')
  t.equal(buffer.size, 1)
  t.equal(buffer.bytes, 100)
})

test('the ring keeps order across growth and wrap-around; counts stay exact', async t => {
  const buffer = new FeedBuffer<Item>({ capacity: 5000, maxBytes: 1e9, overflow: 'drop-oldest' })
  let next = 0
  const out: number[] = []
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 700; i++) buffer.push(item(next++))
    out.push(...ids(buffer.take(300, 1e9)))
  }
  out.push(...ids(buffer.take(1e9, 1e9)))
  t.equal(buffer.dropped + out.length, next, 'every record is either delivered or counted as dropped')
  t.ok(out.every((v, i) => i === 0 || v > out[i - 1]!), 'order is kept')
  t.equal(out[out.length - 1], next - 1, 'drop-oldest keeps the newest')
})

test('bad bounds are refused', async t => {
  t.throws(() => new FeedBuffer<Item>({ capacity: 0, maxBytes: 10, overflow: 'drop-newest' }), RangeError)
  t.throws(() => new FeedBuffer<Item>({ capacity: 1, maxBytes: 0, overflow: 'drop-newest' }), RangeError)
})
