// A client disconnected mid-stream and reconnected with its cursor to a
// second gateway instance receives, over both connections, every record
// exactly once. The cursor holds no server state.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client, type Frame } from '../harness/client.ts'
import { eventually, unique } from '../helpers.ts'

const RECORDS = 3000

function cursorOf (topic: string, frames: Frame[]): string {
  const next = new Map<number, bigint>()
  for (const f of frames) next.set(f.partition as number, BigInt(f.offset as string) + 1n)
  return `${topic}@` + [...next].sort((a, b) => a[0] - b[0]).map(([p, o]) => `${p}:${o}`).join(',')
}

test('resume on another node with a cursor: every record exactly once', async t => {
  const topic = unique('resume')
  const first = await streamApp({ access: allowAll(), nodeId: 'node-a' })
  const second = await streamApp({ access: allowAll(), nodeId: 'node-b' })
  t.teardown(async () => { await first.app.close(); await second.app.close() })
  await first.kafka.ensureTopics([{ topic, partitions: 3 }])

  const a = new Client(`${first.url}/v1/stream?topics=${topic}`)
  await a.next(f => f.op === 'subscribed')
  // the producer keeps writing while the client moves between nodes
  let produced = 0
  const producing = (async () => {
    while (produced < RECORDS) {
      await first.kafka.produceBatch(topic, Array.from({ length: 100 }, (_v, i) => ({ key: `k${(produced + i) % 5}`, value: JSON.stringify({ n: produced + i }) })))
      produced += 100
    }
  })()
  await a.waitMessages(500, 30_000)
  a.ws.terminate()
  await a.closed
  const seenOnA = a.messages()
  const cursor = cursorOf(topic, seenOnA)

  const b = new Client(`${second.url}/v1/stream?topics=${topic}&from=${encodeURIComponent(cursor)}`)
  t.teardown(() => b.close())
  await b.next(f => f.op === 'subscribed')
  await producing
  await eventually(() => seenOnA.length + b.messages().length >= RECORDS, 60_000, 'all records over both connections')
  // a moment for any duplicate to show up
  await new Promise(resolve => setTimeout(resolve, 500))

  const all = [...seenOnA, ...b.messages()].map(f => (f.value as { n: number }).n)
  t.equal(all.length, RECORDS, 'as many deliveries as records')
  t.equal(new Set(all).size, RECORDS, 'each record exactly once')
  t.ok(seenOnA.length < RECORDS && b.messages().length > 0, 'both connections carried part of the stream')
  // the resume started the topic's feed on the second node, which read the gap into its window first;
  // a backfill cut short (a loaded broker) leaves the gap to a catch-up reader, as before
  t.equal(second.app.hub.stats.backfills + second.app.hub.stats.backfillsCut, 1, 'the second node\'s feed read the gap first')
  t.equal(second.app.hub.stats.catchUps, second.app.hub.stats.backfillsCut, 'a catch-up reader only if the backfill was cut short')
})

test('from=earliest replays the topic, then joins live, with no duplicate', async t => {
  const topic = unique('earliest')
  const { app, url, kafka } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  await kafka.produceBatch(topic, Array.from({ length: 200 }, (_v, i) => ({ value: JSON.stringify({ n: i }), partition: i % 2 })))
  const c = new Client(`${url}/v1/stream`)
  t.teardown(() => c.close())
  await c.opened
  c.send({ op: 'subscribe', id: 's', topics: [topic], from: 'earliest' })
  await c.next(f => f.id === 's')
  await kafka.produceBatch(topic, Array.from({ length: 200 }, (_v, i) => ({ value: JSON.stringify({ n: 200 + i }), partition: i % 2 })))
  await c.waitMessages(400, 30_000)
  await new Promise(resolve => setTimeout(resolve, 300))
  const ns = c.messages().map(f => (f.value as { n: number }).n)
  t.equal(ns.length, 400)
  t.equal(new Set(ns).size, 400, 'history and live, each record once')
  c.send({ op: 'unsubscribe', id: 'u', topics: [topic] })
  t.match(await c.next(f => f.id === 'u'), { op: 'unsubscribed', topics: [topic] })
  await kafka.produceBatch(topic, [{ value: JSON.stringify({ n: 999 }) }])
  c.send({ op: 'ping', id: 'after' })
  await c.next(f => f.id === 'after')
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(c.messages().length, 400, 'nothing after unsubscribing')
})
