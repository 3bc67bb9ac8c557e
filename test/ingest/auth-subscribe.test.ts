// A feed that demands a bearer token, a custom header and a subscription
// message gets all three on the first connect and again after every reconnect;
// none of the secrets ever reaches the logs, even on the failure paths.
import { test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { FeedServer, readTopic, startConnector } from './feed-server.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const TOKEN = 'tok-SECRET-0b4e7c'
const HEADER = 'hdr-SECRET-91aa20'
const SUB_KEY = 'sub-SECRET-5d3f11'
const URL_KEY = 'url-SECRET-c0ffee'
const WRONG_TOKEN = 'wrong-SECRET-deadbe'
const SUBSCRIPTION = JSON.stringify({ op: 'subscribe', channel: 'trades', key: SUB_KEY })
// "${env:NAME}", spelled so that the linter does not take it for a template literal
const ref = (name: string) => '$' + '{env:' + name + '}'

test('token, header and subscription on every (re)connect; secrets never logged', async t => {
  const server = new FeedServer({ token: TOKEN, header: { name: 'X-Feed-Client', value: HEADER }, subscription: SUBSCRIPTION })
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-auth' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-auth')
  await kafka.ensureTopics([{ topic }])

  const firstSubscriber = server.nextSubscriber()
  const ingest = await startConnector(t, [
    {
      name: 'trades',
      url: `${server.url}?apikey=${ref('FEED_URL_KEY')}`,
      topic,
      token: ref('FEED_TOKEN'),
      headers: { 'X-Feed-Client': ref('FEED_HEADER') },
      subscribe: { op: 'subscribe', channel: 'trades', key: ref('FEED_SUB_KEY') },
      reconnect: { baseMs: 20, maxMs: 100 }
    },
    // the same feed with a wrong token: its refusals and retries are logged too
    { name: 'refused', url: server.url, topic, token: ref('FEED_WRONG_TOKEN'), headers: { 'X-Feed-Client': ref('FEED_HEADER') }, reconnect: { baseMs: 20, maxMs: 100 } }
  ], {
    level: 'trace',
    env: { FEED_TOKEN: TOKEN, FEED_HEADER: HEADER, FEED_SUB_KEY: SUB_KEY, FEED_URL_KEY: URL_KEY, FEED_WRONG_TOKEN: WRONG_TOKEN }
  })
  const feed = ingest.feed('trades')

  // three connections: the first, then two abrupt drops, each followed by a reconnect
  let subscriber = await firstSubscriber
  for (let connection = 0; connection < 3; connection++) {
    await server.send(JSON.stringify({ connection }))
    await eventually(() => feed.stats.produced === connection + 1, 15_000, `message ${connection} produced`)
    if (connection < 2) {
      const next = server.nextSubscriber()
      server.dropAll()
      subscriber = await next
    }
  }
  t.ok(subscriber, 'subscribed again after the last drop')

  const accepted = server.attempts.filter(a => a.status === 101)
  t.equal(accepted.length, 3, 'three accepted upgrades')
  t.ok(accepted.every(a => a.authorization === `Bearer ${TOKEN}`), 'the bearer token on every upgrade')
  t.ok(accepted.every(a => a.header === HEADER), 'the custom header on every upgrade')
  t.same(server.subscriptions, [SUBSCRIPTION, SUBSCRIPTION, SUBSCRIPTION], 'the subscription message after every connect')
  t.equal(feed.stats.reconnects, 2, 'two reconnects')

  const records = await readTopic(kafka, topic, 3)
  t.same(records.map(r => JSON.parse(r.value!.toString()).connection), [0, 1, 2], 'one message per connection, in order')

  // the refused feed: rejected at the upgrade, named by its code, and not ready
  const refused = ingest.feed('refused')
  await eventually(() => refused.stats.reconnects >= 3, 15_000, 'the refused feed keeps retrying')
  t.equal((refused.lastError as { code?: string } | undefined)?.code, 'SLUICE_INGEST_HANDSHAKE_REJECTED')
  t.ok(server.attempts.some(a => a.status === 401 && a.authorization === `Bearer ${WRONG_TOKEN}`), 'the server refused its token')
  const ready = await ingest.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, 'not ready while a feed is refused')
  t.match(ready.json().checks.feeds.reason, 'refused: not connected (SLUICE_INGEST_HANDSHAKE_REJECTED)')
  t.equal((await ingest.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'alive all the same')

  await ingest.app.close()
  const logs = ingest.logs()
  t.match(logs, '"msg":"feed connected"', 'the capture holds the feed\'s log lines')
  t.match(logs, '"code":"SLUICE_INGEST_HANDSHAKE_REJECTED"', 'and its failures')
  for (const secret of [TOKEN, HEADER, SUB_KEY, URL_KEY, WRONG_TOKEN]) {
    t.notMatch(logs, secret, `${secret.slice(0, 4)}… never logged`)
  }
})
