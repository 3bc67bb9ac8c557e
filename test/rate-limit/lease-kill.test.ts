// A gateway process killed with SIGKILL while its subscriber holds a
// delivery lease on the subject's daily quota gives nothing back; its lease's
// record in Redis expires (leaseTtlMs, 30 s by default) and the quota gets the
// unused part back, so the subject's next socket, on another node, receives
// the whole quota. Before, the dead node's lease kept it until 00:00 UTC: the
// subject was told "daily quota reached" having received nothing.
import { test } from 'tap'
import { bearer } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { Client, type Frame } from '../harness/client.ts'
import { clusterTopic, startCluster } from '../cluster/harness.ts'
import { eventually, unique } from '../helpers.ts'

const QUOTA = 100
// the limiter's default leaseTtlMs, and a second for the decision that credits it back
const LEASE_TTL_MS = 30_000

test('a lease held by a SIGKILLed gateway comes back to the daily quota when its record expires', { timeout: 120_000 }, async t => {
  // 1,000 a second: half a second of it (a lease's batch) is five times the quota
  const cluster = await startCluster(t, { policyDir: policyDir(limitsPolicy({ dailyQuota: QUOTA, deliveredPerSecond: 1000 })), nodes: 2 })
  const { topic, kafka } = await clusterTopic(t, 'lease-kill')
  const subject = unique('kim')
  const open = (port: number): Client => {
    const client = new Client(`ws://127.0.0.1:${port}/v1/stream?topics=${topic}`, { headers: bearer(subject) })
    t.teardown(() => client.terminate())
    return client
  }
  const [victim, survivor] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]]
  const first = open(victim.port)
  t.equal(await first.outcome, 'open')
  // subscribed after the socket's lease holds its first refill
  await first.next(f => f.op === 'subscribed')
  victim.child.kill('SIGKILL')
  t.equal(await victim.exited, null, 'killed, its lease never given back')

  await new Promise(resolve => setTimeout(resolve, LEASE_TTL_MS + 1000))
  const second = open(survivor.port)
  t.equal(await second.outcome, 'open')
  await second.next(f => f.op === 'subscribed')
  // near the end of a quota a lease is smaller than a burst: a cut subscription resumes from its cursor
  second.ws.on('message', data => {
    const frame = JSON.parse(data.toString()) as Frame
    if (frame.op === 'lagging') second.send({ op: 'subscribe', id: 'resume', topics: [topic], from: frame.resume })
  })
  await kafka.produceBatch(topic, Array.from({ length: QUOTA + 20 }, (_v, n) => ({ value: JSON.stringify({ n }) })))
  await eventually(() => second.frames.some(f => f.op === 'error' && f.limit === 'dailyQuota'), 30_000, 'the quota reached and said')
  t.equal(second.messages().length, QUOTA, `the subject receives its whole quota on the surviving node (${second.messages().length} of ${QUOTA})`)
})
