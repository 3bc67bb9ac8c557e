// One socket that stops reading does not delay the others; it gets `lagging`
// (with a cursor that resumes it with no gap and no duplicate) or 4008, as its
// product says; its send queue stays within its bound.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client, type Frame } from '../harness/client.ts'
import { eventually, unique } from '../helpers.ts'

const RECORDS = 5000
// 4 KiB values, 100 to a batch (under the broker's 1 MB request limit): 20 MiB in all, far beyond what the kernel's socket buffers absorb on loopback
const VALUE = JSON.stringify({ pad: 'x'.repeat(4096) })
// 1 MiB: the fast clients share this process with the gateway and lag a little; the slow one never reads
const MAX_QUEUE = 1024 * 1024
const FAST = 4

async function produce (kafka: { produceBatch: (t: string, r: Array<{ value: string }>) => Promise<void> }, topic: string) {
  for (let sent = 0; sent < RECORDS; sent += 100) {
    await kafka.produceBatch(topic, Array.from({ length: 100 }, (_v, i) => ({ value: VALUE.replace('{', `{"n":${sent + i},`) })))
  }
}

function numbers (frames: Frame[]): number[] {
  return frames.map(f => (f.value as { n: number }).n)
}

for (const slowClient of ['lagging', 'evict'] as const) {
  test(`a socket that stops reading: ${slowClient}`, async t => {
    const topic = unique(`slow-${slowClient}`)
    const { app, url, kafka } = await streamApp({ access: allowAll({ slowClient }), limits: { maxQueueBytes: MAX_QUEUE } })
    t.teardown(() => app.close())
    await kafka.ensureTopics([{ topic }])

    const fast = Array.from({ length: FAST }, () => new Client(`${url}/v1/stream?topics=${topic}`))
    const slow = new Client(`${url}/v1/stream?topics=${topic}`)
    t.teardown(() => { for (const c of [...fast, slow]) c.close() })
    await Promise.all([...fast, slow].map(c => c.next(f => f.op === 'subscribed')))
    // the slow client stops reading its TCP socket: the server's writes pile up
    const slowTcp = (slow.ws as unknown as { _socket: { pause (): void, resume (): void } })._socket
    slowTcp.pause()

    await produce(kafka, topic)
    await Promise.all(fast.map(c => c.waitMessages(RECORDS, 120_000)))
    t.ok(fast.every(c => new Set(numbers(c.messages())).size === RECORDS), 'every other socket got every record')

    const session = app.sessions.list().find(s => s.topics().includes(topic) && (s as unknown as { queuedBytes (): number }).queuedBytes() > 0)
    if (slowClient === 'lagging') {
      t.ok(session, 'the slow socket is still open')
      const queued = (session as unknown as { queuedBytes (): number }).queuedBytes()
      t.ok(queued <= MAX_QUEUE + VALUE.length + 1024, `its queue stays within its bound (${queued} bytes)`)
    }
    t.ok(app.hub.stats.drops > 0, 'records were dropped for it, and counted')
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    t.match(metrics, /sluice_hub_drops_total [1-9]/, 'drops show in the metrics')

    slowTcp.resume()
    if (slowClient === 'evict') {
      const closed = await slow.closed
      t.equal(closed.code, 4008, 'evicted with 4008')
      t.match(metrics, /sluice_hub_evictions_total 1\n/)
      return
    }

    const lagging = await slow.next(f => f.op === 'lagging', 30_000)
    t.match(lagging, { op: 'lagging', topic, dropped: Number, resume: String })
    t.ok((lagging.dropped as number) > 0, 'the notice counts what was dropped')
    const before = numbers(slow.messages())
    t.equal(new Set(before).size, before.length, 'no duplicate before the notice')

    // resuming from the cursor replays exactly the rest
    slow.send({ op: 'subscribe', id: 'resume', topics: [topic], from: lagging.resume })
    await slow.next(f => f.id === 'resume')
    await eventually(() => slow.messages().length >= RECORDS, 60_000, 'the rest replayed')
    const all = numbers(slow.messages())
    t.equal(all.length, RECORDS, 'every record once over the two subscriptions')
    t.equal(new Set(all).size, RECORDS, 'no duplicate')
    t.equal(before.length + (lagging.dropped as number), RECORDS, 'dropped counts exactly what the first subscription missed')
  })
}
