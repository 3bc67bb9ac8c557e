// Group mode: sockets with the same group share the topic's partitions the
// Kafka way, each record to exactly one of them, across gateway nodes.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { eventually, unique } from '../helpers.ts'

test('two sockets in one group, on two nodes, receive each record exactly once', async t => {
  const topic = unique('group')
  const group = unique('workers')
  const a = await streamApp({ access: allowAll(), nodeId: 'node-a' })
  const b = await streamApp({ access: allowAll(), nodeId: 'node-b' })
  t.teardown(async () => { await a.app.close(); await b.app.close() })
  await a.kafka.ensureTopics([{ topic, partitions: 4 }])

  const c1 = new Client(`${a.url}/v1/stream?topics=${topic}&group=${group}`)
  const c2 = new Client(`${b.url}/v1/stream?topics=${topic}&group=${group}`)
  t.teardown(() => { c1.close(); c2.close() })
  await Promise.all([c1.next(f => f.op === 'subscribed'), c2.next(f => f.op === 'subscribed')])
  // both members joined: the broker shows the group with two members
  const groupId = (await a.kafka.listGroups()).find(g => g.endsWith(`.${group}`))
  t.ok(groupId, 'the group exists on the broker, namespaced by subject')
  await eventually(async () => (await a.kafka.groupMembers(groupId!)).length === 2, 30_000, 'two members')
  // let the rebalance settle before producing: a KIP-848 group (Kafka 4) gives the second member its
  // partitions at its next heartbeat, 5 s by the broker's default, and is Stable once both own theirs
  await eventually(async () => (await a.kafka.groupState(groupId!)).state === 'Stable', 30_000, 'the group stable')
  await new Promise(resolve => setTimeout(resolve, 1000))

  const RECORDS = 2000
  await a.kafka.produceBatch(topic, Array.from({ length: RECORDS }, (_v, i) => ({ key: `k${i}`, value: JSON.stringify({ n: i }) })))
  await eventually(() => c1.messages().length + c2.messages().length >= RECORDS, 60_000, 'all records delivered')
  await new Promise(resolve => setTimeout(resolve, 500))
  const all = [...c1.messages(), ...c2.messages()].map(f => (f.value as { n: number }).n)
  t.equal(all.length, RECORDS, 'as many deliveries as records')
  t.equal(new Set(all).size, RECORDS, 'each record to exactly one member')
  t.ok(c1.messages().length > 0 && c2.messages().length > 0, 'both members got a share')

  c1.send({ op: 'subscribe', id: 'x', topics: [topic] })
  t.match(await c1.next(f => f.id === 'x'), { op: 'error', code: 'BAD_REQUEST' }, 'a group socket keeps the topics it opened with')
})

test('without a group, every socket sees every record', async t => {
  const topic = unique('nogroup')
  const { app, url, kafka } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  const c1 = new Client(`${url}/v1/stream?topics=${topic}`)
  const c2 = new Client(`${url}/v1/stream?topics=${topic}`)
  t.teardown(() => { c1.close(); c2.close() })
  await Promise.all([c1.next(f => f.op === 'subscribed'), c2.next(f => f.op === 'subscribed')])
  await kafka.produceBatch(topic, Array.from({ length: 100 }, (_v, i) => ({ value: JSON.stringify({ n: i }) })))
  await Promise.all([c1.waitMessages(100, 30_000), c2.waitMessages(100, 30_000)])
  t.equal(c1.messages().length, 100)
  t.equal(c2.messages().length, 100)
})
