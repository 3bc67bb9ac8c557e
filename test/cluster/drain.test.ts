// Draining one of three gateway processes behind the local balancer (SIGTERM):
// its /readyz turns 503 "draining" and the balancer takes it out; its clients
// hear 1001, reconnect through the balancer to the other nodes and resume with
// their cursor; publishers keep writing throughout (one of them on the drained
// node, its publishes in flight answered before its 1001). Every record is
// received by every subscriber exactly once, the topic holds each record
// once, and the drained process exits 0 within its deadline.
import { test } from 'tap'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { clusterTopic, deliveryReport, openSubscribers, Publisher, startCluster } from './harness.ts'
import { eventually } from '../helpers.ts'

const SUBSCRIBERS = 9
const PUBLISHERS = 3
const DRAIN_MS = 2000
const SHUTDOWN_TIMEOUT_MS = 10_000

test('SIGTERM one of three nodes: 1001, resume elsewhere, every record exactly once, exit 0 in time', async t => {
  const cluster = await startCluster(t, { policyDir: policyDir(limitsPolicy({})), drainMs: DRAIN_MS, shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS })
  const { topic, kafka } = await clusterTopic(t, 'drain')

  const subscribers = await openSubscribers(t, cluster, topic, SUBSCRIBERS)
  const publishers: Publisher[] = []
  for (let i = 0; i < PUBLISHERS; i++) {
    const p = new Publisher(t, cluster, `pub-${i}`, topic)
    await p.open()
    publishers.push(p)
  }
  const placed = await cluster.placement()
  t.same(new Set(subscribers.map(s => placed.get(s.subject))), new Set([0, 1, 2]), 'subscribers on all three nodes')
  t.same(new Set(publishers.map(p => placed.get(p.subject))), new Set([0, 1, 2]), 'a publisher on each node')
  const drained = cluster.nodes[placed.get('pub-0')!]!
  const moving = subscribers.filter(s => placed.get(s.subject) === drained.index)
  const staying = subscribers.filter(s => placed.get(s.subject) !== drained.index)

  // about 100 records a second per publisher, for the whole drain and after it
  for (const p of publishers) p.start(10)
  await eventually(() => subscribers.every(s => s.messages.length >= 100), 20_000, 'every subscriber receives')

  const termAt = Date.now()
  drained.child.kill('SIGTERM')
  await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${drained.port}/readyz`)
    const body = await res.json() as { checks: Record<string, { reason?: string }> }
    return res.status === 503 && body.checks.drain?.reason === 'draining'
  }, DRAIN_MS, 'the drained node\'s /readyz: 503 "draining"')
  t.pass('/readyz says draining')
  await eventually(() => !cluster.balancer.healthy[drained.index], DRAIN_MS, 'the balancer took it out of rotation')
  t.pass('the balancer took it out of rotation')

  const code = await drained.exited
  const tookMs = Date.now() - termAt
  t.equal(code, 0, 'the drained process exits 0')
  t.ok(tookMs < SHUTDOWN_TIMEOUT_MS, `within its deadline (${tookMs} ms of ${SHUTDOWN_TIMEOUT_MS})`)
  const drainedLine = drained.log().split('\n').filter(l => l.includes('"msg":"drained"')).map(l => JSON.parse(l) as { closed: number, ms: number })[0]
  t.equal(drainedLine?.closed, moving.length + 1, `its ${moving.length} subscribers and pub-0 closed by the drain (in ${drainedLine?.ms} ms)`)

  t.ok(moving.length > 0 && moving.every(s => s.closes[0] === 1001), `its ${moving.length} subscribers heard 1001`)
  t.equal(publishers[0]!.closes[0], 1001, 'so did pub-0')
  t.ok(staying.every(s => s.closes.length === 0), 'the other nodes\' subscribers were not disturbed')
  await Promise.all(moving.map(s => s.reconnecting))
  await eventually(() => publishers[0]!.connections === 2, 10_000, 'pub-0 reconnected')
  const now = await cluster.placement()
  t.ok([...subscribers, ...publishers].every(c => now.has(c.subject) && now.get(c.subject) !== drained.index), 'every client is on one of the other nodes')

  // a little more after the move, then every record is accounted for
  const after = publishers.reduce((sum, p) => sum + p.acked.size, 0) + 150
  await eventually(() => publishers.reduce((sum, p) => sum + p.acked.size, 0) >= after, 20_000, 'publishing goes on')
  for (const p of publishers) p.stop()
  await eventually(() => publishers.every(p => p.unacked === 0), 20_000, 'every publish acked')
  t.same(publishers.flatMap(p => p.errors), [], 'no publish refused')
  const expected = new Set(publishers.flatMap(p => [...p.acked].map(n => `${p.subject}:${n}`)))
  t.equal(expected.size, publishers.reduce((sum, p) => sum + p.published, 0), `every one of the ${expected.size} records published was acked`)
  const offsets = await kafka.topicOffsets(topic)
  t.equal(offsets.reduce((sum, o) => sum + Number(o.high), 0), expected.size, 'the topic holds each record once')

  await eventually(() => subscribers.every(s => s.messages.length >= expected.size), 30_000, 'every subscriber has every record')
    .catch(async err => { throw new Error(`${(err as Error).message}\n${await deliveryReport(cluster, subscribers, expected)}`) })
  // a moment for a duplicate to show up
  await new Promise(resolve => setTimeout(resolve, 500))
  for (const s of subscribers) {
    const values = s.values()
    const exact = values.length === expected.size && new Set(values).size === values.length && values.every(v => expected.has(v))
    t.ok(exact, `${s.subject} (${s.connections} connection${s.connections > 1 ? 's' : ''}, ${s.laggings} lagging): ${values.length} deliveries, ${new Set(values).size} distinct, of ${expected.size}`)
  }
  for (const s of subscribers) s.stop()
  for (const p of publishers) p.close()
})
