// The suites' WebSocket client (test/harness/client.ts) keeps the frames a
// server sends in the same read as its 101: ws emits them on the next tick,
// before a continuation of the 'open' promise runs, so a listener added after
// open never sees them. The cluster suites lost exactly those records on a
// loaded machine (10 and 16, e94bf25). A raw upgrade answer written together
// with five frames, one write, makes that read on purpose.
import { test } from 'tap'
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from './client.ts'

// RFC 6455 section 1.3: the accept key is SHA-1 of the client's key and this GUID
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** One unmasked text frame, FIN set; payloads here are under 126 bytes, so the length fits the second byte. */
function textFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload])
}

test('frames that arrive in the same read as the 101 are kept', async t => {
  const server = createServer()
  server.on('upgrade', (request, socket) => {
    const accept = createHash('sha1').update(`${request.headers['sec-websocket-key']}${WS_GUID}`).digest('base64')
    const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: sluice.v1\r\n\r\n`
    const frames = [1, 2, 3, 4, 5].map(n => textFrame(JSON.stringify({ op: 'message', topic: 't', n })))
    socket.write(Buffer.concat([Buffer.from(head), ...frames]))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })

  const client = new Client(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/stream`)
  t.teardown(() => client.terminate())
  await client.opened
  // what a listener added only now gets, as the cluster subscriber's did before e94bf25
  let late = 0
  client.ws.on('message', () => { late++ })
  const got = await client.waitMessages(5, 5000)
  t.same(got.map(f => f.n), [1, 2, 3, 4, 5], `all five kept, in order (a listener added after open saw ${late})`)
})
