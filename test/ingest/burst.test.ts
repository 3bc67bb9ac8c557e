// A burst of 50 000 messages in one second. With a buffer that suffices, all
// reach Kafka in order; with one that does not, the drop count is exact: every
// message is either in Kafka or counted as dropped, under both overflow policies.
import { test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { FeedServer, metric, readTopic, seqs, startConnector } from './feed-server.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const BURST = 50_000
const BURST_MS = 1000
// ~70 bytes, the size of a compact trade message
const message = (i: number) => JSON.stringify({ seq: i, sym: 'BTC-USD', px: 97_000 + (i % 100), qty: 0.01 })

async function setup (t: { teardown (fn: () => unknown): void }, feed: Record<string, unknown>) {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-burst' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-burst')
  await kafka.ensureTopics([{ topic }])
  const subscriber = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'burst', url: server.url, topic, ...feed }])
  return { server, kafka, topic, ingest, feed: ingest.feed('burst'), ws: await subscriber }
}

test('a buffer that suffices: all 50 000 reach Kafka, in order', async t => {
  // the buffer alone must absorb the burst: pausing the socket is off
  const { server, kafka, topic, ingest, feed, ws } = await setup(t, { buffer: { capacity: BURST, pause: false } })
  await server.burst(ws, BURST, BURST_MS, message)
  const records = await readTopic(kafka, topic, BURST, 60_000)
  t.equal(records.length, BURST)
  const got = seqs(records)
  t.ok(got.every((v, i) => v === i), 'every message once, in the order sent')
  const metrics = await ingest.metrics()
  t.equal(metric(metrics, 'sluice_ingest_received_total', { feed: 'burst' }), BURST)
  t.equal(metric(metrics, 'sluice_ingest_produced_total', { feed: 'burst' }), BURST)
  t.equal(metric(metrics, 'sluice_ingest_dropped_total', { feed: 'burst', reason: 'buffer_full' }), 0)
  t.equal(feed.stats.pauses, 0, 'never paused: the buffer sufficed')
})

for (const overflow of ['drop-newest', 'drop-oldest'] as const) {
  test(`a buffer that does not suffice (${overflow}): the drop count is exact`, async t => {
    // 500 records and 10 per produce request: Kafka drains far slower than 50 000/s arrive
    const capacity = 500
    const { server, kafka, topic, ingest, feed, ws } = await setup(t, { buffer: { capacity, overflow, pause: false }, batch: { maxRecords: 10 }, sequence: '/seq' })
    await server.burst(ws, BURST, BURST_MS, message)
    await eventually(() => feed.stats.received === BURST && feed.queueSize === 0 && feed.inFlight === 0, 60_000, 'the burst received and the buffer drained')
    const { produced, droppedOverflow } = feed.stats
    t.ok(droppedOverflow > 0, `the buffer overflowed (${droppedOverflow} dropped)`)
    t.equal(produced + droppedOverflow, BURST, 'every message is produced or counted as dropped')

    const records = await readTopic(kafka, topic, produced, 60_000)
    const got = seqs(records)
    t.equal(got.length, produced, 'Kafka holds exactly the produced records')
    t.ok(got.every((v, i) => i === 0 || v > got[i - 1]!), 'in order, no duplicates')
    t.equal(BURST - new Set(got).size, droppedOverflow, 'the messages missing from Kafka are exactly the dropped count')
    if (overflow === 'drop-newest') t.equal(got[0], 0, 'drop-newest keeps the first message')
    else t.equal(got[got.length - 1], BURST - 1, 'drop-oldest keeps the last message')

    const metrics = await ingest.metrics()
    t.equal(metric(metrics, 'sluice_ingest_dropped_total', { feed: 'burst', reason: 'buffer_full' }), droppedOverflow, '/metrics reports the same count')
    t.equal(metric(metrics, 'sluice_ingest_queue_capacity', { feed: 'burst' }), capacity)
    // the sequence is read as frames arrive: our own drops are never mistaken for the feed's gaps
    t.equal(metric(metrics, 'sluice_ingest_sequence_gaps_total', { feed: 'burst' }), 0, 'the feed had no gap')
    t.match(ingest.logs(), '"msg":"feed buffer full: records dropped"', 'the drops are logged')
  })
}
