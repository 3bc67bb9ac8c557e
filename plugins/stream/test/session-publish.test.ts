// Publish frames of one stream session: checked concurrently, handed to Kafka
// in the order they came, and answered in that order whatever order Kafka acks
// them in, a refused one answered in its place; past maxInflightPublishes the
// socket is not read until half are answered.
import { test } from 'tap'
import createError from '@fastify/error'
import { settle, streamSession } from './fake-session.ts'

const publish = (id: string, topic = 'ok.a', value: unknown = { n: id }) => ({ op: 'publish', id, topic, value })

test('publishes reach Kafka in frame order, and their acks go out in frame order though Kafka acks them in reverse', async t => {
  const { socket, kafka } = streamSession()
  socket.receive(publish('p1'))
  socket.receive(publish('p2'))
  socket.receive(publish('p3'))
  await settle()
  t.same(kafka.pending.map(p => p.value?.toString()), ['{"n":"p1"}', '{"n":"p2"}', '{"n":"p3"}'], 'the value bytes as the client wrote them, in order')
  kafka.pending[2]!.ack(12)
  kafka.pending[1]!.ack(11)
  await settle()
  t.same(socket.sent, [], 'nothing answered before p1')
  kafka.pending[0]!.ack(10)
  await settle()
  t.same(socket.sent, [
    { op: 'ack', id: 'p1', topic: 'ok.a', partition: 0, offset: '10' },
    { op: 'ack', id: 'p2', topic: 'ok.a', partition: 0, offset: '11' },
    { op: 'ack', id: 'p3', topic: 'ok.a', partition: 0, offset: '12' }
  ])
})

test('a refused publish is answered in its place among the acks, and never reaches Kafka', async t => {
  const { socket, kafka } = streamSession()
  socket.receive(publish('p1'))
  socket.receive(publish('p2', 'secret.b'))
  socket.receive(publish('p3'))
  await settle()
  t.same(kafka.pending.map(p => p.topic), ['ok.a', 'ok.a'], 'p2 is not written')
  t.same(socket.sent, [], 'the refusal waits for the ack before it')
  kafka.pending[1]!.ack(2)
  kafka.pending[0]!.ack(1)
  await settle()
  t.match(socket.sent, [
    { op: 'ack', id: 'p1', offset: '1' },
    { op: 'error', id: 'p2', code: 'FORBIDDEN' },
    { op: 'ack', id: 'p3', offset: '2' }
  ])
})

test('a publish Kafka fails is answered with its wire code and the others still get their acks', async t => {
  const { socket, kafka } = streamSession()
  const Unavailable = createError('SLUICE_KAFKA_UNAVAILABLE', 'Kafka is unavailable', 503)
  socket.receive(publish('p1'))
  socket.receive(publish('p2'))
  await settle()
  kafka.pending[0]!.fail(new Unavailable())
  kafka.pending[1]!.ack(4)
  await settle()
  t.match(socket.sent, [{ op: 'error', id: 'p1', code: 'UNAVAILABLE' }, { op: 'ack', id: 'p2', offset: '4' }])
})

test('a value the topic\'s encoding does not take is BAD_REQUEST; JSON null is a tombstone', async t => {
  const { socket, kafka } = streamSession()
  socket.receive(publish('t1', 'ok.a.text', { not: 'a string' }))
  socket.receive(publish('t2', 'ok.a.text', 'héllo'))
  socket.receive(publish('t3', 'ok.a', null))
  await settle()
  t.same(kafka.pending.map(p => p.value?.toString('utf8') ?? null), ['héllo', null], 't1 is not written; t2 as UTF-8; t3 with no value')
  kafka.pending[0]!.ack(0)
  kafka.pending[1]!.ack(1)
  await settle()
  t.match(socket.sent, [{ op: 'error', id: 't1', code: 'BAD_REQUEST', message: /UTF-8 string/ }, { op: 'ack', id: 't2' }, { op: 'ack', id: 't3' }])
})

test('past maxInflightPublishes unanswered the socket is paused, and resumed once fewer than half are left', async t => {
  // maxInflightPublishes is 4 in the fake's limits
  const { socket, kafka } = streamSession()
  for (let i = 1; i <= 3; i++) socket.receive(publish(`p${i}`))
  await settle()
  t.notOk(socket.isPaused, 'three in flight: still read')
  socket.receive(publish('p4'))
  await settle()
  t.ok(socket.isPaused, 'the fourth pauses the socket')
  kafka.pending[0]!.ack(1)
  kafka.pending[1]!.ack(2)
  await settle()
  t.ok(socket.isPaused, 'two left of four: not yet')
  kafka.pending[2]!.ack(3)
  await settle()
  t.notOk(socket.isPaused, 'one left: read again')
  kafka.pending[3]!.ack(4)
  await settle()
  t.equal(socket.sent.length, 4)
})

test('the answers to a batch of acks are written corked, in one go', async t => {
  const { socket, kafka, raw } = streamSession()
  socket.receive(publish('p1'))
  socket.receive(publish('p2'))
  await settle()
  kafka.pending[0]!.ack(1)
  kafka.pending[1]!.ack(2)
  await settle()
  t.equal(socket.sent.length, 2)
  t.equal(raw.corks, 1, 'one cork for both answers')
})
