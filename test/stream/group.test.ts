// Group mode: sockets with the same group share the topic's partitions the
// Kafka way, each record to exactly one of them, across gateway nodes.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client, refusal } from '../harness/client.ts'
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

test('a group starts where from says on partitions it has not committed on, and refuses a cursor', async t => {
  const topic = unique('group-from')
  const { app, url, kafka } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  await kafka.produceBatch(topic, Array.from({ length: 10 }, (_v, i) => ({ value: JSON.stringify({ n: i }) })))

  const earliest = new Client(`${url}/v1/stream?topics=${topic}&group=${unique('from-earliest')}&from=earliest`)
  const latest = new Client(`${url}/v1/stream?topics=${topic}&group=${unique('from-latest')}`)
  t.teardown(() => { earliest.close(); latest.close() })
  await Promise.all([earliest.next(f => f.op === 'subscribed'), latest.next(f => f.op === 'subscribed')])
  const history = await earliest.waitMessages(10, 30_000, topic)
  t.same(history.map(f => (f.value as { n: number }).n).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'from=earliest: a new group reads the history')
  // until the member has its partitions (a new record now and then), then: none of the history
  let n = 10
  await eventually(async () => {
    await kafka.produceBatch(topic, [{ value: JSON.stringify({ n: n++ }) }])
    return latest.messages(topic).length > 0
  }, 30_000, 'the latest member reads')
  t.same(latest.messages(topic).filter(f => (f.value as { n: number }).n < 10), [], 'no from: a new group starts at the end')

  const cursor = new Client(`${url}/v1/stream?topics=${topic}&group=${unique('from-cursor')}&from=${encodeURIComponent(`${topic}@0:1`)}`)
  const refused = await refusal(cursor)
  t.equal(refused.status, 400)
  t.match(refused.body, { error: { code: 'BAD_REQUEST', message: /committed offsets/ } }, 'a cursor is not a group\'s start: the refusal says why')
})
