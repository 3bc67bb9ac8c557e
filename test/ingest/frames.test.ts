// What a frame becomes in Kafka: binary frames byte for byte, text frames as
// their UTF-8 bytes, keys read with the JSON pointer, the feed's sequence gaps
// counted in /metrics, and a frame over the limit dropped and counted.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { KafkaClient } from '@sluice/kafka'
import { FeedServer, metric, readTopic, startConnector } from './feed-server.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

test('binary and text frames arrive in Kafka byte for byte', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-frames' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-binary')
  await kafka.ensureTopics([{ topic }])
  const subscriber = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'raw', url: server.url, topic }])
  await subscriber

  const frames: Array<{ data: Buffer, binary: boolean }> = [
    // every byte value, including those that are not UTF-8
    { data: Buffer.from(Array.from({ length: 256 }, (_v, i) => i)), binary: true },
    { data: randomBytes(100_000), binary: true },
    { data: Buffer.alloc(0), binary: true },
    { data: Buffer.from([0xff, 0xfe, 0x00, 0x80]), binary: true },
    { data: Buffer.from('zürich 東京 🚀 {"not":"parsed"}', 'utf8'), binary: false },
    { data: Buffer.from('', 'utf8'), binary: false }
  ]
  for (const frame of frames) await server.send(frame.data, frame.binary)
  const records = await readTopic(kafka, topic, frames.length)
  for (const [i, frame] of frames.entries()) {
    t.ok(records[i]!.value?.equals(frame.data), `frame ${i} (${frame.binary ? 'binary' : 'text'}, ${frame.data.length} bytes) is byte for byte the record`)
    t.equal(records[i]!.key, null, `frame ${i}: no key configured, none sent`)
    t.ok(Math.abs(Number(records[i]!.timestamp) - Date.now()) < 60_000, `frame ${i}: the record time is the arrival time`)
  }
  t.equal(ingest.feed('raw').stats.received, frames.length)
})

test('keys from the JSON pointer; a sequence gap is counted in /metrics', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-keys' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-keys')
  await kafka.ensureTopics([{ topic }])
  const subscriber = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'keyed', url: server.url, topic, key: '/data/sym', sequence: '/u' }])
  await subscriber

  const messages: unknown[] = [
    { u: 1, data: { sym: 'BTC-USD' } },
    { u: 2, data: { sym: 'ETH-USD' } },
    { u: 3, data: { sym: 42 } },
    // 4 never arrives: one gap, one missing
    { u: 5, data: { sym: 'BTC-USD' } },
    { u: 6, data: {} },
    // 7 and 8 never arrive: a second gap, two more missing
    { u: '9', data: { sym: 'SOL-USD' } }
  ]
  for (const m of messages) await server.send(JSON.stringify(m))
  await server.send('not json')
  await server.send(Buffer.from([1, 2, 3]), true)
  const records = await readTopic(kafka, topic, messages.length + 2)
  t.same(records.map(r => r.key?.toString() ?? null), ['BTC-USD', 'ETH-USD', '42', 'BTC-USD', null, 'SOL-USD', null, null], 'keys read with the pointer; null where it finds nothing')
  t.same(records.slice(0, messages.length).map(r => JSON.parse(r.value!.toString())), messages, 'values untouched')

  const text = await ingest.metrics()
  t.equal(metric(text, 'sluice_ingest_sequence_gaps_total', { feed: 'keyed' }), 2, 'two gaps')
  t.equal(metric(text, 'sluice_ingest_sequence_missing_total', { feed: 'keyed' }), 3, 'three numbers missing')
  t.equal(metric(text, 'sluice_ingest_key_missing_total', { feed: 'keyed' }), 3, 'an empty object, a non-JSON text and a binary frame have no key')
  t.equal(metric(text, 'sluice_ingest_unparsable_total', { feed: 'keyed' }), 1, 'the text that is not JSON')
  t.equal(metric(text, 'sluice_ingest_dropped_total', { feed: 'keyed', reason: 'buffer_full' }), 0, 'nothing dropped: a gap is the feed\'s, not ours')
  t.equal(metric(text, 'sluice_ingest_received_total', { feed: 'keyed' }), 8)
  const since = metric(text, 'sluice_ingest_ms_since_last_message', { feed: 'keyed' })!
  t.ok(since >= 0 && since < 60_000, `ms since the last message: ${since}`)
  t.equal(metric(text, 'sluice_ingest_queue_capacity', { feed: 'keyed' }), 10_000, 'the default capacity')
})

test('a frame over maxMessageBytes is dropped and counted; the feed reconnects and carries on', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-large' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-large')
  await kafka.ensureTopics([{ topic }])
  const first = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'large', url: server.url, topic, maxMessageBytes: 1024, reconnect: { baseMs: 10, maxMs: 50 } }])
  const feed = ingest.feed('large')
  await first
  await server.send('before')
  await eventually(() => feed.stats.produced === 1, 10_000, 'the first frame produced')
  const second = server.nextSubscriber()
  await server.send(Buffer.alloc(1025, 7), true)
  await second
  await server.send('after')
  const records = await readTopic(kafka, topic, 2)
  t.same(records.map(r => r.value!.toString()), ['before', 'after'])
  const text = await ingest.metrics()
  t.equal(metric(text, 'sluice_ingest_dropped_total', { feed: 'large', reason: 'too_large' }), 1, 'the oversized frame is counted')
  t.equal(metric(text, 'sluice_ingest_reconnects_total', { feed: 'large' }), 1)
  t.match(ingest.logs(), '"code":"SLUICE_INGEST_FRAME_TOO_LARGE"', 'and logged with its code')
})

test('a record larger than the whole buffer (frame + key + overhead) is dropped as too large; the next ones flow', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-larger-than-buffer' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-larger-than-buffer')
  await kafka.ensureTopics([{ topic }])
  const subscriber = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'tight', url: server.url, topic, maxMessageBytes: 1024, buffer: { maxBytes: 1024 } }])
  const feed = ingest.feed('tight')
  await subscriber
  // the first frame fits the frame limit, not the buffer: it is dropped while the buffer is empty
  await server.send(Buffer.alloc(1000, 1), true)
  await eventually(() => feed.stats.droppedTooLarge === 1, 10_000, 'the record dropped')
  await server.send('small')
  const records = await readTopic(kafka, topic, 1)
  t.same(records.map(r => r.value!.toString()), ['small'], 'the produce loop still runs after a drop on an empty buffer')
  t.equal(metric(await ingest.metrics(), 'sluice_ingest_dropped_total', { feed: 'tight', reason: 'too_large' }), 1)
  t.equal(feed.connected, true, 'no reconnect needed: only the record was refused')
})
