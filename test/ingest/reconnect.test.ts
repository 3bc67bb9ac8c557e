// The feed drops the connection abruptly and refuses reconnects for a while:
// the connector backs off exponentially with jitter, resumes, and loses
// nothing it had received. Also: giving up after the configured attempts, and
// the connection timeout.
import { test } from 'tap'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { KafkaClient } from '@sluice/kafka'
import { freePort } from '@sluice/stack'
import { FeedServer, metric, readTopic, seqs, startConnector } from './feed-server.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const BASE_MS = 40
const MAX_MS = 400
const JITTER = 0.5

test('abrupt drop, refused reconnects: backoff with jitter, then resume with nothing lost', async t => {
  const server = new FeedServer({ subscription: 'subscribe' })
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-reconnect' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-reconnect')
  await kafka.ensureTopics([{ topic }])

  const first = server.nextSubscriber()
  const ingest = await startConnector(t, [{
    name: 'flaky',
    url: server.url,
    topic,
    subscribe: 'subscribe',
    sequence: '/seq',
    reconnect: { baseMs: BASE_MS, maxMs: MAX_MS, jitter: JITTER },
    // two records per produce request: the buffer still holds records when the connection drops
    batch: { maxRecords: 2 }
  }])
  const feed = ingest.feed('flaky')
  const backoffs: Array<{ attempt: number, delayMs: number }> = []
  feed.on('backoff', event => backoffs.push(event))

  // 1000 messages, all received, then the connection is cut without a close frame
  const ws = await first
  await server.burst(ws, 1000, 100, i => JSON.stringify({ seq: i }))
  await eventually(() => feed.stats.received === 1000, 15_000, 'the first 1000 received')
  const refusals = 5
  server.refuse(refusals)
  const second = server.nextSubscriber()
  const dropAt = server.attempts.length
  const pendingAtDrop = feed.queueSize + feed.inFlight
  server.dropAll()
  t.ok(pendingAtDrop > 0, `${pendingAtDrop} received records were not yet in Kafka when the connection dropped`)

  const resumed = await second
  t.equal(feed.stats.reconnects, refusals + 1, 'one reconnect per refusal, and the one that succeeded')
  t.same(backoffs.map(b => b.attempt), [1, 2, 3, 4, 5, 6], 'the attempt count grows while refused')
  for (const { attempt, delayMs } of backoffs) {
    const ceiling = Math.min(BASE_MS * 2 ** (attempt - 1), MAX_MS)
    t.ok(delayMs <= ceiling && delayMs >= ceiling * (1 - JITTER), `attempt ${attempt}: ${delayMs} ms within [${ceiling * (1 - JITTER)}, ${ceiling}]`)
  }
  t.ok(backoffs.some(b => b.delayMs !== Math.min(BASE_MS * 2 ** (b.attempt - 1), MAX_MS)), 'jitter: not every delay sits on its ceiling')
  // the connector really waited: attempts reached the server no sooner than their delays (timers never fire early)
  const seen = server.attempts.slice(dropAt)
  t.equal(seen.length, refusals + 1)
  for (let i = 1; i < seen.length; i++) {
    t.ok(seen[i]!.at - seen[i - 1]!.at >= backoffs[i]!.delayMs - 5, `attempt ${i + 1} came after its delay`)
  }

  await server.burst(resumed, 1000, 100, i => JSON.stringify({ seq: 1000 + i }))
  const records = await readTopic(kafka, topic, 2000)
  t.same(seqs(records), Array.from({ length: 2000 }, (_v, i) => i), 'everything received before and after the drop, in order, once')
  const metrics = await ingest.metrics()
  t.equal(metric(metrics, 'sluice_ingest_reconnects_total', { feed: 'flaky' }), refusals + 1)
  t.equal(metric(metrics, 'sluice_ingest_dropped_total', { feed: 'flaky', reason: 'buffer_full' }), 0)
  t.equal(metric(metrics, 'sluice_ingest_sequence_gaps_total', { feed: 'flaky' }), 0, 'no gap: the feed resumed where it stopped')
  t.equal(metric(metrics, 'sluice_ingest_connected', { feed: 'flaky' }), 1)
})

test('a feed gives up after its reconnect attempts, says so, and is not ready', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const first = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'finite', url: server.url, topic: unique('ingest-finite'), reconnect: { baseMs: 10, maxMs: 20, attempts: 3 } }])
  const feed = ingest.feed('finite')
  await first
  server.refuse(100)
  server.dropAll()
  await eventually(() => feed.state === 'failed', 10_000, 'the feed gives up')
  t.equal(server.attempts.length, 1 + 3, 'the first connect and exactly 3 reconnect attempts')
  t.equal((feed.lastError as { code?: string }).code, 'SLUICE_INGEST_RECONNECT_EXHAUSTED')
  t.equal(metric(await ingest.metrics(), 'sluice_ingest_failed', { feed: 'finite' }), 1)
  const ready = await ingest.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json().checks.feeds.reason, 'finite: gave up (SLUICE_INGEST_RECONNECT_EXHAUSTED)')
})

test('reconnect disabled: one drop ends the feed, as websocket.reconnect.enabled=false does', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const first = server.nextSubscriber()
  const ingest = await startConnector(t, [{ name: 'once', 'websocket.url': server.url, 'kafka.topic': unique('ingest-once'), 'websocket.reconnect.enabled': false }])
  const feed = ingest.feed('once')
  await first
  server.dropAll()
  await eventually(() => feed.state === 'failed', 10_000, 'the feed stops')
  t.equal((feed.lastError as { code?: string }).code, 'SLUICE_INGEST_RECONNECT_DISABLED')
  t.equal(server.attempts.length, 1, 'no reconnect attempt')
})

test('a feed that accepts TCP but never answers the upgrade times out, and is retried', async t => {
  const sockets = new Set<Socket>()
  const silent = createServer(socket => { sockets.add(socket) })
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })
  const port = (silent.address() as AddressInfo).port
  const ingest = await startConnector(t, [{ name: 'silent', url: `ws://127.0.0.1:${port}/`, topic: unique('ingest-silent'), connectTimeoutMs: 200, reconnect: { baseMs: 50, maxMs: 50 } }])
  const feed = ingest.feed('silent')
  await eventually(() => feed.stats.reconnects >= 2, 10_000, 'two timed-out attempts')
  t.equal((feed.lastError as { code?: string }).code, 'SLUICE_INGEST_CONNECT_TIMEOUT')
  t.ok(sockets.size >= 2, 'each attempt opened a TCP connection')
  t.equal(feed.connected, false)
  const text = await ingest.metrics()
  t.equal(metric(text, 'sluice_ingest_ms_since_last_message', { feed: 'silent' }), -1, '-1: no message yet')
  t.equal(metric(text, 'sluice_ingest_connected', { feed: 'silent' }), 0)
})

test('a feed whose port refuses TCP fails with CONNECTION_FAILED and the system code, and keeps retrying', async t => {
  const closedPort = await freePort()
  const ingest = await startConnector(t, [{ name: 'closed', url: `ws://127.0.0.1:${closedPort}/`, topic: unique('ingest-closed'), reconnect: { baseMs: 20, maxMs: 40 } }])
  const feed = ingest.feed('closed')
  await eventually(() => feed.stats.reconnects >= 2, 10_000, 'two refused attempts')
  t.equal((feed.lastError as { code?: string }).code, 'SLUICE_INGEST_CONNECTION_FAILED')
  t.match(feed.lastError!.message, 'ECONNREFUSED')
  t.equal(feed.state === 'backoff' || feed.state === 'connecting', true, 'still trying')
})
