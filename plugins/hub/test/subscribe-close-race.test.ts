// A socket that closes while its `earliest` subscription waits for the topic's
// low watermarks (an admin request) leaves nothing behind: not in the feed's
// subscribers (where every later record would be framed for it and the closed
// session kept alive for good), not in the socket's own topics. Found by
// test/fuzz/stream-frames.test.ts: heap snapshots of its gateway after the run
// held 282 StreamSessions of 2,439 fuzzed sockets, each in a feed's `subs`.
// And a watermark request that fails leaves no half subscription: the socket
// can subscribe again and is delivered to. And a socket that closes while its
// delivery limit waits for its first tokens joins no consumer group (a member
// would read the group for nobody, for good). The hub itself asks again only
// for a topic its node does not know yet: KafkaClient.topicOffsets already asks
// again while a leader moves. Pure logic over a hand-made Kafka.
import { test, type Test } from 'tap'
import { Hub } from '../src/hub.ts'
import type { Outlet } from '../src/outlet.ts'
import { fakeKafka, fakeOutlet, holdOffsets, records } from './fake-kafka.ts'

/** A hub whose topic t has a live feed (another socket keeps it running), and a hold on its offsets reads. */
async function hubWithFeed (t: Test) {
  const fake = fakeKafka('10')
  const hub = new Hub({ kafka: fake.kafka, nodeId: 'n', graceMs: 60_000 })
  t.teardown(() => hub.close())
  await hub.subscribe(fakeOutlet('other'), 't', { encoding: 'json', slowClient: 'lagging' })
  return { ...fake, hub, held: holdOffsets(fake.kafka) }
}

test('a socket closed while its earliest subscription reads the low watermarks is in no feed afterwards', async t => {
  const { hub, held, batch } = await hubWithFeed(t)

  const written: Buffer[] = []
  const closing = fakeOutlet('closing', written)
  const subscribing = hub.subscribe(closing, 't', { encoding: 'json', slowClient: 'lagging' }, { kind: 'earliest' })
  while (held.asked() === 0) await new Promise(resolve => setImmediate(resolve))
  // the socket closes (socket-session.ts: closed, then hub.remove) before the watermarks come
  closing.closed = true
  hub.remove(closing)
  held.answer()
  t.equal(await subscribing, undefined, 'the subscription answers that the socket closed')
  t.equal(hub.subscribers('t'), 1, 'the feed has only the other socket')
  t.same(hub.topicsOf(closing), [], 'the closed socket has no topic')
  await batch({ partition: 0, highWatermark: '12', records: records(10, 12) })
  t.same(written, [], 'nothing is framed for the closed socket')
})

test('a low-watermark read that fails leaves no half subscription: the socket subscribes again and is delivered to', async t => {
  const { hub, held, batch } = await hubWithFeed(t)

  const written: Buffer[] = []
  const socket = fakeOutlet('socket', written)
  const subscribing = hub.subscribe(socket, 't', { encoding: 'json', slowClient: 'lagging' }, { kind: 'earliest' })
  const failed = t.rejects(subscribing, /Kafka is unavailable/, 'the subscription fails')
  while (held.asked() === 0) await new Promise(resolve => setImmediate(resolve))
  // what KafkaClient.topicOffsets answers once its own retries are over
  held.fail(Object.assign(new Error('Kafka is unavailable: no leader'), { code: 'SLUICE_KAFKA_UNAVAILABLE' }))
  await failed
  t.equal(held.asked(), 1, 'not asked again: the hub asks again only for a topic its node does not know yet')
  t.same(hub.topicsOf(socket), [], 'the socket has no topic')
  t.equal(hub.subscribers('t'), 1, 'the feed has only the other socket')

  const start = await hub.subscribe(socket, 't', { encoding: 'json', slowClient: 'lagging' })
  t.ok(start, 'a second subscribe starts')
  t.equal(hub.subscribers('t'), 2, 'and the feed has the socket')
  await batch({ partition: 0, highWatermark: '12', records: records(10, 12) })
  const offsets = [...Buffer.concat(written).toString('latin1').matchAll(/"offset":"(\d+)"/g)].map(m => Number(m[1]))
  t.same(offsets, [10, 11], 'the records after it are delivered')
})

test('a group member whose socket closed while its delivery limit waited for its first tokens joins no group', async t => {
  const { kafka, batchTo } = fakeKafka('10')
  const hub = new Hub({ kafka, nodeId: 'n', graceMs: 60_000 })
  t.teardown(() => hub.close())
  let ready!: () => void
  const written: Buffer[] = []
  const socket: Outlet & { closed: boolean } = { ...fakeOutlet('member', written), admitReady: new Promise<void>(resolve => { ready = resolve }) }
  const joining = hub.joinGroup(socket, 'g.closed', ['t'], { encoding: 'json', slowClient: 'lagging' })
  await new Promise(resolve => setImmediate(resolve))
  socket.closed = true
  hub.remove(socket)
  ready()
  await joining
  t.equal(hub.stats.groupSessions, 0, 'no group member is left for the closed socket')
  t.same([...hub.subscriptionsByProduct()], [], 'and no subscription counted for it')
  await t.rejects(batchTo('g.closed', { partition: 0, highWatermark: '11', records: records(10, 11) }), /no consumer/, 'no consumer of the group was made')
})

test('a topic this node does not know yet (created a moment ago) is asked for again', async t => {
  const { hub, held } = await hubWithFeed(t)
  const subscribing = hub.subscribe(fakeOutlet('socket'), 't', { encoding: 'json', slowClient: 'lagging' }, { kind: 'earliest' })
  while (held.asked() === 0) await new Promise(resolve => setImmediate(resolve))
  held.fail(Object.assign(new Error('Topic "t" does not exist'), { code: 'SLUICE_KAFKA_UNKNOWN_TOPIC' }))
  while (held.asked() === 1) await new Promise(resolve => setTimeout(resolve, 10))
  held.answer()
  t.ok(await subscribing, 'the second read answers and the socket starts')
  t.equal(hub.subscribers('t'), 2, 'and is in the feed')
})
