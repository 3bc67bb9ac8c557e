// The catalogue (GET /v1/products) and the AsyncAPI documents (GET
// /asyncapi.json, /asyncapi/<product>.json) of a gateway built on the real
// broker: what they show for a policy, that @asyncapi/parser finds no error
// in them, that a policy file edit shows in both after the reload without a
// restart, and that openapi/asyncapi.yaml is what the generator makes now.
import { test } from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import { main as asyncapiCli } from '@sluice/docs/cli'
import { liveGateway } from '../harness/live-route.ts'
import { policyDir } from '../harness/policy.ts'
import { loadGatewayConfig } from '@sluice/gateway/config'
import { eventually, kafkaBrokers } from '../helpers.ts'

const root = join(import.meta.dirname, '..', '..')

// two products: patterns, a claim template, every encoding, a schema, a rule with match criteria that must not leak
const POLICY = `
version: 1
plans:
  basic:
    title: Basic
    description: Small.
    limits: { connections: 5, connectsPerMinute: 60, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 }
  gold:
    limits: { connections: 50, connectsPerMinute: 600, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 }
products:
  market:
    title: Market data
    description: Prices and orders.
    plans: [basic, gold]
    topics:
      - pattern: prices.*
        description: One topic per symbol.
        schema:
          type: object
          required: [symbol, price]
          properties:
            symbol: { type: string, examples: [BTC-USD] }
            price: { type: number, minimum: 0.01 }
            at: { type: string, format: date-time }
      - pattern: orders.*
        encoding: json
        slowClient: evict
  logs:
    plans: [basic]
    topics:
      - pattern: logs.text
        encoding: text
      - pattern: logs.raw
        encoding: base64
rules:
  - name: prices
    description: Everyone reads prices.
    product: market
    plan: basic
    subscribe: ['prices.*']
  - name: tenant-orders
    product: market
    plan: gold
    match:
      claims: { tier: secret-tier-value }
    subscribe: ['orders.{sub}']
    publish: ['orders.{sub}']
  - name: logs
    product: logs
    plan: basic
    subscribe: [logs.text, logs.raw]
    publish: [logs.text]
`

async function errorsOf (document: unknown): Promise<string[]> {
  const { diagnostics } = await new Parser().parse(JSON.stringify(document))
  return diagnostics.filter(d => d.severity === DiagnosticSeverity.Error).map(d => `${d.code}: ${d.message} at ${d.path.join('/')}`)
}

interface Doc {
  info: { title: string }
  channels: Record<string, { address: string | null, messages: Record<string, { payload: unknown, examples?: Array<{ payload: unknown }> }> }>
  operations: Record<string, { action: string, channel: { $ref: string }, 'x-sluice-plans'?: string[] }>
  components: { securitySchemes: Record<string, { type: string }>, messages: Record<string, unknown> }
  servers: Record<string, { host: string, pathname: string, protocol: string }>
}

test('the catalogue lists products, topics, plans and what each rule grants, never its match criteria', async t => {
  const gw = await liveGateway({ policyDir: policyDir(POLICY) })
  t.teardown(() => gw.app.close())
  const res = await gw.app.inject('/v1/products')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const { products } = res.json()
  t.same(products.map((p: { name: string }) => p.name), ['market', 'logs'])
  const [market, logs] = products
  t.same(market.plans, [
    { name: 'basic', title: 'Basic', description: 'Small.', limits: { connections: 5, connectsPerMinute: 60, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 } },
    { name: 'gold', title: 'gold', limits: { connections: 50, connectsPerMinute: 600, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 } }
  ])
  t.same(market.topics[0], {
    pattern: 'prices.*',
    encoding: 'json',
    slowClient: 'lagging',
    description: 'One topic per symbol.',
    schema: {
      type: 'object',
      required: ['symbol', 'price'],
      properties: { symbol: { type: 'string', examples: ['BTC-USD'] }, price: { type: 'number', minimum: 0.01 }, at: { type: 'string', format: 'date-time' } }
    },
    example: { symbol: 'BTC-USD', price: 0.01, at: '2026-01-01T00:00:00.000Z' }
  }, 'the example comes from the schema')
  t.same(market.topics[1], { pattern: 'orders.*', encoding: 'json', slowClient: 'evict', example: {} })
  t.same(market.access, [
    { plan: 'basic', description: 'Everyone reads prices.', subscribe: ['prices.*'], publish: [] },
    { plan: 'gold', subscribe: ['orders.{sub}'], publish: ['orders.{sub}'] }
  ], 'patterns as written')
  t.equal(market.asyncapi, '/asyncapi/market.json')
  t.same(logs.topics.map((x: { example: unknown }) => x.example), ['text', Buffer.from('bytes').toString('base64')], 'a value of the encoding without a schema')
  t.notMatch(res.body, 'secret-tier-value', 'match claims stay internal')
  t.notMatch(res.body, 'tenant-orders', 'rule names stay internal')

  const unknown = await gw.app.inject('/asyncapi/nope.json')
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().error.code, 'SLUICE_DOCS_NOT_FOUND')
  t.equal((await gw.app.inject('/asyncapi/constructor.json')).statusCode, 404, 'an inherited property is no product')
})

test('the AsyncAPI documents pass @asyncapi/parser with no error and describe channels, operations, frames and security', async t => {
  const gw = await liveGateway({ policyDir: policyDir(POLICY) })
  t.teardown(() => gw.app.close())
  const all = (await gw.app.inject('/asyncapi.json')).json() as Doc
  t.same(await errorsOf(all), [], 'the whole document')
  for (const product of ['market', 'logs']) {
    const res = await gw.app.inject(`/asyncapi/${product}.json`)
    t.equal(res.statusCode, 200)
    t.same(await errorsOf(res.json()), [], `/asyncapi/${product}.json`)
  }

  const addresses = Object.values(all.channels).map(c => c.address)
  t.same(addresses, ['prices.*', 'orders.*', 'logs.text', 'logs.raw', null], 'a channel per product topic, and the socket\'s')
  const prices = Object.values(all.channels)[0]!
  t.equal((prices.messages.record!.payload as { type: string }).type, 'object', 'the declared schema is the payload')
  t.same(prices.messages.record!.examples![0]!.payload, { symbol: 'BTC-USD', price: 0.01, at: '2026-01-01T00:00:00.000Z' })

  const ops = Object.values(all.operations).map(o => `${o.action} ${o.channel.$ref.split('/').pop()} ${o['x-sluice-plans']?.join(',') ?? ''}`)
  t.same(ops.sort(), [
    'receive logs-logs_raw basic',
    'receive logs-logs_text basic',
    'receive market-orders_any gold',
    'receive market-prices_any basic',
    'receive stream ',
    'send logs-logs_text basic',
    'send market-orders_any gold',
    'send stream '
  ], 'receive = subscribe, send = publish, as the rules allow, with their plans')
  for (const frame of ['subscribe', 'unsubscribe', 'publish', 'ping', 'auth', 'subscribed', 'unsubscribed', 'message', 'ack', 'lagging', 'error', 'pong', 'authenticated']) {
    t.ok(all.components.messages[frame], `the ${frame} frame`)
  }
  t.same(Object.entries(all.components.securitySchemes).map(([n, s]) => `${n}:${s.type}`), ['bearerJwt:http', 'apiKey:httpApiKey', 'accessTokenQuery:httpApiKey', 'apiKeyQuery:httpApiKey'])
  t.match(all.servers.gateway, { pathname: '/v1/stream', protocol: 'ws' })
  t.notMatch(JSON.stringify(all), 'secret-tier-value', 'match claims stay internal')

  const one = (await gw.app.inject('/asyncapi/logs.json')).json() as Doc
  t.same(Object.values(one.channels).map(c => c.address), ['logs.text', 'logs.raw', null], 'one product\'s channels only')
})

test('the server is where clients reach the gateway: docs.publicUrl, else localhost and the port', async t => {
  const gw = await liveGateway({ policyDir: policyDir(POLICY), config: { docs: { publicUrl: 'wss://api.example.com:8443' } } })
  t.teardown(() => gw.app.close())
  t.match(((await gw.app.inject('/asyncapi.json')).json() as Doc).servers.gateway, { host: 'api.example.com:8443', protocol: 'wss', pathname: '/v1/stream' })
  t.match(((await gw.app.inject('/asyncapi/logs.json')).json() as Doc).servers.gateway, { host: 'api.example.com:8443', protocol: 'wss' })

  const plain = await liveGateway({ policyDir: policyDir(POLICY), config: { server: { port: 9123 } } })
  t.teardown(() => plain.app.close())
  t.match(((await plain.app.inject('/asyncapi.json')).json() as Doc).servers.gateway, { host: 'localhost:9123', protocol: 'ws' })

  for (const bad of ['http://api.example.com', 'wss://api.example.com/v1', 'wss://user@host', 'ws://']) {
    t.throws(() => loadGatewayConfig({ base: { kafka: { brokers: kafkaBrokers() }, docs: { publicUrl: bad } } }), /\/docs\/publicUrl/, `${bad} is refused`)
  }
})

test('a policy file edit shows in /asyncapi.json and /v1/products after the reload, without a restart', async t => {
  const dir = policyDir(POLICY)
  const gw = await liveGateway({ policyDir: dir })
  t.teardown(() => gw.app.close())
  await gw.app.ready()
  const before = (await gw.app.inject('/asyncapi.json')).json() as Doc
  t.notOk(Object.values(before.channels).some(c => c.address === 'news.*'))

  // a new topic with a publish grant, and the logs product gone
  const edited = POLICY
    .replace('      - pattern: orders.*\n', '      - pattern: news.*\n        encoding: text\n      - pattern: orders.*\n')
    .replace(/ {2}logs:\n {4}plans: \[basic\]\n(.*\n){5}/, '')
    .replace(/ {2}- name: logs\n(.*\n)*$/, '  - name: news\n    product: market\n    plan: gold\n    publish: [\'news.*\']\n')
  writeFileSync(join(dir, 'policy.yaml'), edited)

  await eventually(async () => {
    const doc = (await gw.app.inject('/asyncapi.json')).json() as Doc
    return Object.values(doc.channels).some(c => c.address === 'news.*')
  }, 10_000, 'the new topic in /asyncapi.json')
  const after = (await gw.app.inject('/asyncapi.json')).json() as Doc
  t.same(await errorsOf(after), [])
  t.same(Object.values(after.channels).map(c => c.address), ['prices.*', 'news.*', 'orders.*', null])
  t.ok(Object.values(after.operations).some(o => o.action === 'send' && o.channel.$ref === '#/channels/market-news_any'), 'the new grant is an operation')

  const { products } = (await gw.app.inject('/v1/products')).json()
  t.same(products.map((p: { name: string }) => p.name), ['market'], 'the removed product is gone')
  t.same(products[0].topics.map((x: { pattern: string }) => x.pattern), ['prices.*', 'news.*', 'orders.*'])
  t.same(products[0].access.at(-1), { plan: 'gold', subscribe: [], publish: ['news.*'] })
  t.equal((await gw.app.inject('/asyncapi/logs.json')).statusCode, 404, 'the removed product\'s document is gone')

  // an invalid edit keeps the last good policy, and so the documents
  writeFileSync(join(dir, 'policy.yaml'), edited.replace('version: 1', 'version: 2'))
  await eventually(() => gw.app.policy.status().lastError !== undefined, 10_000, 'the invalid edit is seen')
  t.same((await gw.app.inject('/asyncapi.json')).json(), after, 'unchanged by an invalid edit')
})

test('openapi/asyncapi.yaml is what `npm run asyncapi -- write` makes from policies/ now, and passes the parser', async t => {
  const out: string[] = []
  const err: string[] = []
  const sink = (into: string[]) => ({ write: (s: string) => into.push(s) }) as unknown as NodeJS.WritableStream
  const code = await asyncapiCli(['check', '--policy', join(root, 'policies'), '--out', join(root, 'openapi', 'asyncapi.yaml')], sink(out), sink(err))
  t.equal(code, 0, err.join('') || 'up to date')

  const { diagnostics } = await new Parser().parse(readFileSync(join(root, 'openapi', 'asyncapi.yaml'), 'utf8'))
  t.same(diagnostics.filter(d => d.severity === DiagnosticSeverity.Error).map(d => d.message), [])

  // and check fails on a file that differs
  const stale = join(policyDir(POLICY), 'stale.yaml')
  writeFileSync(stale, 'asyncapi: 3.0.0\n')
  t.equal(await asyncapiCli(['check', '--policy', join(root, 'policies'), '--out', stale], sink(out), sink(err)), 1)
  t.equal(await asyncapiCli(['verify'], sink(out), sink(err)), 2, 'usage')
})
