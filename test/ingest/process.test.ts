// The ingest app as a process: a bad feed config exits 78 naming the feed and
// the key; SIGTERM flushes the buffer to Kafka before exiting; when Kafka cannot
// take it within the deadline the process exits 1 and says how many records
// were left, rather than losing them silently.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KafkaClient } from '@sluice/kafka'
import { freePort } from '@sluice/stack'
import { FeedServer, metric, readTopic, seqs } from './feed-server.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const entry = join(import.meta.dirname, '..', '..', 'apps', 'ingest', 'src', 'server.ts')

function writeConfig (lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-ingest-')), 'feeds.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function runIngest (args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [entry, ...args], { env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += chunk })
  child.stderr.on('data', chunk => { stderr += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, exited, out: () => stdout, err: () => stderr }
}

async function scrape (port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined)
  return res?.ok ? res.text() : ''
}

test('a bad feed config exits 78, naming the feed and the key', async t => {
  const file = writeConfig([
    'kafka:',
    '  brokers: [127.0.0.1:9092]',
    'feeds:',
    '  - name: coinbase',
    '    websocket.url: wss://ws-feed.example.com',
    '    kafka.topic: trades',
    '    websocket.message.queue.size: -5',
    '  - name: sensors',
    '    url: ws://sensors.local/stream',
    '    topic: sensors',
    '    buffer:',
    '      overflow: drop-middle'
  ])
  const ingest = runIngest(['--config', file], {})
  t.equal(await ingest.exited, 78, 'EX_CONFIG')
  t.match(ingest.err(), `- /feeds/0/websocket.message.queue.size: feed "coinbase": must be >= 1 (${file}:7)`)
  t.match(ingest.err(), `- /feeds/1/buffer/overflow: feed "sensors": must be one of "drop-newest", "drop-oldest" (${file}:12)`)
})

test('SIGTERM flushes the buffer to Kafka, then exits 0', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-ingest-sigterm' })
  t.teardown(() => kafka.close())
  const topic = unique('ingest-sigterm')
  await kafka.ensureTopics([{ topic }])
  const port = await freePort()
  const file = writeConfig([
    'feeds:',
    '  - name: flush',
    `    url: ${server.url}`,
    `    topic: ${topic}`,
    // one record per produce request: the buffer is still full when SIGTERM comes
    '    batch: { maxRecords: 1 }',
    '    buffer: { pause: false }'
  ])
  const subscriber = server.nextSubscriber()
  const ingest = runIngest(['--config', file], {
    KAFKA_BROKERS: kafkaBrokers().join(','),
    SLUICE_HOST: '127.0.0.1',
    SLUICE_PORT: String(port),
    SLUICE_SHUTDOWN_TIMEOUT_MS: '60000'
  })
  t.teardown(() => { ingest.child.kill('SIGKILL') })
  const ws = await subscriber
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200, 20_000, 'ready')

  const total = 3000
  await server.burst(ws, total, 100, i => JSON.stringify({ seq: i }))
  let queued = 0
  await eventually(async () => {
    const text = await scrape(port)
    queued = metric(text, 'sluice_ingest_queue_size', { feed: 'flush' }) ?? 0
    return metric(text, 'sluice_ingest_received_total', { feed: 'flush' }) === total
  }, 20_000, 'every message received')
  ingest.child.kill('SIGTERM')
  t.ok(queued > 0, `${queued} records were still buffered at SIGTERM`)
  t.equal(await ingest.exited, 0, 'a clean exit')
  t.same(seqs(await readTopic(kafka, topic, total)), Array.from({ length: total }, (_v, i) => i), 'every buffered record reached Kafka, in order')
  t.match(ingest.out(), '"msg":"feed flushed"')
  t.match(ingest.out(), '"unflushed":0')
})

test('SIGTERM with Kafka unreachable: exits 1 within the deadline and reports what was not flushed', async t => {
  const server = new FeedServer()
  await server.start()
  t.teardown(() => server.close())
  const port = await freePort()
  const nowhere = await freePort()
  const file = writeConfig([
    'feeds:',
    '  - name: stranded',
    `    url: ${server.url}`,
    '    topic: stranded'
  ])
  const subscriber = server.nextSubscriber()
  const ingest = runIngest(['--config', file], {
    KAFKA_BROKERS: `127.0.0.1:${nowhere}`,
    SLUICE_HOST: '127.0.0.1',
    SLUICE_PORT: String(port),
    SLUICE_SHUTDOWN_TIMEOUT_MS: '2000'
  })
  t.teardown(() => { ingest.child.kill('SIGKILL') })
  const ws = await subscriber
  await server.burst(ws, 50, 10, i => JSON.stringify({ seq: i }))
  await eventually(async () => metric(await scrape(port), 'sluice_ingest_received_total', { feed: 'stranded' }) === 50, 20_000, 'the messages received')
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
  t.equal(ready.status, 503, 'not ready without Kafka')
  ingest.child.kill('SIGTERM')
  t.equal(await ingest.exited, 1, 'exit 1: records were left')
  t.match(ingest.out(), /"code":"SLUICE_INGEST_FLUSH_DEADLINE","unflushed":50/, 'the count of records left, with its code')
  t.match(ingest.out(), '"unflushed":50')
})
