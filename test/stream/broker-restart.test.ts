// The broker stops and comes back during streaming: the gateway stays up,
// sockets stay open (publishes meanwhile are answered UNAVAILABLE), and the
// stream continues once the broker is back. This suite runs its own broker.
import { test } from 'tap'
import { KafkaBroker } from '@sluice/stack'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { eventually } from '../helpers.ts'

test('a broker restart during streaming: sockets stay open and the stream continues', async t => {
  const broker = new KafkaBroker()
  t.teardown(() => broker.destroy())
  await broker.start()
  const topic = 'restart.ticks'
  const { app, url, kafka } = await streamApp({ access: allowAll(), brokers: broker.brokers, limits: { publishTimeoutMs: 8000 } })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 2 }])

  const clients = [new Client(`${url}/v1/stream?topics=${topic}`), new Client(`${url}/v1/stream?topics=${topic}`)]
  t.teardown(() => { for (const c of clients) c.close() })
  await Promise.all(clients.map(c => c.next(f => f.op === 'subscribed')))
  await kafka.produceBatch(topic, Array.from({ length: 100 }, (_v, i) => ({ value: JSON.stringify({ n: i }) })))
  await Promise.all(clients.map(c => c.waitMessages(100, 30_000)))

  await broker.stop()
  const down = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(down.statusCode, 503, 'not ready while the broker is down')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'alive')
  clients[0]!.send({ op: 'publish', id: 'during', topic, value: { during: true } })
  const refused = await clients[0]!.next(f => f.id === 'during', 30_000)
  t.match(refused, { op: 'error', code: 'UNAVAILABLE' }, 'a publish during the outage is refused, in bounded time')

  await broker.start()
  await eventually(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 60_000, 'ready again')
  await kafka.produceBatch(topic, Array.from({ length: 100 }, (_v, i) => ({ value: JSON.stringify({ n: 100 + i }) })))
  await Promise.all(clients.map(c => c.waitMessages(200, 90_000)))
  for (const c of clients) {
    t.equal(c.ws.readyState, c.ws.OPEN, 'the socket stayed open')
    // the publish refused during the outage may still have been written once the broker returned (an unacked
    // record is not a lost one): it is not one of the 200, and it arrives at most once
    const ns = c.messages().map(f => (f.value as { n?: number }).n).filter(n => n !== undefined)
    t.equal(ns.length, 200, 'every record before and after')
    t.equal(new Set(ns).size, 200, 'each once')
    t.ok(c.messages().filter(f => (f.value as { during?: boolean }).during).length <= 1, 'the refused publish at most once')
  }
  clients[1]!.send({ op: 'publish', id: 'after', topic, value: { after: true } })
  t.match(await clients[1]!.next(f => f.id === 'after', 30_000), { op: 'ack', topic }, 'publishing works again')
})
