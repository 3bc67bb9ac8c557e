// Pattern subscriptions: `{"op":"subscribe","topics":["prices.*"]}` reaches the
// topics that match now and those created later (from their first record),
// each authorized on its own; unsubscribing the pattern leaves them all.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { unique } from '../helpers.ts'

test('a pattern subscribes matching topics now and later, only those the policy grants, and lets go of them', async t => {
  const base = unique('pat')
  const [a, b, other, denied, later] = [`${base}.a`, `${base}.b`, `${base}-x.a`, `${base}.secret`, `${base}.c`]
  const { app, url, kafka } = await streamApp({ access: allowAll({}, [denied]) })
  t.teardown(() => app.close())
  await kafka.ensureTopics([a, b, other, denied].map(topic => ({ topic })))

  const c = new Client(`${url}/v1/stream`)
  t.teardown(() => c.close())
  await c.opened
  c.send({ op: 'subscribe', id: 's1', topics: [`${base}.*`] })
  const subscribed = await c.next(f => f.op === 'subscribed' && f.id === 's1')
  t.same([...(subscribed.matched as string[])].sort(), [a, b].sort(), 'the matching topics it may read, not the one a rule denies nor one outside the pattern')
  t.same(subscribed.topics, [`${base}.*`])

  await kafka.produceBatch(a, [{ value: JSON.stringify({ n: 1 }) }])
  await kafka.produceBatch(b, [{ value: JSON.stringify({ n: 2 }) }])
  await kafka.produceBatch(other, [{ value: JSON.stringify({ n: 3 }) }])
  await kafka.produceBatch(denied, [{ value: JSON.stringify({ n: 4 }) }])
  await c.waitMessages(2, 15_000)

  // a topic created after the subscription: its records from the first one on
  await kafka.ensureTopics([{ topic: later }])
  await kafka.produceBatch(later, [{ value: JSON.stringify({ n: 5 }) }])
  const announced = await c.next(f => f.op === 'subscribed' && Array.isArray(f.topics) && (f.topics as string[]).includes(later), 15_000)
  t.equal(announced.pattern, `${base}.*`, 'the new topic is announced with its pattern')
  const first = await c.next(f => f.op === 'message' && f.topic === later, 15_000)
  t.equal(first.offset, '0', 'from the new topic\'s first record: nothing written before the hub saw it is lost')

  await new Promise(resolve => setTimeout(resolve, 500))
  t.same([...new Set(c.messages().map(m => m.topic))].sort(), [a, b, later].sort(), 'nothing from the denied topic or the one outside the pattern')
  t.same(app.hub.topicsOf(app.sessions.list()[0] as never).sort(), [a, b, later].sort(), 'the hub holds exactly those subscriptions')

  c.send({ op: 'unsubscribe', id: 'u1', topics: [`${base}.*`] })
  const unsubscribed = await c.next(f => f.op === 'unsubscribed' && f.id === 'u1')
  t.same(unsubscribed.topics, [`${base}.*`])
  const seen = c.messages().length
  await kafka.produceBatch(a, [{ value: JSON.stringify({ n: 6 }) }])
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(c.messages().length, seen, 'no record after the pattern was dropped')
})

test('bad patterns and too many patterns are refused with BAD_REQUEST; the socket stays', async t => {
  const { app, url } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`)
  t.teardown(() => c.close())
  await c.opened
  for (const [i, bad] of ['a.***', 'a.*b*', 'a b.*', 'x.{sub}.*', '*'.repeat(3)].entries()) {
    c.send({ op: 'subscribe', id: `b${i}`, topics: [bad] })
    const reply = await c.next(f => f.id === `b${i}`)
    t.match(reply, { op: 'error', code: 'BAD_REQUEST' }, `"${bad}" refused`)
  }
  c.send({ op: 'subscribe', id: 'many', topics: Array.from({ length: 11 }, (_v, i) => `p${i}.*`) })
  t.match(await c.next(f => f.id === 'many'), { op: 'error', code: 'BAD_REQUEST', message: /at most 10 topic patterns/ }, 'more than 10 patterns per socket')
  c.send({ op: 'ping', id: 'still' })
  t.match(await c.next(f => f.id === 'still'), { op: 'pong' }, 'the connection stays')
})

test('patterns in the query: subscribed at open beside names; bad ones and group mode refused before the upgrade', async t => {
  const base = unique('patq')
  const [a, b, named] = [`${base}.a`, `${base}.b`, `${base}-named`]
  const { app, url, kafka } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  await kafka.ensureTopics([a, b, named].map(topic => ({ topic })))

  const c = new Client(`${url}/v1/stream?topics=${named},${base}.*`)
  t.teardown(() => c.close())
  const byPattern = await c.next(f => f.op === 'subscribed' && Array.isArray(f.matched))
  t.same([...(byPattern.matched as string[])].sort(), [a, b].sort(), 'the pattern reached its topics at open')
  await c.next(f => f.op === 'subscribed' && (f.topics as string[]).includes(named))
  await kafka.produceBatch(named, [{ value: '1' }])
  await kafka.produceBatch(b, [{ value: '2' }])
  await c.waitMessages(2, 15_000)
  t.same(c.messages().map(m => m.topic).sort(), [b, named].sort(), 'records from the named topic and the pattern\'s')

  for (const [query, why] of [[`${base}.***`, 'a bad pattern'], [`${base}.*&group=g1`, 'a pattern in group mode']]) {
    const refused = new Client(`${url}/v1/stream?topics=${query}`)
    const err = await refused.opened.then(() => undefined, (e: { statusCode?: number }) => e)
    t.equal(err?.statusCode, 400, `${why}: 400 before the upgrade`)
  }
})
