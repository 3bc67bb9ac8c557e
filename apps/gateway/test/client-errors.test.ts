// A request Node's HTTP parser refuses never reaches a route: the gateway as
// buildApp builds it answers it with the same body as every other refusal,
// `{"error":{"code","message"}}` and a code of the catalogue, and ends the
// connection; the next connection is served as usual. A WebSocket handshake
// ws would refuse is refused the same way, before any limit is charged.
import { test } from 'tap'
import { connect } from 'node:net'
import { maxHeaderSize } from 'node:http'
import { clientRefusal } from '../src/client-errors.ts'
import { handshakeProblem } from '../src/handshake.ts'
import { RawClient, encodeFrame, OP } from '../../../test/fuzz/wire.ts'
import { startGateway } from '../../../test/harness/gateway.ts'

/** Writes `request` on a new connection and reads until the gateway ends it: the status, the body, whether it ended. */
function exchange (port: number, request: string): Promise<{ status: number, headers: string, body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`the connection was not ended within 5 s; read: ${data.slice(0, 200)}`)) }, 5000)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      const end = data.indexOf('\r\n\r\n')
      resolve({ status: Number(data.split(' ')[1]), headers: data.slice(0, end), body: data.slice(end + 4) })
    })
    socket.write(request)
  })
}

test('requests Node\'s HTTP parser refuses get the gateway\'s refusal body, and the connection ends', async t => {
  const gw = await startGateway({ t })
  const port = Number(new URL(gw.url).port)
  const upgrade = 'Host: sluice\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
  const cases: Array<[string, string, number, string]> = [
    ['a space in the target of an upgrade', `GET /v1/stream?topics=a b HTTP/1.1\r\n${upgrade}`, 400, 'SLUICE_HTTP_MALFORMED'],
    ['a control character in a header value', 'GET /healthz HTTP/1.1\r\nHost: sluice\r\nX-A: a\u0001b\r\n\r\n', 400, 'SLUICE_HTTP_MALFORMED'],
    ['no HTTP at all', 'HELLO\r\n\r\n', 400, 'SLUICE_HTTP_MALFORMED'],
    [`a query past ${maxHeaderSize} bytes on an upgrade`, `GET /v1/stream?topics=${'x'.repeat(maxHeaderSize)} HTTP/1.1\r\n${upgrade}`, 431, 'SLUICE_HTTP_HEADERS_TOO_LARGE'],
    [`headers past ${maxHeaderSize} bytes`, `GET /healthz HTTP/1.1\r\nHost: sluice\r\nX-Big: ${'y'.repeat(maxHeaderSize)}\r\n\r\n`, 431, 'SLUICE_HTTP_HEADERS_TOO_LARGE']
  ]
  for (const [what, request, status, code] of cases) {
    const got = await exchange(port, request)
    t.equal(got.status, status, `${what}: HTTP ${status}`)
    t.match(got.headers, /content-type: application\/json/i, `${what}: JSON`)
    const body = JSON.parse(got.body) as { error: { code: string, message: string } }
    t.equal(body.error.code, code, `${what}: ${code}`)
    t.ok(body.error.message.length > 0, `${what}: a message (${body.error.message})`)
    t.same(Object.keys(body), ['error'], `${what}: nothing but error in the body`)
  }
  const healthz = await fetch(`${gw.url}/healthz`)
  t.equal(healthz.status, 200, 'a well-formed request on a new connection is served')
})

test('the parser\'s error picks the refusal', async t => {
  const err = (code: string) => Object.assign(new Error('parse error'), { code })
  t.match(clientRefusal(err('HPE_INVALID_CHARACTER'), 300_000), { code: 'SLUICE_HTTP_MALFORMED', statusCode: 400, message: /HPE_INVALID_CHARACTER/ })
  t.match(clientRefusal(err('HPE_HEADER_OVERFLOW'), 300_000), { code: 'SLUICE_HTTP_HEADERS_TOO_LARGE', statusCode: 431, message: new RegExp(String(maxHeaderSize)) })
  t.match(clientRefusal(err('ERR_HTTP_REQUEST_TIMEOUT'), 300_000), { code: 'SLUICE_HTTP_REQUEST_TIMEOUT', statusCode: 408, message: /300000 ms/ })
  // a code that is not a short upper-case name is not echoed
  t.match(clientRefusal(err('<script>'), 1), { code: 'SLUICE_HTTP_MALFORMED', message: /unreadable/ })
  t.match(clientRefusal(new Error('no code'), 1), { code: 'SLUICE_HTTP_MALFORMED', message: /unreadable/ })
})

test('a malformed WebSocket handshake gets the gateway\'s refusal body, and no connection limit is charged for it', async t => {
  const token = 'dev-token-for-the-handshake-suite-0123456'
  const gw = await startGateway({ t, config: { dev: { token } } })
  const port = Number(new URL(gw.url).port)
  const auth: [string, string] = ['Authorization', `Bearer ${token}`]
  const allowed = async () => await gw.metric('sluice_rate_limit_allowed_total', { limit: 'connections' }) ?? 0

  // a good handshake, with a subprotocol list ws accepts, upgrades and is counted
  const before = await allowed()
  const good = await RawClient.upgrade(port, '/v1/stream', [auth, ['Sec-WebSocket-Protocol', 'sluice.v1, x-other']])
  t.equal(good.status, 101, 'a well-formed handshake upgrades')
  await good.client!.write(encodeFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) }))
  await good.client!.outcome(5000)
  t.equal(await allowed(), before + 1, 'the upgrade took a connection')

  const cases: Array<[string, string, Array<[string, string]>, RegExp]> = [
    ['an empty subprotocol in the list', '/v1/stream', [auth, ['Sec-WebSocket-Protocol', 'sluice.v1,,x']], /Sec-WebSocket-Protocol/],
    ['a subprotocol named twice', '/v1/stream', [auth, ['Sec-WebSocket-Protocol', 'sluice.v1, sluice.v1']], /Sec-WebSocket-Protocol/],
    ['a subprotocol that is no token', '/v2/broker/', [auth, ['Sec-WebSocket-Protocol', 'kafka-text;x']], /Sec-WebSocket-Protocol/],
    ['a subprotocol list of commas', '/mqtt', [auth, ['Sec-WebSocket-Protocol', ',,']], /Sec-WebSocket-Protocol/]
  ]
  for (const [what, path, headers, message] of cases) {
    const got = await RawClient.upgrade(port, path, headers)
    t.equal(got.status, 400, `${what} on ${path}: HTTP 400`)
    const body = JSON.parse(got.body.toString('utf8')) as { error: { code: string, message: string } }
    t.equal(body.error.code, 'SLUICE_HTTP_BAD_HANDSHAKE', `${what}: SLUICE_HTTP_BAD_HANDSHAKE`)
    t.match(body.error.message, message, `${what}: ${body.error.message}`)
  }
  t.equal(await allowed(), before + 1, 'no connection was charged for the refused handshakes')
})

test('the handshake checks are ws\'s', async t => {
  const ok = { upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }
  t.equal(handshakeProblem(ok), undefined, 'a good handshake')
  t.equal(handshakeProblem({ ...ok, upgrade: 'WebSocket', 'sec-websocket-version': '8' }), undefined, 'the Upgrade value in any case, version 8')
  t.equal(handshakeProblem({ ...ok, 'sec-websocket-protocol': 'a,b , c\t,d' }), undefined, 'tokens with spaces and tabs around the commas')
  t.match(handshakeProblem({ ...ok, upgrade: 'h2c' }), { message: /Upgrade/ })
  t.match(handshakeProblem({ ...ok, 'sec-websocket-key': 'short' }), { message: /Sec-WebSocket-Key/ })
  t.match(handshakeProblem({ ...ok, 'sec-websocket-key': undefined }), { message: /Sec-WebSocket-Key/ })
  t.match(handshakeProblem({ ...ok, 'sec-websocket-version': '12' }), { message: /Sec-WebSocket-Version/, headers: { 'sec-websocket-version': '13, 8' } })
  for (const protocols of ['', ',', 'a,', ',a', 'a b', 'a,,b', 'a,a', 'a;b', 'é', 'a,"b"']) {
    t.match(handshakeProblem({ ...ok, 'sec-websocket-protocol': protocols }), { message: /Sec-WebSocket-Protocol/ }, JSON.stringify(protocols))
  }
})
