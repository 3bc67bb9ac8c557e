// Every operational metric moves when its event happens: each test reads
// /metrics, causes the event on a real gateway (harness/rate-limit.ts: auth, policy, rate
// limits on the run's Redis, hub, /v1/stream and /v2/broker/ on the run's
// Kafka), reads /metrics again and asserts the change. Kafka and Redis going
// down are in metrics-outage.test.ts (they need a broker and a Redis of their own).
import { rmSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { PlanLimits } from '@sluice/policy'
import { KafkaClient } from '@sluice/kafka'
import { gateway as rateLimitGateway, JWT_SECRET } from '../harness/rate-limit.ts'
import { GENEROUS, policyDir } from '../harness/policy.ts'
import { Client } from '../harness/client.ts'
import { LegacyClient } from '../harness/compat.ts'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { eventually, kafkaBrokers, metricSum, redisUrl, samplesOf, unique } from '../helpers.ts'

// two products, so that labels by product can be told apart: ticks drops a slow socket's feed (lagging), orders evicts it
const POLICY = {
  version: 1,
  products: {
    ticks: { plans: ['test'], topics: [{ pattern: 'mx.ticks.**', encoding: 'json', slowClient: 'lagging' }] },
    orders: { plans: ['test'], topics: [{ pattern: 'mx.orders.**', encoding: 'text', slowClient: 'evict' }] },
    secret: { plans: ['test'], topics: [{ pattern: 'mx.secret.**' }] }
  },
  // nobody is granted mx.secret.**
  rules: [
    { name: 'ticks', product: 'ticks', plan: 'test', match: { kinds: ['jwt'] }, subscribe: ['mx.ticks.**'], publish: ['mx.ticks.**'] },
    { name: 'orders', product: 'orders', plan: 'test', match: { kinds: ['jwt'] }, subscribe: ['mx.orders.**'], publish: ['mx.orders.**'] }
  ]
}

interface Gateway {
  app: FastifyInstance
  /** ws://127.0.0.1:port */
  url: string
  kafka: KafkaClient
  scrape (): Promise<string>
  /** a /v1/stream socket of subject `sub` */
  client (sub: string, query?: string): Client
  /** a /v2/broker/ (kafka-text) socket of subject `sub` */
  legacy (sub: string, query: string): LegacyClient
}

async function gateway (t: Test, limits: Partial<PlanLimits> = {}): Promise<Gateway> {
  const dir = policyDir(JSON.stringify({ ...POLICY, plans: { test: { limits: { ...GENEROUS, ...limits } } } }))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const gw = await rateLimitGateway(t, {
    policyDir: dir,
    redisUrl: redisUrl(),
    // buckets of their own in the run's Redis
    prefix: unique('mx-rl') + ':',
    // a topic's consumer stops 200 ms after its last subscriber: the lag test sees its series go
    config: { stream: { consumerGraceMs: 200 } }
  })
  const { app, wsUrl: url } = gw
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'metrics-suite' })
  t.teardown(() => kafka.close())
  return {
    app,
    url,
    kafka,
    scrape: async () => {
      const res = await app.inject({ method: 'GET', url: '/metrics' })
      if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
      return res.body
    },
    client: gw.client,
    legacy: (sub, query) => {
      const c = new LegacyClient(url, query, 'kafka-text', `access_token=${token(sub)}`)
      t.teardown(() => c.ws.terminate())
      return c
    }
  }
}

function token (sub: string, exp = nowSeconds() + 600): string {
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'rl', aud: 'sluice', sub, exp }, JWT_SECRET)
}

async function opened (c: Client): Promise<void> {
  const outcome = await c.outcome
  if (outcome !== 'open') throw new Error(`refused: ${JSON.stringify(outcome)}`)
}

/** Waits until the metric (summed over the matching series) is `value`: sockets close and Kafka acks asynchronously. */
async function settles (gw: Gateway, name: string, labels: Record<string, string>, value: number): Promise<void> {
  let last = NaN
  await eventually(async () => {
    last = metricSum(await gw.scrape(), name, labels)
    return last === value
  }, 15_000, `${name}${JSON.stringify(labels)} = ${value} (last: ${last})`)
}

test('open connections by route and product, subscriptions by product', async t => {
  const gw = await gateway(t)
  const ticks = unique('mx.ticks.c')
  const orders = unique('mx.orders.c')
  await gw.kafka.ensureTopics([{ topic: ticks }, { topic: orders }])
  const v1 = { route: '/v1/stream' }
  const v2 = { route: '/v2/broker/' }

  let text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_connections'), 0, 'no connection yet')
  t.equal(metricSum(text, 'sluice_subscriptions'), 0, 'no subscription yet')

  const a = gw.client('ann')
  await opened(a)
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_connections', { ...v1, product: 'none' }), 1, 'a socket that has used no topic yet counts under product "none"')

  a.send({ op: 'subscribe', id: 's1', topics: [ticks] })
  await a.next(f => f.id === 's1')
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_connections', { ...v1, product: 'ticks' }), 1, 'its first subscription names its product')
  t.equal(metricSum(text, 'sluice_connections', { ...v1, product: 'none' }), 0)
  t.equal(metricSum(text, 'sluice_subscriptions', { product: 'ticks' }), 1, 'one subscription of ticks')

  const b = gw.legacy('bob', `topics=${orders}`)
  await b.opened
  await settles(gw, 'sluice_subscriptions', { product: 'orders' }, 1)
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_connections', { ...v2, product: 'orders' }), 1, '/v2/broker/ counts apart, under the product of its topics')
  t.equal(metricSum(text, 'sluice_connections'), 2, 'two sockets in all')
  t.equal(metricSum(text, 'sluice_sessions'), 2)

  a.send({ op: 'unsubscribe', id: 'u1', topics: [ticks] })
  await a.next(f => f.id === 'u1')
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_subscriptions', { product: 'ticks' }), 0, 'unsubscribing takes the subscription away')
  t.equal(metricSum(text, 'sluice_connections', { ...v1, product: 'ticks' }), 1, 'the connection keeps the product it was first used for')

  // a consumer-group member counts once per topic of its group
  const g = gw.client('cy', `?topics=${ticks}&group=g1`)
  await g.next(f => f.op === 'subscribed', 30_000)
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_subscriptions', { product: 'ticks' }), 1, 'a group member subscribes under its product')
  t.equal(metricSum(text, 'sluice_connections', { ...v1, product: 'ticks' }), 2, 'and names its connection\'s product')

  a.close()
  b.close()
  g.close()
  await settles(gw, 'sluice_connections', {}, 0)
  t.equal(metricSum(await gw.scrape(), 'sluice_subscriptions'), 0, 'closed sockets hold no subscription')
})

test('deliveries, publish acks and publish errors by route and code', async t => {
  const gw = await gateway(t)
  const ticks = unique('mx.ticks.p')
  const orders = unique('mx.orders.p')
  await gw.kafka.ensureTopics([{ topic: ticks }, { topic: orders }])
  const v1 = { route: '/v1/stream' }
  const v2 = { route: '/v2/broker/' }
  const before = await gw.scrape()
  t.equal(metricSum(before, 'sluice_publish_errors_total', { ...v1, code: 'FORBIDDEN' }), 0, 'every code is shown at 0 before its first error')
  t.equal(samplesOf(before, 'sluice_publish_errors_total', v1).length, 8, 'one series per docs/design.md error code')

  const reader = gw.client('ann', `?topics=${ticks}`)
  await reader.next(f => f.op === 'subscribed')
  const writer = gw.client('ann')
  await opened(writer)
  for (let i = 0; i < 3; i++) writer.send({ op: 'publish', id: `p${i}`, topic: ticks, value: { i } })
  for (let i = 0; i < 3; i++) t.match(await writer.next(f => f.id === `p${i}`), { op: 'ack' })
  await eventually(() => reader.messages().length === 3, 15_000, 'three records delivered')
  let text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_publish_acks_total', v1) - metricSum(before, 'sluice_publish_acks_total', v1), 3, 'three acks on /v1/stream')
  t.equal(metricSum(text, 'sluice_hub_deliveries_total') - metricSum(before, 'sluice_hub_deliveries_total'), 3, 'three frames delivered')

  writer.send({ op: 'publish', id: 'no', topic: unique('mx.secret'), value: 1 })
  t.match(await writer.next(f => f.id === 'no'), { op: 'error', code: 'FORBIDDEN' })
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_publish_errors_total', { ...v1, code: 'FORBIDDEN' }), 1, 'a refused publish counts under its code')
  t.equal(metricSum(text, 'sluice_publish_acks_total', v1) - metricSum(before, 'sluice_publish_acks_total', v1), 3, 'and is no ack')

  // kafka-text has no acks: the count moves once Kafka acked the produce request
  const legacy = gw.legacy('bob', '')
  await legacy.opened
  legacy.sendText(orders, 'one')
  legacy.sendText(orders, 'two')
  await settles(gw, 'sluice_publish_acks_total', v2, 2)
  legacy.sendText(unique('mx.secret'), 'no')
  t.equal((await legacy.nextError(0)).code, 'SLUICE_COMPAT_FORBIDDEN')
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_publish_errors_total', { ...v2, code: 'FORBIDDEN' }), 1, '/v2/broker/ errors count under the same codes')
  t.equal(metricSum(text, 'sluice_publish_errors_total', { ...v1, code: 'FORBIDDEN' }), 1, 'apart from /v1/stream\'s')
  t.equal(metricSum(text, 'sluice_connections', { ...v2, product: 'orders' }), 1, 'a publish names a connection\'s product too')
})

test('drops and evictions: sockets over their delivery limit lose records (lagging) or are evicted (4008)', async t => {
  // one message a second: a burst of 30 is past it, as a full send queue would be (the hub treats both alike)
  const gw = await gateway(t, { deliveredPerSecond: 1 })
  const ticks = unique('mx.ticks.d')
  const orders = unique('mx.orders.d')
  await gw.kafka.ensureTopics([{ topic: ticks }, { topic: orders }])
  const lagging = gw.client('ann', `?topics=${ticks}`)
  const evicted = gw.client('bob', `?topics=${orders}`)
  await lagging.next(f => f.op === 'subscribed')
  await evicted.next(f => f.op === 'subscribed')
  const before = await gw.scrape()

  await gw.kafka.produceBatch(ticks, Array.from({ length: 30 }, (_v, i) => ({ value: JSON.stringify({ i }) })))
  const notice = await lagging.next(f => f.op === 'lagging', 15_000)
  let text = await gw.scrape()
  const drops = metricSum(text, 'sluice_hub_drops_total') - metricSum(before, 'sluice_hub_drops_total')
  t.ok(drops >= 29, `drops counted (${drops})`)
  t.equal(drops, notice.dropped, 'as many as the lagging notice says')
  t.equal(metricSum(text, 'sluice_hub_lagging_total') - metricSum(before, 'sluice_hub_lagging_total'), 1, 'one lagging notice')
  t.equal(metricSum(text, 'sluice_hub_evictions_total'), 0, 'no eviction yet')
  t.ok(metricSum(text, 'sluice_rate_limit_limited_total', { limit: 'deliveredPerSecond' }) > 0, 'the refusals are rate-limit decisions too')

  await gw.kafka.produceBatch(orders, Array.from({ length: 30 }, (_v, i) => ({ value: `o${i}` })))
  t.equal((await evicted.closed).code, 4008, 'evicted with 4008')
  text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_hub_evictions_total'), 1, 'one eviction')
  t.ok(metricSum(text, 'sluice_hub_drops_total') - metricSum(before, 'sluice_hub_drops_total') > drops, 'its lost records are drops too')
})

test('auth failures by reason', async t => {
  const gw = await gateway(t)
  const count = async (code: string) => metricSum(await gw.scrape(), 'sluice_auth_rejected_total', { code })
  t.equal(await count('SLUICE_AUTH_INVALID_TOKEN'), 0)

  const cases: Array<[string, Record<string, string>]> = [
    ['SLUICE_AUTH_MISSING', {}],
    ['SLUICE_AUTH_INVALID_TOKEN', { authorization: `Bearer ${token('ann').slice(0, -4)}AAAA` }],
    ['SLUICE_AUTH_EXPIRED', { authorization: `Bearer ${token('ann', nowSeconds() - 3600)}` }]
  ]
  for (const [code, headers] of cases) {
    const c = new Client(`${gw.url}/v1/stream`, { headers })
    t.teardown(() => c.terminate())
    const outcome = await c.outcome
    t.match(outcome, { status: 401, body: { error: { code } } }, `refused: ${code}`)
    t.equal(await count(code), 1, `${code} counted once`)
  }
})

test('rate-limit decisions: connections and publishes allowed and limited', async t => {
  const gw = await gateway(t, { connections: 1, publishedPerSecond: 1 })
  const topic = unique('mx.ticks.r')
  await gw.kafka.ensureTopics([{ topic }])
  const decisions = async (kind: 'allowed' | 'limited', limit: string) => metricSum(await gw.scrape(), `sluice_rate_limit_${kind}_total`, { limit })

  t.equal(await decisions('allowed', 'connections'), 0)
  const first = gw.client('cy')
  await opened(first)
  t.equal(await decisions('allowed', 'connections'), 1, 'the first connection is allowed')
  t.equal(await decisions('limited', 'connections'), 0)
  t.match(await gw.client('cy').outcome, { status: 429 })
  t.equal(await decisions('limited', 'connections'), 1, 'the second is limited (plan: 1 connection)')

  first.send({ op: 'publish', id: 'a', topic, value: 1 })
  first.send({ op: 'publish', id: 'b', topic, value: 2 })
  t.match(await first.next(f => f.id === 'a'), { op: 'ack' })
  t.match(await first.next(f => f.id === 'b'), { op: 'error', code: 'RATE_LIMITED' })
  t.equal(await decisions('allowed', 'publishedPerSecond'), 1, 'one publish allowed')
  t.equal(await decisions('limited', 'publishedPerSecond'), 1, 'one limited (plan: 1 a second)')
  t.equal(metricSum(await gw.scrape(), 'sluice_publish_errors_total', { route: '/v1/stream', code: 'RATE_LIMITED' }), 1, 'and answered RATE_LIMITED')
})

test('consumer lag per topic: a catch-up behind the high watermark; the series goes with the consumer', async t => {
  // one delivery a second: a catch-up of 50 records stays behind for as long as the test looks
  const gw = await gateway(t, { deliveredPerSecond: 1 })
  const topic = unique('mx.ticks.l')
  await gw.kafka.ensureTopics([{ topic }])
  await gw.kafka.produceBatch(topic, Array.from({ length: 50 }, (_v, i) => ({ value: JSON.stringify({ i }) })))
  const series = (text: string) => samplesOf(text, 'sluice_hub_consumer_lag', { topic })
  t.same(series(await gw.scrape()), [], 'no series for a topic without a consumer')

  const live = gw.client('ann', `?topics=${topic}`)
  await live.next(f => f.op === 'subscribed')
  let text = await gw.scrape()
  t.equal(metricSum(text, 'sluice_hub_consumer_lag', { topic, reader: 'live' }), 0, 'the live consumer starts at the high watermark')
  t.equal(series(text).length, 2, 'a live and a catch-up series')

  const behind = gw.client('bob', `?topics=${topic}&from=earliest`)
  await behind.next(f => f.op === 'subscribed')
  text = await gw.scrape()
  const lag = metricSum(text, 'sluice_hub_consumer_lag', { topic, reader: 'catchup' })
  t.ok(lag > 40 && lag <= 50, `the catch-up from earliest is behind by the records produced before it (${lag})`)
  t.equal(metricSum(text, 'sluice_hub_consumer_lag', { topic, reader: 'live' }), 0, 'the live consumer is not')

  behind.close()
  await settles(gw, 'sluice_hub_consumer_lag', { topic, reader: 'catchup' }, 0)
  live.close()
  await eventually(async () => series(await gw.scrape()).length === 0, 15_000, 'the topic\'s series removed once its consumer stopped')
  t.pass('the series are gone with the consumer')
})

test('event-loop delay and process memory', async t => {
  const gw = await gateway(t)
  await gw.scrape()
  // the delay histogram restarts at each scrape: block the loop for 300 ms and the next scrape sees it
  const until = Date.now() + 300
  while (Date.now() < until);
  // one turn of the loop, so that the delay monitor's timer records what it waited
  await new Promise(resolve => setTimeout(resolve, 20))
  let text = await gw.scrape()
  const max = metricSum(text, 'sluice_nodejs_eventloop_lag_max_seconds')
  // a tick due during the stall runs late by it less at most one period (50 ms on an idle node: plugins/metrics/src/loop-delay.ts)
  t.ok(max >= 0.2, `the longest event-loop delay since the last scrape: ${max} s`)
  t.ok(samplesOf(text, 'sluice_nodejs_eventloop_lag_p99_seconds').length === 1, 'and its p99')

  // a full collection before each reading: the heap's figure is then what is alive, not what garbage awaits collection
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  text = await gw.scrape()
  const rss = metricSum(text, 'sluice_process_resident_memory_bytes')
  const heap = metricSum(text, 'sluice_nodejs_heap_size_used_bytes')
  // 64 MiB written byte by byte (pages touched: resident) and 1,000,000 small objects on the JS heap (97 MiB here)
  const held = Buffer.alloc(64 * 1024 * 1024, 1)
  const objects = Array.from({ length: 1_000_000 }, (_v, i) => ({ i, s: `object ${i}` }))
  gc()
  text = await gw.scrape()
  const rssGrowth = metricSum(text, 'sluice_process_resident_memory_bytes') - rss
  const heapGrowth = metricSum(text, 'sluice_nodejs_heap_size_used_bytes') - heap
  t.ok(rssGrowth > 48 * 1024 * 1024, `resident memory grew by ${(rssGrowth / 1048576).toFixed(1)} MiB`)
  t.ok(heapGrowth > 32 * 1024 * 1024, `heap used grew by ${(heapGrowth / 1048576).toFixed(1)} MiB`)
  t.ok(held.length > 0 && objects.length > 0)
})
