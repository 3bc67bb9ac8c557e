// The timeouts that keep idle and dead clients from holding sockets: the
// handshake deadline (before the upgrade), the idle timeout, and keepalive
// pings that cut off a peer that stopped answering.
import { test } from 'tap'
import { connect } from 'node:net'
import { startGateway } from '../harness/gateway.ts'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { eventually } from '../helpers.ts'

test('a client that never finishes its handshake is cut off at the deadline', async t => {
  const { app, url: address } = await startGateway({ t, config: { policy: { watch: false }, server: { handshakeTimeoutMs: 500 } } })
  const port = Number(new URL(address).port)
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await new Promise(resolve => socket.once('connect', resolve))
  // half a request, then silence (slowloris)
  socket.write('GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n')
  // bounded wait: without the deadline Node would hold the socket for at least 30 s
  let timer: NodeJS.Timeout | undefined
  const closed = await Promise.race([
    new Promise<boolean>(resolve => socket.once('close', () => resolve(true))),
    new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), 10_000) })
  ])
  // the bound, once the socket closed: left running, it held the file's exit 10 s
  clearTimeout(timer)
  t.ok(closed, 'the server closed the connection')
  t.equal(app.sessions.size, 0, 'no session')
})

test('a socket with no subscription that says nothing is closed as idle', async t => {
  const { app, url } = await streamApp({ access: allowAll(), keepaliveMs: 100, limits: { idleTimeoutMs: 300 } })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`)
  await c.opened
  const closed = await c.closed
  t.equal(closed.code, 1000)
  t.equal(closed.reason, 'idle')
})

test('a peer that stops answering pings is cut off', async t => {
  const { app, url } = await streamApp({ access: allowAll(), keepaliveMs: 100 })
  t.teardown(() => app.close())
  const c = new Client(`${url}/v1/stream`)
  t.teardown(() => c.ws.terminate())
  await c.opened
  await eventually(() => app.sessions.size === 1, 5000, 'the session is registered')
  // the client's TCP socket stops being read: pings go unanswered
  ;(c.ws as unknown as { _socket: { pause (): void } })._socket.pause()
  await eventually(() => app.sessions.size === 0, 10_000, 'the dead peer is removed')
  t.pass('removed after missing its pongs')
})
