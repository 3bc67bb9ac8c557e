// Kafka stopped for 30 s while two feeds keep streaming: one buffer absorbs its
// feed within its bound; the other feed, larger than its buffer, is paused
// (backpressure) instead of overflowing. When the broker returns, everything
// buffered reaches Kafka, in order, and nothing was dropped. This suite stops
// Kafka, so it runs its own broker.
import { test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { KafkaBroker } from '@sluice/stack'
import { FeedServer, metric, readTopic, seqs, startConnector } from './feed-server.ts'
import { eventually, unique } from '../helpers.ts'

// the outage: long enough for kafkajs to give up many produce requests in a row
const OUTAGE_MS = 30_000

test('Kafka stopped for 30 s: the buffer absorbs within its bound, then everything reaches Kafka', async t => {
  const broker = new KafkaBroker()
  await broker.start()
  t.teardown(() => broker.destroy())
  const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'test-ingest-outage' })
  t.teardown(() => kafka.close())
  const absorbTopic = unique('ingest-absorb')
  const pauseTopic = unique('ingest-pause')
  await kafka.ensureTopics([{ topic: absorbTopic }, { topic: pauseTopic }])

  const absorbServer = new FeedServer()
  const pauseServer = new FeedServer()
  await Promise.all([absorbServer.start(), pauseServer.start()])
  t.teardown(() => Promise.all([absorbServer.close(), pauseServer.close()]))
  const absorbWs = absorbServer.nextSubscriber()
  const pauseWs = pauseServer.nextSubscriber()
  const ingest = await startConnector(t, [
    // 1500 messages into a buffer of 2000, never paused: the buffer alone absorbs them
    { name: 'absorb', url: absorbServer.url, topic: absorbTopic, buffer: { capacity: 2000, pause: false } },
    // 3000 messages against a buffer of 1000: reading pauses at half the buffer
    { name: 'pause', url: pauseServer.url, topic: pauseTopic, buffer: { capacity: 1000, pause: true }, batch: { maxRecords: 100 } }
  ], { brokers: broker.brokers })
  const absorb = ingest.feed('absorb')
  const pause = ingest.feed('pause')
  const [aws, pws] = await Promise.all([absorbWs, pauseWs])

  // both produce before the outage
  const message = (i: number) => JSON.stringify({ seq: i })
  await absorbServer.send(message(0))
  await pauseServer.send(message(0))
  await eventually(() => absorb.stats.produced === 1 && pause.stats.produced === 1, 30_000, 'both feeds produce')

  await broker.stop()
  const stoppedAt = Date.now()
  await absorbServer.burst(aws, 1500, 1000, i => message(1 + i))
  // not awaited: while the connector reads nothing, the feed's writes wait in its socket
  const pauseBurst = pauseServer.burst(pws, 3000, 1000, i => message(1 + i))
  pauseBurst.catch(() => {})

  await eventually(() => absorb.stats.received === 1501, 20_000, 'the absorbing feed received its 1500')
  await eventually(() => pause.paused, 20_000, 'the other feed paused')
  await eventually(() => absorb.stats.produceErrors > 0, 20_000, 'Kafka refuses produce requests')
  const readyDuring = await ingest.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(readyDuring.statusCode, 503, 'not ready while Kafka is down')

  // hold the outage for its full length, watching both buffers
  let maxAbsorb = 0
  let maxPause = 0
  while (Date.now() - stoppedAt < OUTAGE_MS) {
    maxAbsorb = Math.max(maxAbsorb, absorb.queueSize)
    maxPause = Math.max(maxPause, pause.queueSize)
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  const text = await ingest.metrics()
  t.equal(absorb.queueSize + absorb.inFlight, 1500, 'the absorbing buffer holds everything received during the outage')
  t.ok(maxAbsorb <= 2000, `its queue stayed within its capacity (max ${maxAbsorb})`)
  t.ok(maxPause <= 1000, `the paused feed's queue stayed within its capacity (max ${maxPause})`)
  t.ok(pause.stats.received < 3001, `pausing held the feed back: ${pause.stats.received - 1} of 3000 read so far`)
  t.equal(metric(text, 'sluice_ingest_paused', { feed: 'pause' }), 1, '/metrics shows the pause')
  t.equal(metric(text, 'sluice_ingest_dropped_total', { feed: 'absorb', reason: 'buffer_full' }), 0)
  t.equal(metric(text, 'sluice_ingest_dropped_total', { feed: 'pause', reason: 'buffer_full' }), 0)
  t.ok((metric(text, 'sluice_ingest_produce_errors_total', { feed: 'absorb' }) ?? 0) > 0, 'produce failures are counted')

  await broker.start()
  await eventually(() => absorb.stats.produced === 1501 && pause.stats.produced === 3001, 60_000, 'everything buffered reaches Kafka')
  await pauseBurst
  t.same(seqs(await readTopic(kafka, absorbTopic, 1501)), Array.from({ length: 1501 }, (_v, i) => i), 'absorbed: all, in order, once')
  t.same(seqs(await readTopic(kafka, pauseTopic, 3001)), Array.from({ length: 3001 }, (_v, i) => i), 'paused: all, in order, once')
  t.equal(pause.paused, false, 'reading resumed')
  t.equal(pause.stats.droppedOverflow + absorb.stats.droppedOverflow, 0, 'nothing dropped')
  t.equal(absorb.lastProduceError, undefined, 'the produce error clears once Kafka acknowledges')
})
