// SessionStore (src/persistence.ts) stopped while it is still opening, over a
// Kafka stand-in whose answers the test releases: a node that closes while
// Kafka is slow to answer makes no reader afterwards and leaves none running,
// and a stopped store does not start again. The real topic and gateway are
// test/mqtt/persistent*.test.ts's.
import { test } from 'tap'
import type { ReaderOptions } from '@sluice/kafka'
import type { Logger } from '@sluice/protocol/logger'
import { SessionStore } from '../src/persistence.ts'

const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>(_resolve => { resolve = _resolve })
  return { promise, resolve }
}

function slowKafka () {
  const topicReady = deferred()
  const counts = { readers: 0, started: 0, stopped: 0, ensured: 0 }
  const kafka = {
    ensureTopics: async () => { counts.ensured++; await topicReady.promise },
    topicOffsets: async () => [{ partition: 0, low: '0', high: '0' }],
    reader: (o: ReaderOptions) => {
      counts.readers++
      return { topic: o.topic, start: async () => { counts.started++; return new Map([[0, 0n]]) }, stop: async () => { counts.stopped++ }, pause () {}, resume () {}, seek () {} }
    },
    produce: async () => ({ topic: 't', partition: 0, offset: '0' })
  }
  return { kafka, counts, release: topicReady.resolve }
}

test('stopped while the topic is being created: no reader is made afterwards', async t => {
  const { kafka, counts, release } = slowKafka()
  const store = new SessionStore({ kafka: kafka as never, topic: 'sessions', log: silent })
  store.start()
  await new Promise(resolve => setImmediate(resolve))
  t.equal(counts.ensured, 1, 'opening: the topic is being created')
  await store.stop()
  release()
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(counts.readers, 0, 'no reader made after stop()')
})

test('a stopped store does not start again; a started one starts once', async t => {
  const { kafka, counts, release } = slowKafka()
  release()
  const store = new SessionStore({ kafka: kafka as never, topic: 'sessions', log: silent })
  store.start()
  store.start()
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(counts.readers, 1, 'one reader for two start() calls')
  await store.stop()
  t.equal(counts.stopped, 1, 'stopped with the store')
  store.start()
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(counts.readers, 1, 'start() after stop() does nothing')
})

test('changes are written flushMs after the first of them, in one flush; with none, no flush timer runs', async t => {
  const { kafka, release } = slowKafka()
  release()
  const produced: string[] = []
  Object.assign(kafka, { produce: async (_topic: string, record: { key: string }) => { produced.push(record.key); return { topic: 't', partition: 0, offset: String(produced.length) } } })
  const state = { owner: 'o' } as never
  const store = new SessionStore({ kafka: kafka as never, topic: 'sessions', log: silent, flushMs: 100 })
  store.changed('early', () => state)
  store.start()
  t.teardown(() => store.stop())
  // a change made before the start goes with the first flush
  await new Promise(resolve => setTimeout(resolve, 180))
  t.same(produced, ['early'], 'written one flush after the start')
  // idle: nothing to write, no timer armed. Every timer the store arms is seen here: the flush's is the only one under a second
  const armed: number[] = []
  const real = globalThis.setTimeout
  globalThis.setTimeout = ((fn: () => void, ms?: number) => { armed.push(ms ?? 0); return real(fn, ms) }) as typeof setTimeout
  try {
    await new Promise(resolve => real(resolve, 350))
    t.same(armed, [], 'no change: nothing armed in 350 ms')
    store.changed('a', () => state)
    store.changed('b', () => state)
    store.changed('a', () => state)
    t.same(armed, [100], 'the first change arms one flush; the next ones join it')
  } finally {
    globalThis.setTimeout = real
  }
  await new Promise(resolve => setTimeout(resolve, 180))
  t.same(produced, ['early', 'a', 'b'], 'one flush wrote each changed session once')
  store.changed('c', () => state)
  await new Promise(resolve => setTimeout(resolve, 180))
  t.same(produced, ['early', 'a', 'b', 'c'], 'a change after a flush arms the next')
})
