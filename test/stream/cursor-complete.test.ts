// The subscribed frame carries where the subscription starts on every
// partition, so a client can resume exactly, including partitions it has not
// heard from. Before, a client that subscribed at `latest` and resumed with
// the cursor it built from the messages it saw replayed whole partitions it
// never received (no message: no position).
import { test } from 'tap'
import { parseCursor } from '@sluice/hub'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { unique } from '../helpers.ts'

const PARTITIONS = 3

test('the cursor of a subscribed frame at latest, used right away after a disconnect, replays exactly what was produced since, on every partition', async t => {
  const topic = unique('cursor-complete')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])
  // history on partitions 0 and 1 only: partition 2 is empty, its start is offset 0
  for (let i = 0; i < 4; i++) await kafka.produce(topic, { value: Buffer.from(`"old ${i}"`), partition: i % 2 })

  const first = new Client(`${url}/v1/stream`)
  await first.opened
  first.send({ op: 'subscribe', id: 's', topics: [topic] })
  const subscribed = await first.next(f => f.id === 's')
  t.type(subscribed.cursor, 'string', 'the subscribed frame carries a cursor')
  const start = parseCursor(subscribed.cursor as string).get(topic)
  t.same([...start!.entries()].sort(), [[0, 2n], [1, 2n], [2, 0n]], 'every partition, including the one nothing was written to')
  first.close()
  await first.closed

  // produced while the client was away, on every partition
  const produced = new Set<string>()
  for (let i = 0; i < 9; i++) {
    const meta = await kafka.produce(topic, { value: Buffer.from(`"new ${i}"`), partition: i % PARTITIONS })
    produced.add(`${meta.partition}:${meta.offset}`)
  }
  const second = new Client(`${url}/v1/stream?topics=${topic}&from=${encodeURIComponent(subscribed.cursor as string)}`)
  await second.opened
  t.teardown(() => second.close())
  const replayed = await second.waitMessages(9, 15_000, topic)
  await new Promise(resolve => setTimeout(resolve, 500))
  const got = second.messages(topic).map(m => `${m.partition}:${m.offset}`)
  t.same(new Set(got), produced, 'exactly the records produced since')
  t.equal(got.length, produced.size, 'no duplicate, and none of the history before the cursor')
  t.equal(replayed.filter(m => String(m.value).startsWith('old')).length, 0)
})

test('a pattern subscription\'s reply and a topic it reaches later carry their cursors', async t => {
  const prefix = unique('cursor-pattern')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic: `${prefix}.a`, partitions: 2 }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())
  client.send({ op: 'subscribe', id: 'p', topics: [`${prefix}.*`] })
  const reply = await client.next(f => f.id === 'p')
  t.same([...parseCursor(reply.cursor as string).keys()], [`${prefix}.a`])
  await kafka.ensureTopics([{ topic: `${prefix}.b`, partitions: 2 }])
  const later = await client.next(f => f.op === 'subscribed' && f.pattern === `${prefix}.*`, 15_000)
  t.same([...parseCursor(later.cursor as string).get(`${prefix}.b`)!.entries()], [[0, 0n], [1, 0n]], 'a new topic starts at its beginning, and says so')
})
