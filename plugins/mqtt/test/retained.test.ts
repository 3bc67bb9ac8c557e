// RetainedStore (src/retained.ts) over a Kafka stand-in that hands it the
// batches a reader would: when the set counts as read, the bound and its
// accounting, tombstones, our own writes read back. The real topic, reader and
// gateway are test/mqtt/retained.test.ts's.
import { test } from 'tap'
import type { ConsumedRecord, ReaderOptions, RecordBatch } from '@sluice/kafka'
import type { Logger } from '@sluice/protocol/logger'
import { RetainedStore, ENTRY_OVERHEAD } from '../src/retained.ts'

const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }

/** A stand-in with one partition whose log is `log` at start; `feed` hands the store a batch. */
function fakeKafka (log: Array<[string, string | null]>) {
  let options: ReaderOptions | undefined
  let next = log.length
  const kafka = {
    ensureTopics: async () => {},
    topicOffsets: async () => [{ partition: 0, low: '0', high: String(log.length) }],
    reader: (o: ReaderOptions) => {
      options = o
      return { topic: o.topic, start: async () => new Map([[0, 0n]]), stop: async () => {}, pause () {}, resume () {}, seek () {} }
    },
    produce: async () => ({ topic: 't', partition: 0, offset: String(next++) })
  }
  function feed (records: Array<[string, string | null, number]>): void {
    const batch: RecordBatch = {
      topic: 't',
      partition: 0,
      highWatermark: String(next),
      records: records.map(([key, value, offset]) => ({ topic: 't', partition: 0, offset: String(offset), timestamp: '0', key: Buffer.from(key), value: value === null ? null : Buffer.from(value), headers: {} }) as ConsumedRecord)
    }
    options!.onBatch(batch)
  }
  return { kafka: kafka as never, feed }
}

const tick = () => new Promise(resolve => setImmediate(resolve))
const names = (store: RetainedStore, filter: string) => [...store.matching(filter.split('/'))].map(m => `${m.name}=${m.payload.toString()}`)

test('the set counts as read once the reader passed the end offset of the start; tombstones delete', async t => {
  const { kafka, feed } = fakeKafka([['a/1', 'x'], ['a/2', 'y'], ['a/1', null]])
  const store = new RetainedStore({ kafka, topic: 't', log: silent })
  store.start()
  await tick()
  t.notOk(store.loaded, 'not before the records of the start')
  feed([['a/1', 'x', 0], ['a/2', 'y', 1]])
  t.notOk(store.loaded, 'not before the last offset')
  feed([['a/1', null, 2]])
  t.ok(store.loaded)
  t.ok(await store.ready(10))
  t.same(names(store, 'a/+'), ['a/2=y'], 'a/1 deleted by its tombstone')
  t.equal(store.bytes, 3 + 1 + ENTRY_OVERHEAD)
  await store.stop()
})

test('an empty topic is read at once', async t => {
  const { kafka } = fakeKafka([])
  const store = new RetainedStore({ kafka, topic: 't', log: silent })
  store.start()
  await tick()
  t.ok(store.loaded)
  await store.stop()
})

test('a start whose end offset never comes (compacted away) counts as read after 2 s without records', async t => {
  const { kafka, feed } = fakeKafka([['a/1', 'x'], ['a/2', null]])
  const store = new RetainedStore({ kafka, topic: 't', log: silent })
  store.start()
  await tick()
  feed([['a/1', 'x', 0]])
  t.notOk(store.loaded)
  t.ok(await store.ready(4000), 'read after the quiet period')
  t.same(names(store, '#'), ['a/1=x'])
  await store.stop()
})

test('the bound: a new name past it is not admitted, a replacement that does not grow past it is; a record past it read from Kafka is not held', async t => {
  const { kafka, feed } = fakeKafka([])
  const one = 3 + 10 + ENTRY_OVERHEAD
  const store = new RetainedStore({ kafka, topic: 't', maxBytes: one + 5, log: silent })
  store.start()
  await tick()
  t.ok(store.admits('a/1', Buffer.alloc(10)))
  await store.put('a/1', Buffer.alloc(10))
  t.equal(store.bytes, one)
  t.notOk(store.admits('a/2', Buffer.alloc(10)), 'a second name does not fit')
  t.ok(store.admits('a/1', Buffer.alloc(15)), 'growing the kept one within the bound')
  t.notOk(store.admits('a/1', Buffer.alloc(16)), 'growing it past the bound')
  t.ok(store.admits('a/2', Buffer.alloc(0)), 'a deletion always')
  // our own write read back changes nothing; another node's past the bound is not held
  feed([['a/1', '0123456789', 0], ['a/2', '0123456789', 1]])
  t.equal(store.bytes, one)
  t.same(names(store, 'a/+').map(n => n.split('=')[0]), ['a/1'])
  await store.put('a/1', Buffer.alloc(0))
  t.equal(store.bytes, 0, 'deleted by our tombstone')
  t.same(names(store, '#'), [])
  await store.stop()
})

test('a name this node deleted does not come back when its reader, behind, reads the name\'s older records', async t => {
  const { kafka, feed } = fakeKafka([])
  const store = new RetainedStore({ kafka, topic: 't', log: silent })
  store.start()
  await tick()
  // written, replaced and deleted on this node (offsets 0, 1, 2), each acked before the reader got any
  await store.put('a/1', Buffer.from('big'))
  await store.put('a/1', Buffer.from('small'))
  await store.put('a/1', Buffer.alloc(0))
  t.same(names(store, '#'), [], 'deleted')
  // the reader then gets the first two records in one batch, the tombstone in the next
  feed([['a/1', 'big', 0], ['a/1', 'small', 1]])
  t.same(names(store, '#'), [], 'still deleted: the records before our tombstone are older than the delete')
  t.equal(store.bytes, 0, 'and they count nothing against the bound')
  feed([['a/1', null, 2]])
  t.same(names(store, '#'), [])
  // past the tombstone the name is like any other again: another node's later record is held
  feed([['a/1', 'again', 3]])
  t.same(names(store, '#'), ['a/1=again'])
  // a name deleted and written again here: the write's offset guards it
  await store.put('b/1', Buffer.from('one'))
  await store.put('b/1', Buffer.alloc(0))
  await store.put('b/1', Buffer.from('two'))
  feed([['b/1', 'one', 4], ['b/1', null, 5]])
  t.same(names(store, 'b/#'), ['b/1=two'])
  await store.stop()
})

test('$-names are not matched by a leading wildcard [MQTT-4.7.2-1]', async t => {
  const { kafka, feed } = fakeKafka([])
  const store = new RetainedStore({ kafka, topic: 't', log: silent })
  store.start()
  await tick()
  feed([['$SYS/x', 'x', 0], ['s/x', 'y', 1]])
  t.same(names(store, '#'), ['s/x=y'])
  t.same(names(store, '$SYS/#'), ['$SYS/x=x'])
  await store.stop()
})
