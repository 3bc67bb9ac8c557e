// ws ends a socket on a protocol error by itself (a frame over maxPayload: it
// sends close 1009, stops reading frames and ends the TCP connection) and tells
// the session nothing. The hub still wrote records straight to the connection:
// a write after the end is a socket error, on which ws destroys the socket, and
// a peer still sending its oversized frame met a RST and lost the close frame
// (1006 instead of 1009: one CI run of the fuzz suite). A session is closed from
// the moment ws closes it, and nothing more is written.
import { test } from 'tap'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import type { Outlet } from '@sluice/hub'
import { streamApp } from '../harness/stream.ts'
import { unique } from '../helpers.ts'

/** Reads from a raw TCP socket: everything received, and how it ended. */
function watch (socket: Socket): { data: () => Buffer, ended: Promise<void>, error: () => Error | undefined } {
  const chunks: Buffer[] = []
  let error: Error | undefined
  socket.on('data', chunk => chunks.push(chunk))
  socket.on('error', err => { error = err })
  return {
    data: () => Buffer.concat(chunks),
    ended: new Promise(resolve => socket.once('end', resolve)),
    error: () => error
  }
}

test('after ws closes a socket with 1009, the session writes nothing, and a peer still sending gets no RST', async t => {
  const topic = unique('close-after-error')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }])
  const { port } = new URL(url)

  const client = connect({ host: '127.0.0.1', port: Number(port), allowHalfOpen: true })
  t.teardown(() => client.destroy())
  const seen = watch(client)
  await new Promise<void>(resolve => client.once('connect', () => resolve()))
  client.write(`GET /v1/stream?topics=${topic} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sluice.v1\r\n\r\n`)
  await waitFor(() => seen.data().includes('"op":"subscribed"'), 'the subscription at open')
  t.equal(app.sessions.size, 1)
  const session = app.sessions.list()[0] as unknown as Outlet

  // the header of a masked 2 MiB text frame (over the 1 MiB maxPayload), its payload not yet sent
  const header = Buffer.alloc(14)
  header[0] = 0x81
  header[1] = 0x80 | 127
  header.writeBigUInt64BE(2n * 1024n * 1024n, 2)
  randomBytes(4).copy(header, 10)
  client.write(header)
  await seen.ended
  const closeFrame = seen.data().subarray(seen.data().lastIndexOf(Buffer.from([0x88])))
  t.equal(closeFrame.readUInt16BE(2), 1009, 'the close frame says 1009')
  t.ok(session.closed, 'the session counts as closed once ws closed the socket')

  // what the hub does for a record of a subscribed topic (and the catch-up loop's drain wait)
  const written = await new Promise<Error | null | undefined>(resolve => session.write(Buffer.from('a frame after the close'), resolve))
  t.ok(written instanceof Error, 'the write is refused, not queued behind the close frame')
  await session.drained(0)

  // the peer keeps sending what it started: the server still reads it (and throws it away)
  for (let i = 0; i < 16; i++) client.write(randomBytes(64 * 1024))
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(seen.error()?.message, undefined, 'no RST for the bytes the peer was still sending')
  client.end()
  await waitFor(() => app.sessions.size === 0, 'the session is gone once the peer ends too')
})

async function waitFor (check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
