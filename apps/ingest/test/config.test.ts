import { test } from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '@sluice/config'
import { loadIngestConfig, parseConnectHeaders } from '../src/config.ts'

const kafka = { brokers: ['127.0.0.1:9092'] }
// "${env:NAME}" written without a template-literal lookalike in the source
const ref = (name: string) => '$' + '{env:' + name + '}'

function writeConfig (lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-ingest-')), 'feeds.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function problemsOf (fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

test('a feed with only the Kafka Connect connector\'s required keys gets that connector\'s defaults', async t => {
  const config = loadIngestConfig({ base: { kafka, feeds: [{ name: 'ticker', 'websocket.url': 'wss://feed.example/ws', 'kafka.topic': 'ticks' }] } })
  const feed = config.feeds[0]!
  t.equal(feed.url, 'wss://feed.example/ws')
  t.equal(feed.topic, 'ticks')
  t.same(feed.subscribe, [])
  t.same(feed.headers, {})
  t.equal(feed.connectTimeoutMs, 30_000, 'websocket.connection.timeout.ms')
  t.same(feed.reconnect, { enabled: true, baseMs: 5000, maxMs: 60_000, attempts: -1, jitter: 0.25 }, 'websocket.reconnect.*')
  t.equal(feed.buffer.capacity, 10_000, 'websocket.message.queue.size')
  t.equal(feed.buffer.overflow, 'drop-newest', 'a full queue refuses the newest, as the connector\'s does')
})

test('every Connect key maps to its native setting, string values included', async t => {
  const config = loadIngestConfig({
    base: {
      kafka,
      feeds: [{
        name: 'connect',
        'websocket.url': 'wss://feed.example/ws',
        'kafka.topic': 'ticks',
        'websocket.subscription.message': '{"op":"subscribe"}',
        'websocket.reconnect.enabled': 'false',
        'websocket.reconnect.interval.ms': '250',
        'websocket.reconnect.max.attempts': '7',
        'websocket.reconnect.backoff.max.ms': 4000,
        'websocket.headers': 'X-Client:sluice, X-Trace : a:b',
        'websocket.auth.token': 'tok',
        'websocket.message.queue.size': '123',
        'websocket.connection.timeout.ms': '900'
      }]
    }
  })
  const feed = config.feeds[0]!
  t.same(feed.subscribe, ['{"op":"subscribe"}'])
  t.same(feed.reconnect, { enabled: false, baseMs: 250, maxMs: 4000, attempts: 7, jitter: 0.25 })
  t.same(feed.headers, { 'X-Client': 'sluice', 'X-Trace': 'a:b', Authorization: 'Bearer tok' }, 'split at the first colon; the token as a bearer credential')
  t.equal(feed.buffer.capacity, 123)
  t.equal(feed.connectTimeoutMs, 900)
})

test('the connector\'s max.attempts 0 means unlimited (its code limits only above 0); natively 0 is refused', async t => {
  const connect = loadIngestConfig({ base: { kafka, feeds: [{ name: 'a', 'websocket.url': 'ws://h', 'kafka.topic': 't', 'websocket.reconnect.max.attempts': 0 }] } })
  t.equal(connect.feeds[0]!.reconnect.attempts, -1)
  const err = problemsOf(() => loadIngestConfig({ base: { kafka, feeds: [{ name: 'a', url: 'ws://h', topic: 't', reconnect: { attempts: 0 } }] } }))
  t.match(err.problems, [{ path: '/feeds/0/reconnect/attempts', message: /^feed "a": must be -1 \(unlimited\) or at least 1/ }])
})

test('native keys: subscription objects become JSON text, in order', async t => {
  const config = loadIngestConfig({
    base: {
      kafka,
      feeds: [{
        name: 'native',
        url: 'ws://127.0.0.1:1/x',
        topic: 't',
        subscribe: [{ op: 'subscribe', channel: 'trades' }, 'ping'],
        headers: { 'X-Feed': 'v' },
        token: 'tok',
        reconnect: { baseMs: 10, maxMs: 20, attempts: 3, jitter: 0 },
        buffer: { capacity: 5, maxBytes: 4096, overflow: 'drop-oldest', pause: false },
        batch: { maxRecords: 2, maxBytes: 2048 },
        maxMessageBytes: 1024,
        key: '/symbol',
        sequence: '/seq'
      }]
    }
  })
  const feed = config.feeds[0]!
  t.same(feed.subscribe, ['{"op":"subscribe","channel":"trades"}', 'ping'])
  t.same(feed.headers, { 'X-Feed': 'v', Authorization: 'Bearer tok' })
  t.same(feed.buffer, { capacity: 5, maxBytes: 4096, overflow: 'drop-oldest', pause: false })
  t.same(feed.batch, { maxRecords: 2, maxBytes: 2048 })
  t.equal(feed.key, '/symbol')
  t.equal(feed.sequence, '/seq')
})

test('secrets come from env references in the URL, headers, token and subscriptions', async t => {
  const config = loadIngestConfig({
    env: { FEED_KEY: 'k-123', FEED_TOKEN: 't-456', FEED_HDR: 'h-789' },
    base: {
      kafka,
      feeds: [{
        name: 'secret',
        url: 'wss://feed.example/ws?apikey=' + ref('FEED_KEY'),
        topic: 't',
        token: ref('FEED_TOKEN'),
        headers: { 'X-Api-Key': ref('FEED_HDR') },
        subscribe: { op: 'auth', key: ref('FEED_KEY') }
      }]
    }
  })
  const feed = config.feeds[0]!
  t.equal(feed.url, 'wss://feed.example/ws?apikey=k-123')
  t.equal(feed.headers.Authorization, 'Bearer t-456')
  t.equal(feed.headers['X-Api-Key'], 'h-789')
  t.same(feed.subscribe, ['{"op":"auth","key":"k-123"}'])
})

test('schema errors name the feed, the key and the line, all at once', async t => {
  const file = writeConfig([
    'kafka:',
    '  brokers: [127.0.0.1:9092]',
    'feeds:',
    '  - name: btc',
    '    url: wss://feed.example/ws',
    '    topic: trades',
    '    buffer:',
    '      capacity: 0',
    '      overflow: drop-random',
    '  - name: eth',
    '    websocket.url: wss://feed.example/ws',
    '    kafka.topic: trades',
    '    websocket.reconnect.interval.ms: soon',
    '    colour: blue'
  ])
  const err = problemsOf(() => loadIngestConfig({ file }))
  t.equal(err.code, 'SLUICE_CONFIG_INVALID')
  const lines = err.message.split('\n')
  t.ok(lines.includes(`- /feeds/0/buffer/capacity: feed "btc": must be >= 1 (${file}:8)`), 'a range, with its feed and line')
  t.ok(lines.some(l => l.startsWith('- /feeds/0/buffer/overflow: feed "btc": must be one of "drop-newest", "drop-oldest"')), 'an enum')
  t.ok(lines.includes(`- /feeds/1/websocket.reconnect.interval.ms: feed "eth": must be integer (${file}:13)`), 'a Connect key by its own name')
  t.ok(lines.includes(`- /feeds/1/colour: feed "eth": unknown key (${file}:14)`), 'an unknown key')
})

test('semantic errors name the feed and the key too, and never quote a secret', async t => {
  const file = writeConfig([
    'kafka:',
    '  brokers: [127.0.0.1:9092]',
    'feeds:',
    '  - name: btc',
    '    url: http://feed.example/ws?apikey=SECRET-IN-URL',
    '    websocket.url: wss://feed.example/ws',
    '  - name: eth',
    '    url: wss://feed.example/ws',
    '    topic: trades',
    '    token: ' + ref('ETH_TOKEN'),
    '    websocket.headers: "X-Ok:1,broken"',
    '    reconnect:',
    '      baseMs: 1000',
    '      maxMs: 10',
    '  - name: eth',
    '    url: wss://feed.example/ws',
    '    topic: trades',
    '    headers:',
    '      Authorization: Basic SECRET-IN-HEADER',
    '    token: SECRET-TOKEN'
  ])
  const err = problemsOf(() => loadIngestConfig({ file, env: {} }))
  const lines = err.message.split('\n')
  const has = (text: string) => t.ok(lines.includes(text), text)
  has(`- /feeds/0/websocket.url: feed "btc": conflicts with url: give one of the two (${file}:6)`)
  has(`- /feeds/0/topic: feed "btc": is required (or kafka.topic) (${file}:4)`)
  has(`- /feeds/1/token: feed "eth": environment variable ETH_TOKEN is not set (${file}:10)`)
  has(`- /feeds/1/websocket.headers: feed "eth": pair 2 has no ":" between name and value (${file}:11)`)
  has(`- /feeds/1/reconnect/maxMs: feed "eth": must be at least the base delay (1000 ms) (${file}:14)`)
  has(`- /feeds/2/token: feed "eth": conflicts with an Authorization header: give one of the two (${file}:20)`)
  has(`- /feeds/2/name: feed "eth": duplicates the name of /feeds/1 (${file}:15)`)
  t.notMatch(err.message, 'SECRET', 'no secret value in any message')

  const scheme = problemsOf(() => loadIngestConfig({ base: { kafka, feeds: [{ name: 'x', url: 'https://h/?k=SECRET', topic: 't' }] } }))
  t.match(scheme.problems, [{ path: '/feeds/0/url', message: 'feed "x": must be a ws:// or wss:// URL with a host' }])
  t.notMatch(scheme.message, 'SECRET')
})

test('handshake headers cannot be configured; header values cannot smuggle CR/LF', async t => {
  const err = problemsOf(() => loadIngestConfig({
    env: { EVIL: 'a\r\nX-Injected: 1' },
    base: { kafka, feeds: [{ name: 'h', url: 'ws://h', topic: 't', headers: { Upgrade: 'tcp', 'X-A': ref('EVIL') } }] }
  }))
  t.match(err.problems, [
    { path: '/feeds/0/headers/Upgrade', message: 'feed "h": header Upgrade is set by the WebSocket handshake and cannot be configured' },
    { path: '/feeds/0/headers/X-A', message: 'feed "h": header X-A: the value contains CR, LF or NUL' }
  ])
})

test('at least one feed; the frame limit fits the buffer; Kafka from the environment', async t => {
  const none = problemsOf(() => loadIngestConfig({ base: { kafka, feeds: [] } }))
  t.match(none.problems, [{ path: '/feeds', message: 'must NOT have fewer than 1 items' }])
  const big = problemsOf(() => loadIngestConfig({ base: { kafka, feeds: [{ name: 'b', url: 'ws://h', topic: 't', maxMessageBytes: 4096, buffer: { maxBytes: 2048 } }] } }))
  t.match(big.problems, [{ path: '/feeds/0/maxMessageBytes', message: 'feed "b": must not exceed buffer.maxBytes (2048)' }])
  const fromEnv = loadIngestConfig({ env: { KAFKA_BROKERS: 'k1:9092,k2:9092', SLUICE_PORT: '9999' }, base: { feeds: [{ name: 'e', url: 'ws://h', topic: 't' }] } })
  t.same(fromEnv.kafka.brokers, ['k1:9092', 'k2:9092'])
  t.equal(fromEnv.server.port, 9999)
})

test('the Connect header string format', async t => {
  t.same(parseConnectHeaders(''), { headers: {}, errors: [] })
  t.same(parseConnectHeaders('A:1,B: two '), { headers: { A: '1', B: 'two' }, errors: [] })
  t.same(parseConnectHeaders('bad name:1').errors, ['pair 1: the header name is not an HTTP token'])
})

test('the shipped example config is valid', async t => {
  const file = join(import.meta.dirname, '..', 'feeds.example.yaml')
  const config = loadIngestConfig({ file, env: { EXCHANGE_TOKEN: 'x', SENSORS_KEY: 'y' } })
  t.same(config.feeds.map(f => f.name), ['btc-trades', 'sensors'])
  t.same(config.feeds[0]!.subscribe, ['{"op":"subscribe","channel":"trades","symbols":["BTC-USD"]}'])
  t.same(config.feeds[1]!.headers, { 'X-Tenant': 'acme', 'X-Region': 'eu-west-1' })
  t.equal(config.feeds[1]!.url, 'wss://iot.example/stream?key=y')
  const missing = problemsOf(() => loadIngestConfig({ file, env: {} }))
  t.match(missing.problems, [
    { path: '/feeds/0/token', message: 'feed "btc-trades": environment variable EXCHANGE_TOKEN is not set' },
    { path: '/feeds/1/websocket.url', message: 'feed "sensors": environment variable SENSORS_KEY is not set' }
  ])
})

test('every limit of a feed is enforced, by number', async t => {
  const feed = (extra: Record<string, unknown>) => ({ name: 'lim', url: 'ws://h', topic: 't', ...extra })
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    ['capacity', { buffer: { capacity: 1_000_001 } }, '/feeds/0/buffer/capacity', 'must be <= 1000000'],
    ['Connect queue size', { 'websocket.message.queue.size': 1_000_001 }, '/feeds/0/websocket.message.queue.size', 'must be <= 1000000'],
    ['buffer bytes', { buffer: { maxBytes: 1024 ** 3 + 1 } }, '/feeds/0/buffer/maxBytes', 'must be <= 1073741824'],
    ['buffer bytes floor', { buffer: { maxBytes: 1023 } }, '/feeds/0/buffer/maxBytes', 'must be >= 1024'],
    ['frame size', { maxMessageBytes: 64 * 1024 * 1024 + 1 }, '/feeds/0/maxMessageBytes', 'must be <= 67108864'],
    ['batch records', { batch: { maxRecords: 10_001 } }, '/feeds/0/batch/maxRecords', 'must be <= 10000'],
    ['connect timeout floor', { connectTimeoutMs: 99 }, '/feeds/0/connectTimeoutMs', 'must be >= 100'],
    ['backoff ceiling', { reconnect: { maxMs: 3_600_001 } }, '/feeds/0/reconnect/maxMs', 'must be <= 3600000'],
    ['jitter', { reconnect: { jitter: 1.5 } }, '/feeds/0/reconnect/jitter', 'must be <= 1'],
    ['subscriptions', { subscribe: Array.from({ length: 101 }, () => 'x') }, '/feeds/0/subscribe', 'must NOT have more than 100 items'],
    ['headers', { headers: Object.fromEntries(Array.from({ length: 65 }, (_v, i) => [`X-H${i}`, 'v'])) }, '/feeds/0/headers', 'must NOT have more than 64 properties'],
    ['subscription size', { subscribe: { blob: 'x'.repeat(64 * 1024) } }, '/feeds/0/subscribe', 'must be at most 65536 bytes'],
    ['feed name', { name: 'has space' }, '/feeds/0/name', 'must match pattern']
  ]
  for (const [what, extra, path, message] of cases) {
    const err = problemsOf(() => loadIngestConfig({ base: { kafka, feeds: [feed(extra)] } }))
    t.ok(err.problems.some(p => p.path === path && p.message.includes(message)), `${what}: ${path} ${message}`)
  }
  const many = problemsOf(() => loadIngestConfig({ base: { kafka, feeds: Array.from({ length: 257 }, (_v, i) => feed({ name: `f${i}` })) } }))
  t.match(many.problems, [{ path: '/feeds', message: 'must NOT have more than 256 items' }], 'at most 256 feeds per process')
})

test('kafka.sasl: an env reference in the file is resolved, an unset one named, an env value shaped like a reference refused', async t => {
  const feed = { name: 'a', 'websocket.url': 'ws://h', 'kafka.topic': 't' }
  const sasl = { mechanism: 'scram-sha-512', username: ref('KAFKA_USER'), password: ref('KAFKA_PASSWORD') }
  const config = loadIngestConfig({ base: { kafka: { ...kafka, tls: { enabled: true }, sasl }, feeds: [feed] }, env: { KAFKA_USER: 'ingest', KAFKA_PASSWORD: 'pw-0123456789' } })
  t.same(config.kafka.sasl, { mechanism: 'scram-sha-512', username: 'ingest', password: 'pw-0123456789' })
  t.match(problemsOf(() => loadIngestConfig({ base: { kafka: { ...kafka, sasl }, feeds: [feed] }, env: { KAFKA_USER: 'ingest' } })).message, /\/kafka\/sasl\/password.*KAFKA_PASSWORD is not set/)
  const fromEnv = loadIngestConfig({ base: { kafka, feeds: [feed] }, env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p-0123456789' } })
  t.same(fromEnv.kafka.sasl, { mechanism: 'plain', username: 'u', password: 'p-0123456789' }, 'from the environment alone')
  t.match(problemsOf(() => loadIngestConfig({ base: { kafka, feeds: [feed] }, env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: ref('X') } })).message, /\/kafka\/sasl\/password/)
})
