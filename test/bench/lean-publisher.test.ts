// bench/publish.ts publishes through bench/lean-publisher.ts, not a WebSocket
// library: if its frames were not the protocol's, or it miscounted answers,
// the publish figures would be wrong. A `ws` server (the library the gateway
// uses) reads what it sends; the answers go back as raw frames cut into random
// 1-40 byte pieces, acks and errors mixed, with pings between them.
import { test } from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { wireFrame, wireText } from '@sluice/hub'
import { LeanPublisher } from '../../bench/lean-publisher.ts'

test('the lean publisher sends valid masked publish frames with unique ids and counts every ack and error', async t => {
  const received: string[] = []
  let server: WebSocket | undefined
  let headers: Record<string, string | string[] | undefined> = {}
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: protocols => protocols.has('sluice.v1') ? 'sluice.v1' : false })
  wss.on('connection', (ws, req) => {
    server = ws
    headers = req.headers
    ws.on('message', (data, isBinary) => { if (!isBinary) received.push(data.toString()) })
  })
  await once(wss, 'listening')
  t.teardown(() => { server?.terminate(); wss.close() })
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1/stream`

  let acked = 0
  let refused = 0
  let refusal: string | undefined
  const publisher = new LeanPublisher(url, 'sluice.v1', { authorization: 'Bearer x' }, id => `{"op":"publish","id":"${id}","topic":"t","value":{"n":1}}`, {
    onAnswers (a, r, first) {
      acked += a
      refused += r
      refusal ??= first
    },
    onError (err) { t.fail(err.message) }
  })
  t.teardown(() => publisher.terminate())
  await publisher.opened()
  t.equal(headers.authorization, 'Bearer x', 'the headers given go with the upgrade')

  // 3 writes of several frames: ws unmasks and checks each (a bad mask or length would be a protocol error)
  publisher.publish(5)
  publisher.publish(1)
  publisher.publish(64)
  const until = async (done: () => boolean) => {
    const deadline = Date.now() + 10_000
    while (!done() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  }
  await until(() => received.length === 70)
  t.equal(received.length, 70, 'every frame read by ws as one text message')
  t.same(received.map(text => JSON.parse(text).id), Array.from({ length: 70 }, (_, i) => String(i).padStart(10, '0')), 'ids count up from 0, one per frame')
  t.same(JSON.parse(received[69]!), { op: 'publish', id: '0000000069', topic: 't', value: { n: 1 } })

  // answers: 60 acks and 10 errors (every 7th), a long error among them, pings every 20 frames, in random small pieces
  const frames: Buffer[] = []
  let errors = 0
  for (let i = 0; i < 70; i++) {
    if (i % 7 === 3) {
      errors++
      const pad = i === 10 ? 'x'.repeat(300) : ''
      frames.push(wireText(`{"op":"error","id":"${i}","code":"RATE_LIMITED","message":"wait${pad}"}`))
    } else frames.push(wireText(`{"op":"ack","id":"${i}","topic":"t","partition":0,"offset":"${i}"}`))
    if (i % 20 === 19) frames.push(wireFrame(Buffer.from(`ping${i}`), false).fill(0x89, 0, 1))
  }
  let pongs = 0
  server!.on('pong', () => { pongs++ })
  const wire = Buffer.concat(frames)
  const raw = (server as unknown as { _socket: { write (b: Buffer): void } })._socket
  for (let at = 0; at < wire.length;) {
    const size = 1 + Math.floor(Math.random() * 40)
    raw.write(wire.subarray(at, at + size))
    at += size
    if (Math.random() < 0.1) await new Promise(resolve => setImmediate(resolve))
  }
  await until(() => acked + refused === 70 && pongs === 3)
  t.equal(acked, 70 - errors, 'every ack counted, none invented')
  t.equal(refused, errors, 'every error counted as a refusal')
  t.match(refusal, /^\{"op":"error","id":"3"/, 'the first refusal\'s text is kept')
  t.equal(pongs, 3, 'every ping answered')
})
