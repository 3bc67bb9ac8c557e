// A client frame nested thousands of levels deep once overflowed the stack while
// it was read (String() on the nested topics) and the exception ended the process:
// every socket of the node got 1006. Now the frame is bounded in one pass before
// anything walks it, and refused with BAD_REQUEST; the socket and the node go on.
import { test } from 'tap'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { unique } from '../helpers.ts'

const DEEP = 6_000

test('6,000 levels of nesting in subscribe, unsubscribe and a published value are BAD_REQUEST, and the socket goes on', async t => {
  const topic = unique('nesting')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())
  const bystander = new Client(`${url}/v1/stream`)
  await bystander.opened
  t.teardown(() => bystander.close())

  const nested = `${'['.repeat(DEEP)}${']'.repeat(DEEP)}`
  client.send(`{"op":"subscribe","id":"s1","topics":${nested}}`)
  client.send(`{"op":"unsubscribe","id":"u1","topics":${nested}}`)
  client.send(`{"op":"publish","id":"p1","topic":"${topic}","value":${nested}}`)
  for (const id of ['s1', 'u1', 'p1']) {
    const reply = await client.next(f => f.op === 'error' && f.id === id)
    t.equal(reply.code, 'BAD_REQUEST', `${id}: BAD_REQUEST`)
    t.match(reply.message, /nesting deeper than 64 levels/, `${id}: says why`)
  }
  // a ~4,400-level value used to be INTERNAL: the same answer now
  client.send(`{"op":"publish","id":"p2","topic":"${topic}","value":${'{"a":'.repeat(4_400)}1${'}'.repeat(4_400)}}`)
  t.equal((await client.next(f => f.id === 'p2')).code, 'BAD_REQUEST', 'a deep object value too')

  // the node and both sockets still serve
  client.send({ op: 'subscribe', id: 's2', topics: [topic] })
  t.match(await client.next(f => f.id === 's2'), { op: 'subscribed' })
  bystander.send({ op: 'ping', id: 'x' })
  t.match(await bystander.next(f => f.id === 'x'), { op: 'pong' }, 'another socket of the node is unaffected')
  const health = await app.inject({ url: '/healthz' })
  t.equal(health.statusCode, 200)
})

test('64 levels, the frame included, are allowed in a published value', async t => {
  const topic = unique('nesting-ok')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())
  client.send(`{"op":"publish","id":"p","topic":"${topic}","value":${'['.repeat(63)}${']'.repeat(63)}}`)
  t.match(await client.next(f => f.id === 'p'), { op: 'ack', topic })
  client.send(`{"op":"publish","id":"q","topic":"${topic}","value":${'['.repeat(64)}${']'.repeat(64)}}`)
  t.match(await client.next(f => f.id === 'q'), { op: 'error', code: 'BAD_REQUEST' }, 'one more is refused')
})
