// The benchmark's load generator reads frames with bench/lean-client.ts, not a
// WebSocket library: if it miscounted, the fan-out figures would be wrong. A
// plain TCP server plays the gateway and writes frames of every length class
// (7-bit, 16-bit and 64-bit lengths) cut into random 1-40 byte pieces, to two
// clients at once (they share one read buffer), with pings between them.
import { test } from 'tap'
import { createServer, type Socket } from 'node:net'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { LeanClient } from '../../bench/lean-client.ts'
import { wireFrame, wireText } from '@sluice/hub'

test('the lean client counts every frame, reads sampled timestamps and answers every ping', async t => {
  const sockets: Socket[] = []
  const pongs = new Map<Socket, Buffer[]>()
  const server = createServer(socket => {
    let head = ''
    socket.on('data', chunk => {
      if (!sockets.includes(socket)) {
        head += chunk.toString('latin1')
        const key = /Sec-WebSocket-Key: (\S+)/.exec(head)?.[1]
        if (!head.includes('\r\n\r\n') || !key) return
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
        socket.write(wireText('{"op":"subscribed","topics":["t"]}'))
        sockets.push(socket)
        pongs.set(socket, [])
        return
      }
      pongs.get(socket)!.push(chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/v1/stream`

  const seen = [{ frames: 0, ts: [] as number[] }, { frames: 0, ts: [] as number[] }]
  const clients = await Promise.all(seen.map(s => new Promise<LeanClient>((resolve, reject) => {
    const client: LeanClient = new LeanClient(url, 'sluice.v1', 4, {
      onSubscribed: () => resolve(client),
      onError: reject,
      onFrame (ts) {
        s.frames++
        if (!Number.isNaN(ts)) s.ts.push(ts)
      }
    })
  })))
  t.teardown(() => { for (const c of clients) c.terminate() })

  // every length class, each frame carrying its index as "ts"
  const lengths = [0, 1, 20, 125, 126, 127, 1000, 65535, 65536, 70000]
  const frames: Buffer[] = []
  let pings = 0
  for (let i = 0; i < 40; i++) {
    const body = `{"op":"message","ts":${1000 + i},"pad":"`
    const pad = Math.max(0, lengths[i % lengths.length]! - body.length - 2)
    frames.push(wireText(body + 'x'.repeat(pad) + '"}'))
    if (i % 10 === 9) {
      frames.push(wireFrame(Buffer.from(`ping${pings++}`), false).fill(0x89, 0, 1))
    }
  }
  const wire = Buffer.concat(frames)
  // both clients' bytes in random small pieces, interleaved
  const at = [0, 0]
  while (at[0]! < wire.length || at[1]! < wire.length) {
    for (let c = 0; c < 2; c++) {
      if (at[c]! >= wire.length) continue
      const size = 1 + Math.floor(Math.random() * 40)
      sockets[c]!.write(wire.subarray(at[c], at[c]! + size))
      at[c]! += size
      if (Math.random() < 0.05) await new Promise(resolve => setImmediate(resolve))
    }
  }
  const deadline = Date.now() + 10_000
  while ((seen[0]!.frames < 41 || seen[1]!.frames < 41 || pongs.get(sockets[0]!)!.length === 0) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))

  for (const [c, s] of seen.entries()) {
    t.equal(s.frames, 41, `client ${c}: the subscribed frame and 40 messages, none lost or invented`)
    // 1 in 4 sampled, each client from its own phase: every 4th message (message i carries ts 1000 + i)
    t.equal(s.ts.length >= 9 && s.ts.length <= 10, true, `client ${c}: 1 in 4 of 40 messages sampled (${s.ts.length})`)
    t.ok(s.ts.every((ts, i) => ts >= 1000 && ts < 1040 && (i === 0 || ts - s.ts[i - 1]! === 4)), `client ${c}: the sampled frames' timestamps, 4 apart: ${s.ts.join(',')}`)
    // pongs: masked, carrying the ping's payload
    await new Promise(resolve => setTimeout(resolve, 50))
    const out = Buffer.concat(pongs.get(sockets[c]!)!)
    const payloads: string[] = []
    for (let i = 0; i + 6 <= out.length;) {
      t.equal(out[i], 0x8a, 'a pong frame')
      const len = out[i + 1]! & 0x7f
      const mask = out.subarray(i + 2, i + 6)
      payloads.push(Buffer.from(out.subarray(i + 6, i + 6 + len).map((b, j) => b ^ mask[j & 3]!)).toString())
      i += 6 + len
    }
    t.same(payloads, ['ping0', 'ping1', 'ping2', 'ping3'], `client ${c}: every ping answered with its payload`)
  }
})
