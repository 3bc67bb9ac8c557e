// Hostile input on /v1/stream: every malformed frame gets BAD_REQUEST and the
// connection stays; a flood closes with 1008; a frame over the limit with
// 1009; bad upgrade requests are refused before the upgrade.
import { test } from 'tap'
import { WebSocket } from 'ws'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { unique } from '../helpers.ts'

test('malformed frames get BAD_REQUEST and the connection stays', async t => {
  const { app, url } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`)
  await c.opened
  t.teardown(() => c.close())
  const bad: Array<[string, string | Buffer]> = [
    ['not JSON', '{"op":'],
    ['not an object', '[1,2]'],
    ['a string', '"subscribe"'],
    ['unknown op', '{"op":"explode","id":"u"}'],
    ['op of the wrong type', '{"op":42}'],
    ['topics not an array', '{"op":"subscribe","topics":"a"}'],
    ['a bad topic name', '{"op":"subscribe","topics":["../etc"]}'],
    ['too many topics', JSON.stringify({ op: 'subscribe', topics: Array.from({ length: 101 }, (_v, i) => `t${i}`) })],
    ['id of the wrong type', '{"op":"ping","id":{"x":1}}'],
    ['publish without value', '{"op":"publish","topic":"a"}'],
    ['headers not strings', '{"op":"publish","topic":"a","value":1,"headers":{"h":1}}'],
    ['a bad cursor', '{"op":"subscribe","topics":["a"],"from":"a@x"}'],
    ['binary', Buffer.from([1, 2, 3])]
  ]
  for (const [what, frame] of bad) {
    const before = c.frames.length
    c.ws.send(frame)
    const reply = await c.next(f => f.op === 'error', 5000, before)
    t.equal(reply.code, 'BAD_REQUEST', what)
  }
  // a __proto__ key is an ordinary field to JSON.parse: nothing is polluted, the frame is judged on its merits
  c.ws.send('{"op":"publish","id":"proto","topic":"no.such.topic","value":1,"__proto__":{"admin":true}}')
  t.match(await c.next(f => f.id === 'proto', 20_000), { op: 'error', code: 'UNKNOWN_TOPIC' })
  t.equal(({} as Record<string, unknown>).admin, undefined, 'Object.prototype untouched')
  c.send({ op: 'ping', id: 'still-here' })
  t.match(await c.next(f => f.id === 'still-here'), { op: 'pong' }, 'the connection still works')
})

test('a flood of invalid frames closes with 1008', async t => {
  const { app, url } = await streamApp({ access: allowAll(), limits: { invalidFrameBurst: 20 } })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`)
  await c.opened
  for (let i = 0; i < 100; i++) c.ws.send('garbage')
  const closed = await c.closed
  t.equal(closed.code, 1008)
  const errors = c.frames.filter(f => f.op === 'error').length
  t.ok(errors >= 20 && errors <= 22, `about the burst was answered before the close (${errors})`)
})

test('a frame over the size limit closes with 1009', async t => {
  const { app, url } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`)
  await c.opened
  c.send({ op: 'publish', topic: 'a', value: 'x'.repeat(1024 * 1024 + 1) })
  t.equal((await c.closed).code, 1009)
})

test('bad upgrades are refused before the upgrade, with a status and a JSON body', async t => {
  const topic = unique('upgrade')
  const { app, url, kafka } = await streamApp({ access: allowAll({}, ['denied.topic']) })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }, { topic: 'denied.topic' }])
  const sessionsBefore = app.sessions.size
  const cases: Array<[string, number, string]> = [
    [`topics=${topic},bad%20name`, 400, 'BAD_REQUEST'],
    [`topics=${topic}&from=nonsense@`, 400, 'BAD_REQUEST'],
    [`topics=${topic}&topics=${topic}`, 400, 'BAD_REQUEST'],
    ['group=g', 400, 'BAD_REQUEST'],
    ['topics=denied.topic', 403, 'FORBIDDEN'],
    [`topics=${unique('missing')}`, 404, 'UNKNOWN_TOPIC']
  ]
  for (const [query, status, code] of cases) {
    const result = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const ws = new WebSocket(`${url}/v1/stream?${query}`, ['sluice.v1'])
      ws.on('open', () => { ws.close(); reject(new Error(`upgraded: ${query}`)) })
      ws.on('error', () => {})
      ws.on('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', chunk => { body += chunk })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
    })
    t.equal(result.status, status, query)
    t.equal(JSON.parse(result.body).error.code, code, `${query}: ${code}`)
  }
  t.equal(app.sessions.size, sessionsBefore, 'no session was created')
  t.equal(app.hub.subscribers('denied.topic'), 0, 'no subscription was created')
  const plain = await app.inject({ method: 'GET', url: '/v1/stream' })
  t.equal(plain.statusCode, 426, 'plain HTTP is told to upgrade')
})

test('the server selects sluice.v1 and never echoes a bearer subprotocol', async t => {
  const { app, url } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`, { protocols: ['sluice.v1', 'bearer.secret-token'] })
  await c.opened
  t.equal(c.ws.protocol, 'sluice.v1')
  c.close()
})
