// Subscribe and unsubscribe bookkeeping of a stream session: every topic of a
// frame is authorized before the hub is asked for any, a frame's topics are
// subscribed all or none, the `from` of the frame becomes each topic's start
// position, and the `subscribed` answer carries a cursor built from where the
// hub says each topic starts.
import { test } from 'tap'
import createError from '@fastify/error'
import { formatCursor } from '@sluice/hub'
import { access, settle, streamSession } from './fake-session.ts'

test('a subscribe frame subscribes each topic with its product\'s terms, from latest, and answers with the cursor of where each starts', async t => {
  const { socket, hub } = streamSession()
  hub.start = new Map([[0, 5n], [1, 12n]])
  socket.receive({ op: 'subscribe', id: 's1', topics: ['ok.a', 'ok.b'] })
  await settle()
  t.same(hub.calls.map(c => [c.topic, c.from]), [['ok.a', { kind: 'latest' }], ['ok.b', { kind: 'latest' }]])
  t.same(hub.calls[0]!.terms, { encoding: 'json', slowClient: 'lagging', product: 'p' })
  const cursor = formatCursor(new Map([['ok.a', hub.start], ['ok.b', hub.start]]))
  t.equal(cursor, 'ok.a@0:5,1:12;ok.b@0:5,1:12')
  t.same(socket.sent, [{ op: 'subscribed', id: 's1', topics: ['ok.a', 'ok.b'], cursor }])
})

test('a topic the policy refuses fails the whole frame with FORBIDDEN before the hub is asked for any topic', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', id: 's2', topics: ['ok.a', 'secret.b'] })
  await settle()
  t.same(hub.calls, [], 'no topic subscribed, not even the allowed one')
  t.match(socket.sent, [{ op: 'error', id: 's2', code: 'FORBIDDEN', message: /secret\.b/ }])
})

test('a frame whose second topic fails leaves no subscription behind: the first is unsubscribed again', async t => {
  const { socket, hub } = streamSession()
  const Unknown = createError('SLUICE_KAFKA_UNKNOWN_TOPIC', 'Topic "%s" does not exist', 404)
  hub.failOn = { topic: 'ok.gone', error: new Unknown('ok.gone') }
  socket.receive({ op: 'subscribe', id: 's3', topics: ['ok.a', 'ok.gone', 'ok.c'] })
  await settle()
  t.same(hub.calls.map(c => c.topic), ['ok.a', 'ok.gone'], 'stops at the failure')
  t.same(hub.unsubscribed, ['ok.a'])
  t.same(hub.topicsOf(), [], 'all or nothing')
  t.match(socket.sent, [{ op: 'error', id: 's3', code: 'UNKNOWN_TOPIC' }])
})

test('a cursor in `from` starts the topics it names at its positions, and the others live', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', id: 's4', topics: ['ok.a', 'ok.b'], from: 'ok.a@0:7,2:3' })
  await settle()
  t.same(hub.calls.map(c => [c.topic, c.from]), [
    ['ok.a', { kind: 'cursor', positions: new Map([[0, 7n], [2, 3n]]) }],
    ['ok.b', { kind: 'latest' }]
  ])
  t.match(socket.sent, [{ op: 'subscribed', id: 's4' }])
})

test('`from: earliest` starts every topic of the frame at its beginning', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', id: 's5', topics: ['ok.a', 'ok.b'], from: 'earliest' })
  await settle()
  t.same(hub.calls.map(c => c.from), [{ kind: 'earliest' }, { kind: 'earliest' }])
})

test('a cursor that does not parse is refused with BAD_REQUEST and subscribes nothing', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', id: 's6', topics: ['ok.a'], from: 'ok.a@zero' })
  await settle()
  t.same(hub.calls, [])
  t.match(socket.sent, [{ op: 'error', id: 's6', code: 'BAD_REQUEST' }])
})

test('unsubscribe answers with the topics the socket had, and only those', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', id: 's7', topics: ['ok.a', 'ok.b'] })
  await settle()
  socket.receive({ op: 'unsubscribe', id: 'u1', topics: ['ok.b', 'ok.never'] })
  await settle()
  t.same(socket.sent.at(-1), { op: 'unsubscribed', id: 'u1', topics: ['ok.b'] })
  t.same(hub.topicsOf(), ['ok.a'])
})

test('a group session refuses subscribe frames: it reads the topics it opened with', async t => {
  const { socket, hub } = streamSession({ start: { groupId: 'g1' } })
  socket.receive({ op: 'subscribe', id: 's8', topics: ['ok.a'] })
  await settle()
  t.same(hub.calls, [])
  t.match(socket.sent, [{ op: 'error', id: 's8', code: 'BAD_REQUEST', message: /group session/ }])
})

test('a pattern subscribes the granted topics it matches now, each once, and skips the ones the policy refuses', async t => {
  const { socket, hub } = streamSession()
  // the fake policy grants topics that start with "ok.": not "no.x", nor "ok"
  hub.topics = ['ok.x', 'ok.y', 'no.x', 'ok']
  socket.receive({ op: 'subscribe', id: 'p1', topics: ['*.x', 'ok.*', '**'] })
  await settle()
  t.same(hub.calls.map(c => c.topic).sort(), ['ok.x', 'ok.y'], 'each granted topic once, whatever patterns reach it')
  const reply = socket.sent[0]!
  t.match(reply, { op: 'subscribed', id: 'p1', topics: ['*.x', 'ok.*', '**'] })
  t.same((reply.matched as string[]).sort(), ['ok.x', 'ok.y'])
})

test('a pattern never reaches Kafka\'s internal topics, even where the policy would grant them', async t => {
  const { socket, hub } = streamSession({ access: access('') })
  hub.topics = ['__consumer_offsets', '__transaction_state', 'orders']
  socket.receive({ op: 'subscribe', id: 'p0', topics: ['**'] })
  await settle()
  t.same(hub.calls.map(c => c.topic), ['orders'])
  t.match(socket.sent, [{ op: 'subscribed', id: 'p0', matched: ['orders'] }])
})

test('a topic created later that a pattern matches is subscribed from its first record and announced with the pattern', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', id: 'p2', topics: ['ok.*'] })
  await settle()
  t.equal(hub.watchers.size, 1, 'the socket watches the topic list')
  for (const watcher of hub.watchers) watcher(['ok.new', 'no.new'])
  await settle()
  t.same(hub.calls.map(c => [c.topic, c.from]), [['ok.new', { kind: 'earliest' }]])
  t.same(socket.sent.at(-1), { op: 'subscribed', topics: ['ok.new'], pattern: 'ok.*', cursor: 'ok.new@0:5' })
})

test('unsubscribing a pattern drops the topics it brought and stops watching the topic list', async t => {
  const { socket, hub } = streamSession()
  hub.topics = ['ok.x', 'ok.y']
  socket.receive({ op: 'subscribe', id: 'p3', topics: ['ok.*'] })
  socket.receive({ op: 'subscribe', id: 's9', topics: ['ok.z'] })
  await settle()
  socket.receive({ op: 'unsubscribe', id: 'u2', topics: ['ok.*'] })
  await settle()
  t.same(socket.sent.at(-1), { op: 'unsubscribed', id: 'u2', topics: ['ok.*'] })
  t.same(hub.topicsOf(), ['ok.z'], 'the topic subscribed by name stays')
  t.equal(hub.watchers.size, 0)
})

test('a socket holds at most 10 patterns: the frame that would pass it is refused whole', async t => {
  const { socket, hub } = streamSession()
  const patterns = Array.from({ length: 11 }, (_, i) => `ok.p${i}.*`)
  socket.receive({ op: 'subscribe', id: 'p4', topics: patterns.slice(0, 10) })
  await settle()
  t.match(socket.sent.at(-1), { op: 'subscribed', id: 'p4' })
  socket.receive({ op: 'subscribe', id: 'p5', topics: patterns.slice(10) })
  await settle()
  t.match(socket.sent.at(-1), { op: 'error', id: 'p5', code: 'BAD_REQUEST', message: /at most 10 topic patterns/ })
  t.same(hub.calls, [])
})
