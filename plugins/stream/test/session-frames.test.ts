// What a stream session does with a client frame before any topic is involved:
// binary and malformed frames are refused with BAD_REQUEST and the frame's id
// when it could be read, a ping is answered, and a flood of invalid frames
// closes the socket with 1008 while a burst of them is forgiven.
import { test } from 'tap'
import { CLOSE } from '@sluice/sessions'
import { settle, streamSession } from './fake-session.ts'

test('a binary frame is refused with BAD_REQUEST and nothing is asked of the hub', async t => {
  const { socket, hub } = streamSession()
  socket.receive({ op: 'subscribe', topics: ['ok.a'] }, true)
  await settle()
  t.equal(socket.sent.length, 1)
  t.match(socket.sent[0], { op: 'error', code: 'BAD_REQUEST', message: /binary frames/ })
  t.same(hub.calls, [], 'not subscribed')
})

test('a frame with an unknown op is refused with the frame\'s own id', async t => {
  const { socket } = streamSession()
  socket.receive({ op: 'subscribe-all', id: 'x1' })
  await settle()
  t.match(socket.sent, [{ op: 'error', id: 'x1', code: 'BAD_REQUEST', message: /"op" must be one of/ }])
})

test('a frame that is not JSON is refused, and the socket stays open', async t => {
  const { socket } = streamSession()
  socket.receive('{"op": "ping", ')
  await settle()
  t.match(socket.sent, [{ op: 'error', code: 'BAD_REQUEST', message: /not JSON/ }])
  t.equal(socket.closedWith, undefined)
})

test('a ping is answered with a pong carrying its id', async t => {
  const { socket } = streamSession()
  socket.receive({ op: 'ping', id: 'hb-7' })
  socket.receive({ op: 'ping' })
  await settle()
  t.same(socket.sent, [{ op: 'pong', id: 'hb-7' }, { op: 'pong' }])
})

test('invalid frames up to the burst are each answered; one past it closes the socket with 1008', async t => {
  // invalidFrameBurst 3 in the fake's limits, refilled at one per 1,000 s: nothing refills during the test
  const { socket } = streamSession()
  for (let i = 0; i < 3; i++) socket.receive({ op: 'nope', id: `n${i}` })
  await settle()
  t.equal(socket.sent.length, 3, 'three refusals')
  t.equal(socket.closedWith, undefined, 'the burst is forgiven')
  socket.receive({ op: 'nope', id: 'n3' })
  await settle()
  t.equal(socket.closedWith?.code, CLOSE.POLICY_VIOLATION)
  t.match(socket.closedWith, { reason: 'too many invalid frames' })
})

test('frames read after the close are not acted on', async t => {
  const { session, socket } = streamSession()
  session.close(CLOSE.NORMAL, 'bye')
  socket.receive({ op: 'ping', id: 'late' })
  await settle()
  t.same(socket.sent, [])
})

test('an auth frame where the gateway offers no renewal is refused as an invalid frame', async t => {
  const { socket } = streamSession()
  socket.receive({ op: 'auth', id: 'r1', token: 'abc' })
  await settle()
  t.match(socket.sent, [{ op: 'error', id: 'r1', code: 'BAD_REQUEST', message: /renewal is not offered/ }])
})
