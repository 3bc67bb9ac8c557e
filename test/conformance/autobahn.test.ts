// WebSocket conformance: Autobahn|Testsuite's fuzzing client against a bare
// ws server and the gateway's /v1/stream and /v2/broker/ (test/conformance/autobahn.ts),
// compared case by case: framing and closing must not differ from bare ws;
// only the cases that expect an echo may differ, by the routes' error frames.
// The suite fails, not skips, without wstest: CI installs it
// (`node test/conformance/autobahn.ts fetch` in .ci/run).
import tap from 'tap'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { installedWstest, runFuzzingClient } from './autobahn.ts'
import { AGENTS, differences, readOutcomes } from './autobahn-report.ts'
import { startTestees } from './autobahn-testees.ts'
import { ERROR_CLOSE_DEADLINE_MS } from '@sluice/sessions'

// the routes' protocol-error closes: 1002 protocol error, 1007 invalid UTF-8, 1009 too big
const PROTOCOL_ERROR_CODES = new Set([1002, 1007, 1009])
// the task's bound for the three testees together; measured at about 70 s here
const RUN_BOUND_S = 180

// one bare ws server and one gateway for the whole file
const testees = await startTestees()
tap.teardown(() => testees.close())

tap.test('Autobahn|Testsuite finds no framing or closing difference between the routes and bare ws', async t => {
  const bin = installedWstest()
  if (!bin) {
    t.fail('Autobahn|Testsuite is not installed: run `node test/conformance/autobahn.ts fetch` (CI does, in .ci/run)')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'sluice-autobahn-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { seconds, reruns } = await runFuzzingClient(testees.testees, dir, bin)
  t.comment(`Autobahn run: ${seconds.toFixed(1)} s for three testees; run again because one of Autobahn's timers ran out on one side only: ${JSON.stringify(reruns)}`)
  t.ok(seconds <= RUN_BOUND_S, `the run takes at most ${RUN_BOUND_S} s (took ${seconds.toFixed(0)} s)`)

  const bare = readOutcomes(dir, AGENTS.bare)
  t.ok(bare.size > 200, `bare ws ran the cases (${bare.size})`)
  for (const agent of [AGENTS.stream, AGENTS.broker]) {
    const route = readOutcomes(dir, agent)
    const found = differences(bare, route)
    t.same(found.filter(d => !d.allowed).map(d => `${d.id} ${d.field}: bare ws ${String(d.bare)}, ${agent} ${String(d.route)}`), [],
      `${agent}: every case frames and closes as bare ws does`)
    t.ok(found.filter(d => d.allowed).every(d => d.expectsEcho && d.field === 'behavior'), `${agent}: the only allowed differences are the behaviour of cases that expect an echo`)

    // every protocol error bare ws closes with a code, the route closes with the same code, in a handshake
    const protocolErrors = [...bare.values()].filter(o => !o.closedByMe && PROTOCOL_ERROR_CODES.has(o.remoteCloseCode ?? 0))
    t.ok(protocolErrors.length > 100, `${agent}: bare ws fails ${protocolErrors.length} cases with a protocol-error close`)
    const lost = protocolErrors.filter(o => route.get(o.id)?.remoteCloseCode !== o.remoteCloseCode || !route.get(o.id)?.wasClean).map(o => o.id)
    t.same(lost, [], `${agent}: every protocol-error close frame arrives`)
    t.match(route.get('5.14'), { behaviorClose: 'OK', remoteCloseCode: 1002, wasClean: true }, `${agent}: 5.14 (continuation with nothing to continue, octet-wise) gets its 1002 close frame`)
  }
})

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** A WebSocket client on a bare TCP socket: it writes frames as given, and reads when told. */
class RawPeer {
  readonly socket: Socket
  readonly received: Buffer[] = []
  readonly closed: Promise<void>
  #wake = (): void => {}

  private constructor (socket: Socket) {
    this.socket = socket
    this.closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
    socket.on('error', () => {})
  }

  /** Connects and upgrades; `allowHalfOpen`: stay open after the server's FIN, as a peer that never finishes the close */
  static async upgrade (url: string, allowHalfOpen = false): Promise<RawPeer> {
    const { hostname, port, pathname, search } = new URL(url)
    const box: { peer?: RawPeer } = {}
    // onread: pause() stops reading from the kernel (readStop), so what arrives then waits there, unread
    const socket = connect({
      host: hostname,
      port: Number(port),
      allowHalfOpen,
      onread: {
        buffer: Buffer.alloc(64 * 1024),
        callback: (n, buf) => {
          box.peer!.received.push(Buffer.from(buf.subarray(0, n)))
          box.peer!.#wake()
          return true
        }
      }
    })
    const peer = new RawPeer(socket)
    box.peer = peer
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    await peer.until(() => Buffer.concat(peer.received).includes('\r\n\r\n'), 5000)
    const head = Buffer.concat(peer.received)
    if (!head.toString('latin1').startsWith('HTTP/1.1 101')) throw new Error(`no upgrade: ${head.toString('latin1').split('\r\n')[0]}`)
    peer.received.length = 0
    peer.received.push(head.subarray(head.indexOf('\r\n\r\n') + 4))
    return peer
  }

  async until (done: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (!done() && Date.now() < deadline) await new Promise<void>(resolve => { this.#wake = resolve; setTimeout(resolve, 20) })
  }

  /** A text frame with RSV2 set and no extension negotiated: a protocol error (1002). */
  sendProtocolError (): void {
    const mask = randomBytes(4)
    const payload = Buffer.from('hello').map((b, i) => b ^ mask[i % 4]!)
    this.socket.write(Buffer.concat([Buffer.from([0x80 | 0x20 | 0x1, 0x80 | payload.length]), mask, payload]))
  }

  /** A masked ping with no payload. */
  sendPing (): void {
    this.socket.write(Buffer.concat([Buffer.from([0x89, 0x80]), randomBytes(4)]))
  }

  /** The code of the close frame the server sent first, or null when none arrived. */
  closeCode (): number | null {
    const frames = Buffer.concat(this.received)
    return frames.length >= 4 && frames[0] === 0x88 ? frames.readUInt16BE(2) : null
  }
}

/**
 * A peer that goes on writing after its protocol error, and reads only then
 * (as Autobahn does in its octet-wise cases): on a socket the server has
 * already destroyed, the writes draw a RST, and the peer fails on it with the
 * close frame still unread. Returns the close code read, or null.
 */
async function closeCodeAfterWritingOn (url: string): Promise<number | null> {
  const peer = await RawPeer.upgrade(url)
  peer.socket.pause()
  peer.sendProtocolError()
  // the server has read the frame and answered by now (loopback: well under a millisecond)
  await sleep(200)
  for (let i = 0; i < 3 && !peer.socket.destroyed; i++) {
    peer.sendPing()
    await sleep(50)
  }
  if (!peer.socket.destroyed) peer.socket.resume()
  await Promise.race([peer.closed, sleep(5000)])
  peer.socket.destroy()
  return peer.closeCode()
}

tap.test('a protocol error is answered with its close frame even when the peer goes on writing', async t => {
  for (const { agent, url } of testees.testees) {
    const codes = []
    // several tries: a close frame that is only sometimes lost is lost
    for (let i = 0; i < 5; i++) codes.push(await closeCodeAfterWritingOn(url))
    t.same(codes, [1002, 1002, 1002, 1002, 1002], `${agent}: 1002 each time`)
  }
})

tap.test(`a peer that never finishes the close after its protocol error is cut off after ${ERROR_CLOSE_DEADLINE_MS / 1000} s`, async t => {
  const routes = testees.testees.filter(({ agent }) => agent !== AGENTS.bare)
  await Promise.all(routes.map(async ({ agent, url }) => {
    const peer = await RawPeer.upgrade(url, true)
    peer.sendProtocolError()
    await peer.until(() => peer.closeCode() !== null, 5000)
    t.equal(peer.closeCode(), 1002, `${agent}: the close frame`)
    const closeFrameAt = Date.now()
    // the peer never closes its side; the server reads and discards what it sends until it cuts the connection,
    // and a write after that draws a RST
    while (!peer.socket.destroyed && Date.now() - closeFrameAt < 3 * ERROR_CLOSE_DEADLINE_MS) {
      peer.sendPing()
      await Promise.race([peer.closed, sleep(100)])
    }
    const cutAfter = Date.now() - closeFrameAt
    t.ok(cutAfter >= ERROR_CLOSE_DEADLINE_MS - 200 && cutAfter < ERROR_CLOSE_DEADLINE_MS + 2000,
      `${agent}: cut off ${cutAfter} ms after its close frame`)
    peer.socket.destroy()
  }))
})
