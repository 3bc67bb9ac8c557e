// A resume whose gap the node's window covers gets its `subscribed` frame and the
// replayed gap in one write to the socket (one send to the kernel), not one for
// the frame and one per window batch: socket writes were 41 % of a gateway's CPU
// while 5,000 clients resumed at once (bench/drain-resume.ts). Counted on the
// server's side of the resumed socket, from after its 101.
import { Socket } from 'node:net'
import { test } from 'tap'
import { allowAll, Client, streamApp } from './stream-harness.ts'
import { unique } from './helpers.ts'

const RECORDS = 40

test('a resumed socket\'s subscribed frame and its window replay leave in one write', async t => {
  const topic = unique('resume-one-write')
  const { app, url, kafka } = await streamApp({ access: allowAll() })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const live = new Client(`${url}/v1/stream?topics=${topic}`)
  t.teardown(() => live.close())
  const subscribed = await live.next(f => f.op === 'subscribed')
  // in several produce calls: the window holds several batches, each one a write of its own before
  for (let i = 0; i < 4; i++) {
    await kafka.produceBatch(topic, Array.from({ length: RECORDS / 4 }, (_v, j) => ({ value: JSON.stringify({ n: i * 10 + j }), partition: 0 })))
    await live.waitMessages((i + 1) * (RECORDS / 4), 20_000)
  }

  // every write of the server's sockets, by the client's port (the server socket's remote port)
  const writes = new Map<number, number>()
  const writeGeneric = (Socket.prototype as unknown as { _writeGeneric: (...a: unknown[]) => unknown })._writeGeneric
  ;(Socket.prototype as unknown as { _writeGeneric: (...a: unknown[]) => unknown })._writeGeneric = function (this: Socket, ...args: unknown[]) {
    if (this.localPort === Number(new URL(url).port)) writes.set(this.remotePort!, (writes.get(this.remotePort!) ?? 0) + 1)
    return writeGeneric.apply(this, args)
  }
  t.teardown(() => { (Socket.prototype as unknown as { _writeGeneric: unknown })._writeGeneric = writeGeneric })

  const resumed = new Client(`${url}/v1/stream?topics=${topic}&from=${encodeURIComponent(subscribed.cursor as string)}`)
  t.teardown(() => resumed.close())
  await resumed.opened
  const port = (resumed.ws as unknown as { _socket: Socket })._socket.localPort!
  const gap = await resumed.waitMessages(RECORDS, 20_000)
  t.same(gap.map(f => Number(f.offset)), Array.from({ length: RECORDS }, (_v, i) => i), 'the gap, in order')
  t.equal(resumed.frames[0]?.op, 'subscribed', 'subscribed first')
  // the 101, then subscribed and the replay together
  t.equal(writes.get(port), 2, `two writes to the resumed socket: the 101, then subscribed and its ${RECORDS} records (${writes.get(port)})`)
})
