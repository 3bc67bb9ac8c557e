// hold-writes.ts on real TCP connections: what a held socket is written leaves
// in one write once it is let go (the count of _write/_writev calls on the
// socket, each a syscall), and an upgrade's hold ends after MAX_HOLD_MS-2x
// MAX_HOLD_MS even when the session's open never settles.
import { once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'
import { test, type Test } from 'tap'
import { holdUpgrade, holdWrites, MAX_HOLD_MS, releaseWritesAfter } from '../src/hold-writes.ts'

/** a connected pair: the server's end (its writes counted) and what the client reads, with when */
async function pair (t: Test): Promise<{ server: Socket, writes: () => number, received: Array<{ at: number, text: string }> }> {
  const listener = createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const accepted = once(listener, 'connection') as Promise<[Socket]>
  const client = connect((listener.address() as { port: number }).port, '127.0.0.1')
  const [server] = await accepted
  t.teardown(() => { client.destroy(); server.destroy(); listener.close() })
  const received: Array<{ at: number, text: string }> = []
  client.on('data', chunk => { received.push({ at: performance.now(), text: chunk.toString() }) })
  let writes = 0
  const own = server as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
  for (const name of ['_write', '_writev'] as const) {
    const write = own[name]
    own[name] = function (this: Socket, ...args: unknown[]) {
      writes++
      return write.apply(this, args)
    }
  }
  return { server, writes: () => writes, received }
}

const settle = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

test('holdWrites: the writes of this turn and of the immediates scheduled before it leave in one write', async t => {
  const { server, writes, received } = await pair(t)
  // the window's replay: an immediate scheduled before the subscribed frame's hold
  setImmediate(() => { server.write('replay;') })
  holdWrites(server)
  server.write('subscribed;')
  await settle(50)
  t.equal(writes(), 1, 'one write')
  t.equal(received.map(r => r.text).join(''), 'subscribed;replay;')
})

test('an upgrade held until the open settles: the 101, subscribed and replay in one write, whenever the open ends', async t => {
  const { server, writes, received } = await pair(t)
  holdUpgrade(server)
  server.write('101;')
  let opened!: () => void
  const open = new Promise<void>(resolve => { opened = resolve })
  releaseWritesAfter(server, open)
  // the open waits on Redis for a few turns, then subscribes and schedules the replay
  await settle(10)
  t.equal(writes(), 0, 'nothing written while the open waits')
  setImmediate(() => { server.write('replay;') })
  holdWrites(server)
  server.write('subscribed;')
  opened()
  await settle(30)
  t.equal(writes(), 1, 'one write')
  t.equal(received.map(r => r.text).join(''), '101;subscribed;replay;')

  // an open that fails lets go too
  const failing = await pair(t)
  holdUpgrade(failing.server)
  failing.server.write('101;')
  releaseWritesAfter(failing.server, Promise.reject(new Error('could not subscribe')))
  await settle(30)
  t.equal(failing.received.map(r => r.text).join(''), '101;', 'a failed open: the 101 goes')
})

test('an open that never settles holds the 101 for MAX_HOLD_MS to twice that, not longer', async t => {
  const { server, received } = await pair(t)
  const start = performance.now()
  holdUpgrade(server)
  server.write('101;')
  releaseWritesAfter(server, new Promise(() => {}))
  await settle(MAX_HOLD_MS * 2 + 100)
  t.equal(received.map(r => r.text).join(''), '101;')
  const waited = received[0]!.at - start
  // two sweeps at least (held, then let go), MAX_HOLD_MS apart; the upper bound leaves room for a busy machine's timers
  t.ok(waited >= MAX_HOLD_MS * 0.9 && waited <= MAX_HOLD_MS * 2 + 150, `held ${waited.toFixed(0)} ms`)
  // a hold after the sweep let go of the last one
  const again = await pair(t)
  holdUpgrade(again.server)
  again.server.write('x')
  releaseWritesAfter(again.server, Promise.resolve())
  await settle(20)
  t.equal(again.received.map(r => r.text).join(''), 'x', 'released at once when the open settles')
})
