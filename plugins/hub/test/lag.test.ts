// The lag arithmetic alone (pure logic over batches): a live consumer whose
// fetch batch stops short of the high watermark it carries is behind by the
// difference, until a later batch reaches it. The suites in test/ show the
// metrics on a real broker; there the live consumer keeps up too fast to be
// caught behind, so its series is driven here with batches made by hand.
import { test } from 'tap'
import { Hub } from '../src/hub.ts'
import type { Outlet } from '../src/outlet.ts'
import { fakeKafka, records } from './fake-kafka.ts'
import { nativeFormat } from '../src/frame.ts'

const outlet: Outlet = {
  id: 'o',
  format: nativeFormat,
  maxQueueBytes: 1 << 20,
  closed: false,
  queuedBytes: () => 0,
  write () {},
  drained: async () => {},
  lagging () {},
  evict () {}
}

test('live lag: the high watermark a batch carries minus the next offset to dispatch', async t => {
  const { kafka, batch } = fakeKafka('100')
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 0 })
  t.teardown(() => hub.close())
  await hub.subscribe(outlet, 't', { encoding: 'json', slowClient: 'lagging', product: 'p' })
  t.same(hub.lag(), [{ topic: 't', live: 0, catchUp: 0 }], 'starts at the high watermark')
  t.same([...hub.subscriptionsByProduct()], [['p', 1]])

  await batch({ partition: 0, highWatermark: '250', records: records(100, 160) })
  t.same(hub.lag(), [{ topic: 't', live: 90, catchUp: 0 }], 'a batch that stops 90 short of its high watermark')
  await batch({ partition: 0, highWatermark: '240', records: records(160, 250) })
  t.same(hub.lag(), [{ topic: 't', live: 0, catchUp: 0 }], 'caught up; an older high watermark never lowers the newest seen')

  hub.unsubscribe(outlet, 't')
  await new Promise(resolve => setTimeout(resolve, 10))
  t.same(hub.lag(), [], 'no series once the topic\'s consumer stopped')
  t.same([...hub.subscriptionsByProduct()], [])
})
