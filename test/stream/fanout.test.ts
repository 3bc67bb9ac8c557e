// 200 sockets on one topic each receive all 10,000 records, in order per
// partition, while this gateway runs exactly one Kafka consumer for the topic.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { unique } from '../helpers.ts'

const SOCKETS = 200
const RECORDS = 10_000

test('one consumer per topic fans every record out to every socket, in order', async t => {
  const topic = unique('fanout')
  // the 200 clients share this process (and its CPU) with the gateway, so they read
  // slower than real ones would: a queue that holds a whole run keeps this suite
  // about fan-out, not about slow clients (stream-slow-client.test.ts is)
  const { app, url, kafka } = await streamApp({ access: allowAll(), nodeId: 'fanout', limits: { maxQueueBytes: 4 * 1024 * 1024 } })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])

  const clients = Array.from({ length: SOCKETS }, () => new Client(`${url}/v1/stream?topics=${topic}`))
  t.teardown(() => { for (const c of clients) c.close() })
  await Promise.all(clients.map(c => c.opened))
  await Promise.all(clients.map(c => c.next(f => f.op === 'subscribed')))

  for (let sent = 0; sent < RECORDS; sent += 1000) {
    await kafka.produceBatch(topic, Array.from({ length: 1000 }, (_v, i) => ({ key: `k${(sent + i) % 7}`, value: JSON.stringify({ n: sent + i }) })))
  }
  await Promise.all(clients.map(c => c.waitMessages(RECORDS, 120_000)))

  let complete = 0
  let ordered = 0
  for (const client of clients) {
    const messages = client.messages(topic)
    const ns = new Set(messages.map(m => (m.value as { n: number }).n))
    if (messages.length === RECORDS && ns.size === RECORDS) complete++
    const last = new Map<number, bigint>()
    let inOrder = true
    for (const m of messages) {
      const offset = BigInt(m.offset as string)
      const prior = last.get(m.partition as number)
      if (prior !== undefined && offset <= prior) inOrder = false
      last.set(m.partition as number, offset)
    }
    if (inOrder) ordered++
  }
  t.equal(app.hub.stats.drops, 0, 'nothing was dropped')
  t.equal(complete, SOCKETS, 'every socket got every record exactly once')
  t.equal(ordered, SOCKETS, 'in offset order per partition on every socket')

  t.equal(app.hub.consumers, 1, 'the hub runs one reader for the topic')
  // group-less: no consumer group of the hub's on the broker (test/stream/no-groups.test.ts has the full check)
  t.same((await kafka.listGroups()).filter(g => g.includes(topic)), [], 'the broker knows no group for the topic')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /sluice_hub_consumers 1\n/)
  t.match(metrics.body, new RegExp(`sluice_hub_deliveries_total ${SOCKETS * RECORDS}\\n`))
})
