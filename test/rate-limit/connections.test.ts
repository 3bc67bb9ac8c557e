// Concurrent connections per subject and plan, shared by every node: 100
// upgrades at once for one subject, spread over two gateways on one Redis,
// against a limit of N, admit exactly N; the others hear 429 with
// Retry-After before any upgrade. A closed socket frees its slot on every
// node; a node that dies without releasing frees them when its count expires.
// Connects per minute refuse the same way.
import { test } from 'tap'
import { eventually, redisUrl } from '../helpers.ts'
import { gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { type Client, refusal, type Refusal } from '../harness/client.ts'

const N = 7
const ATTEMPTS = 100

test(`${ATTEMPTS} concurrent connects over two nodes against a limit of ${N} admit exactly ${N}`, async t => {
  const dir = policyDir(limitsPolicy({ connections: N }))
  const shared = prefix()
  const a = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared })
  const b = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared })

  const clients = Array.from({ length: ATTEMPTS }, (_, i) => (i % 2 === 0 ? a : b).client('carol'))
  const outcomes = await Promise.all(clients.map(c => c.outcome))
  const open = clients.filter((_, i) => outcomes[i] === 'open')
  const refused = outcomes.filter((o): o is Refusal => o !== 'open')
  t.equal(open.length, N, `exactly ${N} admitted`)
  t.equal(refused.length, ATTEMPTS - N)
  t.ok(refused.every(r => r.status === 429 && r.body.error?.code === 'SLUICE_RATE_CONNECTIONS'), 'every other one: 429 SLUICE_RATE_CONNECTIONS')
  t.ok(refused.every(r => Number(r.headers['retry-after']) >= 1), 'with Retry-After')
  t.equal(a.app.sessions.size + b.app.sessions.size, N, 'only the admitted ones hold a session')

  // another subject has its own slots
  const dave = a.client('dave')
  t.equal(await dave.outcome, 'open')

  // closing two frees two, on whichever node asks
  const closing = open.slice(0, 2)
  for (const c of closing) c.close()
  await Promise.all(closing.map(c => c.closed))
  let again: Client[] = []
  await eventually(async () => {
    for (const c of again) c.terminate()
    again = [b.client('carol'), a.client('carol'), b.client('carol')]
    const o = await Promise.all(again.map(c => c.outcome))
    return o.filter(x => x === 'open').length === 2
  }, 5000, 'two slots free again after two sockets closed')
  t.pass('two closed sockets let exactly two more in')
  t.equal(await a.metric('sluice_rate_limit_limited_total', { limit: 'connections' }) as number > 0, true, 'refusals counted in metrics')
})

test('a node that dies without releasing frees its connections when its count expires', async t => {
  const dir = policyDir(limitsPolicy({ connections: 2 }))
  const shared = prefix()
  // a short TTL, so that the suite waits seconds, not the 30 s default
  const rateLimit = { connectionTtlMs: 3000 }
  const a = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared, rateLimit })
  const b = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared, rateLimit })
  const held = [a.client('erin'), a.client('erin')]
  t.same(await Promise.all(held.map(c => c.outcome)), ['open', 'open'])
  t.equal((await refusal(b.client('erin'))).status, 429, 'full, seen from the other node')

  // node a loses Redis (nothing it releases reaches Redis any more) and then goes away
  a.app.redis.disconnect()
  await a.app.close()
  const diedAt = Date.now()
  let c: Client | undefined
  await eventually(async () => {
    c?.terminate()
    c = b.client('erin')
    return (await c.outcome) === 'open'
  }, 10_000, 'the dead node\'s connections expire')
  const took = Date.now() - diedAt
  t.ok(took <= 3000 + 1500, `freed within the count's TTL (${took} ms)`)
})

test('connects per minute: the burst, then 429 SLUICE_RATE_CONNECTS with the wait for the next one', async t => {
  const a = await gateway(t, { policyDir: policyDir(limitsPolicy({ connectsPerMinute: 5 })), redisUrl: redisUrl(), prefix: prefix() })
  for (let i = 0; i < 5; i++) {
    const c = a.client('frank')
    t.equal(await c.outcome, 'open', `connect ${i + 1}`)
    c.close()
    await c.closed
  }
  const refused = await refusal(a.client('frank'))
  t.equal(refused.status, 429)
  t.equal(refused.body.error?.code, 'SLUICE_RATE_CONNECTS')
  const retry = Number(refused.headers['retry-after'])
  t.ok(retry >= 1 && retry <= 12, `Retry-After: one token of 5 per minute is 12 s away at most (${retry} s)`)
})

test('without Redis, the in-process store serves one node', async t => {
  const a = await gateway(t, { policyDir: policyDir(limitsPolicy({ connections: 2 })), redisUrl: null, prefix: prefix() })
  const open = [a.client('gina'), a.client('gina')]
  t.same(await Promise.all(open.map(c => c.outcome)), ['open', 'open'])
  const third = await refusal(a.client('gina'))
  t.equal(third.status, 429)
  t.equal(third.body.error?.code, 'SLUICE_RATE_CONNECTIONS')
  t.equal(await a.metric('sluice_rate_limit_mode', { mode: 'memory' }), 1, 'mode: memory')
  open[0]!.close()
  await open[0]!.closed
  await eventually(async () => (await a.client('gina').outcome) === 'open', 3000, 'a closed socket frees its slot')
  t.pass('freed')
})
