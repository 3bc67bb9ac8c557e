// A socket whose delivery limit is still waiting for its first tokens (a lease
// on its way from Redis) is not over its plan: the hub subscribes it only once
// the limit is ready, so no record is dropped for want of tokens that were
// coming. Pure logic over hand-made batches (test/rate-limit/delivery.test.ts shows
// the limiter's side against real Redis).
import { test } from 'tap'
import { Hub } from '../src/hub.ts'
import type { Outlet } from '../src/outlet.ts'
import { fakeKafka, fakeOutlet, records } from './fake-kafka.ts'

test('subscribe waits for the outlet\'s delivery limit to be ready; nothing is dropped meanwhile', async t => {
  const { kafka, batch } = fakeKafka()
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  // another socket keeps the topic's live feed running
  const written: Buffer[] = []
  const other = fakeOutlet('other')
  await hub.subscribe(other, 't', { encoding: 'json', slowClient: 'lagging' })

  let tokens = false
  let ready!: () => void
  const lagged: number[] = []
  const limited: Outlet = {
    ...fakeOutlet('limited', written),
    lagging (_topic: string, dropped: number) { lagged.push(dropped) },
    admit: () => tokens,
    admitReady: new Promise<void>(resolve => { ready = resolve })
  }
  let subscribed = false
  const subscribing = hub.subscribe(limited, 't', { encoding: 'json', slowClient: 'lagging' }).then(() => { subscribed = true })
  await batch({ partition: 0, highWatermark: '10', records: records(0, 10) })
  await new Promise(resolve => setImmediate(resolve))
  t.equal(subscribed, false, 'not subscribed while the limit waits for its first tokens')
  t.equal(hub.stats.drops, 0, 'and nothing dropped for it')

  tokens = true
  ready()
  await subscribing
  await batch({ partition: 0, highWatermark: '20', records: records(10, 20) })
  // the hub writes a batch to a socket as one buffer: count the frames in it
  const offsets = [...Buffer.concat(written).toString('latin1').matchAll(/"offset":"(\d+)"/g)].map(m => Number(m[1]))
  t.same(offsets, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 'every record after the subscription is delivered')
  t.same(lagged, [], 'no lagging notice')
  t.equal(hub.stats.drops, 0)
})
