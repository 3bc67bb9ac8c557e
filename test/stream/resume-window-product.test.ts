// A product's `resume` in the policy sizes its topics' windows of recent
// records (issue 14), on the real gateway (buildApp: policy, hub, /v1/stream)
// and the broker: a small window serves a resume inside it from memory (the
// window replays counter grows, no catch-up reader) and one older than it from
// Kafka; `windowBytes: 0` keeps nothing, every resume going to Kafka; a policy
// reload that shrinks a running feed's window drops at once what no longer
// fits, and a resume from there is read from Kafka, the gap exactly.
import { test, type Test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Client, type Frame } from '../harness/client.ts'
import { eventually, unique } from '../helpers.ts'
import { DEV_TOKEN, gateway, type Gateway } from '../harness/compat.ts'

const LIMITS = '{ connections: 1000, connectsPerMinute: 10000, deliveredPerSecond: 1000000, publishedPerSecond: 100000, bytesPerSecond: 1000000000, dailyQuota: 1000000000 }'
// values of ~300 bytes: 300 records, ~1.2 KiB each in a window with their frames (~360 KiB), are far over 64 KiB and
// under the node's 1 MiB; as frames (~110 KiB) they fit a socket's 256 KiB queue, so the live subscriber hears no `lagging`
const RECORDS = 300
const BATCH = 15
const VALUE = 'x'.repeat(300)
// a window that holds a few dozen of them
const SMALL = 64 * 1024

/** one product per topic, each with its `resume` (YAML, or none), all open to the dev identity */
function policy (products: Record<string, { topic: string, resume?: string }>): string {
  return `
plans:
  test: { limits: ${LIMITS} }
products:
${Object.entries(products).map(([name, p]) => `  ${name}:
    plans: [test]
    topics: [{ pattern: '${p.topic}' }]
${p.resume ? `    resume: ${p.resume}\n` : ''}`).join('')}
rules:
${Object.entries(products).map(([name, p]) => `  - { name: ${name}, product: ${name}, plan: test, subscribe: ['${p.topic}'] }\n`).join('')}`
}

function client (gw: Gateway, topic: string, from?: string): Client {
  const query = `topics=${topic}${from ? `&from=${encodeURIComponent(from)}` : ''}`
  return new Client(`${gw.url}/v1/stream?${query}`, { headers: { authorization: `Bearer ${DEV_TOKEN}` } })
}

async function metric (app: FastifyInstance, name: string): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  const line = res.body.split('\n').find(l => l.startsWith(`${name} `))
  if (!line) throw new Error(`no ${name} in /metrics`)
  return Number(line.split(' ')[1])
}

/**
 * A live subscriber on a one-partition topic, then RECORDS records it received: the feed dispatched them all. Produced
 * BATCH at a time, each once the one before arrived, so that each is a fetch batch of its own (~18 KiB in a window):
 * windows evict by whole batch, and one batch of all would be over 64 KiB alone.
 */
async function liveFeed (t: Test, gw: Gateway, topic: string): Promise<Frame[]> {
  const live = client(gw, topic)
  t.teardown(() => live.close())
  await live.next(f => f.op === 'subscribed', 20_000)
  for (let n = 0; n < RECORDS; n += BATCH) {
    await gw.kafka.produceBatch(topic, Array.from({ length: BATCH }, (_v, i) => ({ value: JSON.stringify({ n: n + i, pad: VALUE }), partition: 0 })))
    await live.waitMessages(n + BATCH, 20_000)
  }
  return live.messages()
}

/** a resume from `offset` on partition 0; resolves with the offsets it got once it has every record from there */
async function resume (t: Test, gw: Gateway, topic: string, offset: bigint, last: bigint): Promise<bigint[]> {
  const c = client(gw, topic, `${topic}@0:${offset}`)
  t.teardown(() => c.close())
  await c.next(f => f.op === 'subscribed', 20_000)
  await c.waitMessages(Number(last - offset + 1n), 20_000)
  // a duplicate would come right behind
  await new Promise(resolve => setTimeout(resolve, 200))
  return c.messages().map(f => BigInt(f.offset as string))
}

const span = (from: bigint, to: bigint) => Array.from({ length: Number(to - from + 1n) }, (_v, i) => from + BigInt(i))

test('a product with a small window: a resume inside it is served from memory, one older than it from Kafka', async t => {
  const topic = unique('rwp-small')
  const gw = await gateway(t, { policy: policy({ small: { topic, resume: `{ windowBytes: ${SMALL}, windowMs: 60000 }` } }) })
  await gw.kafka.ensureTopics([{ topic, partitions: 1 }])
  const seen = await liveFeed(t, gw, topic)
  const first = BigInt(seen[0]!.offset as string)
  const last = BigInt(seen.at(-1)!.offset as string)
  const window = gw.app.hub.windows.of(topic)!
  t.same(window.bounds, { maxBytes: SMALL, maxAgeMs: 60_000 }, 'the product\'s bounds, not the node\'s 1 MiB')
  t.ok(window.bytes > 0 && window.bytes <= SMALL, `the window holds ${window.bytes} bytes, within the product's ${SMALL}`)
  const start = window.start(0)!
  t.ok(start > first && start <= last, `it let the oldest go: it starts at ${start}, the records at ${first}`)

  const replays = await metric(gw.app, 'sluice_hub_window_replays_total')
  const catchUps = await metric(gw.app, 'sluice_hub_catchups_total')
  t.same(await resume(t, gw, topic, start, last), span(start, last), 'inside the window: exactly the gap')
  t.equal(await metric(gw.app, 'sluice_hub_window_replays_total'), replays + 1, 'served from the window')
  t.equal(await metric(gw.app, 'sluice_hub_catchups_total'), catchUps, 'no catch-up reader')

  t.same(await resume(t, gw, topic, first, last), span(first, last), 'older than the window: exactly the gap too')
  t.equal(await metric(gw.app, 'sluice_hub_catchups_total'), catchUps + 1, 'read from Kafka')
  t.equal(await metric(gw.app, 'sluice_hub_window_replays_total'), replays + 1)
})

test('a product with windowBytes 0 keeps nothing: a resume of the last records is read from Kafka', async t => {
  const topic = unique('rwp-none')
  const gw = await gateway(t, { policy: policy({ none: { topic, resume: '{ windowBytes: 0 }' } }) })
  await gw.kafka.ensureTopics([{ topic, partitions: 1 }])
  const seen = await liveFeed(t, gw, topic)
  const last = BigInt(seen.at(-1)!.offset as string)
  const window = gw.app.hub.windows.of(topic)!
  t.equal(window.bounds.maxBytes, 0)
  t.equal(window.bytes, 0, 'nothing held')
  t.equal(gw.app.hub.windows.bytes, 0, 'nothing on the node')
  t.equal(window.start(0), last + 1n, 'it covers the live position alone')

  const catchUps = gw.app.hub.stats.catchUps
  t.same(await resume(t, gw, topic, last - 4n, last), span(last - 4n, last), 'the last 5 records, exactly')
  t.equal(gw.app.hub.stats.catchUps, catchUps + 1, 'read from Kafka')
  t.equal(gw.app.hub.stats.windowReplays, 0, 'never from memory')
})

test('a policy reload that shrinks a running feed\'s window drops at once what no longer fits', async t => {
  const topic = unique('rwp-shrink')
  const gw = await gateway(t, { policy: policy({ shrink: { topic } }) })
  await gw.kafka.ensureTopics([{ topic, partitions: 1 }])
  const seen = await liveFeed(t, gw, topic)
  const first = BigInt(seen[0]!.offset as string)
  const last = BigInt(seen.at(-1)!.offset as string)
  const window = gw.app.hub.windows.of(topic)!
  t.same(window.bounds, { maxBytes: 1024 * 1024, maxAgeMs: 60_000 }, 'no resume in the product: the node\'s bounds')
  t.equal(window.start(0), first, 'all of it held')
  const held = window.bytes

  await writeFile(join(gw.policyDir, 'policy.yaml'), policy({ shrink: { topic, resume: `{ windowBytes: ${SMALL}, windowMs: 60000 }` } }))
  // no record comes meanwhile: only the reload can shrink it
  await eventually(() => window.bounds.maxBytes === SMALL, 5000, 'the reload reaching the window')
  t.ok(window.bytes <= SMALL, `from ${held} to ${window.bytes} bytes with no new record`)
  const start = window.start(0)!
  t.ok(start > first, `the oldest went: it starts at ${start}`)
  t.equal(gw.app.hub.windows.bytes, window.bytes, 'and the node counts it')

  const catchUps = gw.app.hub.stats.catchUps
  const replays = gw.app.hub.stats.windowReplays
  t.same(await resume(t, gw, topic, first, last), span(first, last), 'a resume from where the window started: exactly the gap')
  t.equal(gw.app.hub.stats.catchUps, catchUps + 1, 'from Kafka, since the window dropped it')
  t.same(await resume(t, gw, topic, start, last), span(start, last), 'and from inside the smaller window')
  t.equal(gw.app.hub.stats.windowReplays, replays + 1, 'from memory')
  t.equal(gw.app.hub.stats.catchUps, catchUps + 1)
})
