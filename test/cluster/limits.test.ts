// Three gateway processes behind the local balancer share one set of rate
// limits (Redis): a plan's connection limit is reached with the sockets spread
// over the three nodes, and the cluster admits the plan's limit, not three
// times it. A closed socket frees its slot for whichever node is asked next.
import { test } from 'tap'
import { bearer } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { Client, type Refusal } from '../harness/client.ts'
import { startCluster } from './harness.ts'
import { eventually } from '../helpers.ts'

const LIMIT = 4

test(`a plan of ${LIMIT} connections over three nodes admits ${LIMIT} in all, not ${LIMIT} per node`, async t => {
  const cluster = await startCluster(t, { policyDir: policyDir(limitsPolicy({ connections: LIMIT })) })
  const client = () => {
    const c = new Client(cluster.streamUrl, { headers: bearer('carol') })
    t.teardown(() => c.terminate())
    return c
  }
  const open: Client[] = []
  const refused: Refusal[] = []
  // one after another, so that the balancer's round robin puts them on every node in turn
  for (let i = 0; i < LIMIT * 3; i++) {
    const c = client()
    const outcome = await c.outcome
    if (outcome === 'open') open.push(c)
    else refused.push(outcome)
  }
  t.same(cluster.balancer.accepted, [LIMIT, LIMIT, LIMIT], 'each node was asked as often')
  t.equal(open.length, LIMIT, `${LIMIT} admitted`)
  t.equal(refused.length, LIMIT * 2)
  t.ok(refused.every(r => r.status === 429 && r.body.error?.code === 'SLUICE_RATE_CONNECTIONS'), `the others: 429 SLUICE_RATE_CONNECTIONS (${JSON.stringify(refused.map(r => [r.status, r.body.error?.code]))})`)

  const perNode = await Promise.all(cluster.nodes.map(async node => (await node.subjects()).filter(s => s === 'carol').length))
  t.equal(perNode.reduce((a, b) => a + b, 0), LIMIT, `the ${LIMIT} sessions, as the nodes list them (${perNode.join(' + ')})`)
  t.equal(perNode.filter(n => n > 0).length, 3, 'on all three nodes')
  t.ok(Math.max(...perNode) < LIMIT, 'no node reached the limit on its own: the refusals counted the others\' sockets')

  open[0]!.close()
  await open[0]!.closed
  let again: Client | undefined
  await eventually(async () => {
    again?.terminate()
    again = client()
    return (await again.outcome) === 'open'
  }, 5000, 'a slot is free again')
  const more = await client().outcome
  t.equal(more !== 'open' && more.status, 429, 'and only the one')
})
