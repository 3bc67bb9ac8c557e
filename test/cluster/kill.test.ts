// SIGKILL one of three gateway processes behind the local balancer: the other
// nodes keep delivering to their clients without a break; the killed node's
// clients see their connection drop (1006), reconnect through the balancer
// (which skips the dead node: its port refuses) and resume with their cursor.
// Every record reaches every subscriber exactly once.
import { test } from 'tap'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { clusterTopic, deliveryReport, openSubscribers, startCluster } from './harness.ts'
import { eventually } from '../helpers.ts'

const SUBSCRIBERS = 6

test('SIGKILL one of three nodes: the others keep serving, its clients reconnect and resume', async t => {
  const cluster = await startCluster(t, { policyDir: policyDir(limitsPolicy({})) })
  const { topic, kafka } = await clusterTopic(t, 'kill')

  const subscribers = await openSubscribers(t, cluster, topic, SUBSCRIBERS)
  const placed = await cluster.placement()
  t.same(new Set(subscribers.map(s => placed.get(s.subject))), new Set([0, 1, 2]), 'subscribers on all three nodes')
  const victim = cluster.nodes[placed.get('sub-0')!]!
  const orphans = subscribers.filter(s => placed.get(s.subject) === victim.index)
  const others = subscribers.filter(s => placed.get(s.subject) !== victim.index)

  // a producer straight to Kafka, 10 records every 20 ms, until stopped
  let produced = 0
  const producing = { on: true }
  const producer = (async () => {
    while (producing.on) {
      const batch = Array.from({ length: 10 }, (_v, i) => ({ value: JSON.stringify({ p: 'kafka', n: produced + i }) }))
      await kafka.produceBatch(topic, batch)
      produced += batch.length
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  await eventually(() => subscribers.every(s => s.messages.length >= 50), 20_000, 'every subscriber receives')

  victim.child.kill('SIGKILL')
  t.equal(await victim.exited, null, 'killed')
  const atKill = others.map(s => s.messages.length)
  await eventually(() => others.every((s, i) => s.messages.length >= atKill[i]! + 200), 20_000, 'the other nodes keep delivering')
  t.ok(others.every(s => s.closes.length === 0 && s.connections === 1), 'their subscribers never lost their connection')

  await eventually(() => orphans.every(s => s.connections === 2), 20_000, 'the killed node\'s subscribers reconnected')
  t.ok(orphans.every(s => s.closes[0] === 1006), `its ${orphans.length} subscribers saw the connection drop (1006)`)
  // the balancer skips the dead node's port (refused); a try that lands in the instant the node dies loses its socket and is made again
  const failedTries = orphans.flatMap(s => s.refusals)
  t.ok(failedTries.every(status => status === 0), `no try was refused by a gateway; ${failedTries.length} lost their socket in the node's last instant (${JSON.stringify(orphans.map(s => s.refusalBodies))})`)
  const now = await cluster.placement()
  t.ok(orphans.every(s => now.has(s.subject) && now.get(s.subject) !== victim.index), 'they are on the other nodes')

  const resumedAt = orphans.map(s => s.messages.length)
  await eventually(() => orphans.every((s, i) => s.messages.length >= resumedAt[i]! + 100), 20_000, 'they receive live records again')
    .catch(async err => { throw new Error(`${(err as Error).message}\n${await deliveryReport(cluster, orphans, new Set())}`) })
  producing.on = false
  await producer
  await eventually(() => subscribers.every(s => s.messages.length >= produced), 30_000, 'every subscriber has every record')
    .catch(async err => {
      const expected = new Set(Array.from({ length: produced }, (_v, n) => `kafka:${n}`))
      throw new Error(`${(err as Error).message}\n${await deliveryReport(cluster, subscribers, expected)}`)
    })
  // a moment for a duplicate to show up
  await new Promise(resolve => setTimeout(resolve, 500))
  for (const s of subscribers) {
    const ns = s.values()
    const distinct = new Set(ns)
    t.ok(ns.length === produced && distinct.size === produced, `${s.subject} (${s.connections} connection${s.connections > 1 ? 's' : ''}, ${s.laggings} lagging): ${ns.length} deliveries, ${distinct.size} distinct, of ${produced}`)
  }
  for (const s of subscribers) s.stop()
})
