// HTTP routes (the admin API, upgrade requests) are limited per client
// address by @fastify/rate-limit with its Redis store: the count is shared by
// every node, a refusal is 429 SLUICE_RATE_HTTP with Retry-After, and while
// Redis is unreachable the same failure mode applies as for every limit.
import { test } from 'tap'
import { RedisServer } from '@sluice/stack'
import { redisUrl } from '../helpers.ts'
import { ADMIN_TOKEN, gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { refusal } from '../harness/client.ts'

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }

test('the admin API: one count per address across nodes, then 429 with Retry-After', async t => {
  const dir = policyDir(limitsPolicy({}))
  const shared = prefix()
  const rateLimit = { http: { admin: { max: 5, timeWindowMs: 60_000 } } }
  const a = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared, rateLimit, admin: true })
  const b = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared, rateLimit, admin: true })
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) {
    const res = await fetch(`${(i % 2 ? b : a).url}/admin/policy`, { headers: admin })
    statuses.push(res.status)
    if (i === 5) {
      t.equal(res.headers.get('retry-after') !== null, true, 'Retry-After on the refusal')
      t.equal((await res.json() as { error: { code: string } }).error.code, 'SLUICE_RATE_HTTP')
    }
  }
  t.same(statuses, [200, 200, 200, 200, 200, 429], 'five requests over two nodes, the sixth refused')
  t.equal(await b.metric('sluice_rate_limit_limited_total', { limit: 'http' }), 1)
})

test('upgrade requests: per address, whoever the subject', async t => {
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: redisUrl(), prefix: prefix(), rateLimit: { http: { upgrade: { max: 3, timeWindowMs: 60_000 } } } })
  // three subjects: the plan's per-subject limits are not what refuses here
  const outcomes = []
  for (const sub of ['r1', 'r2', 'r3']) outcomes.push(await gw.client(sub).outcome)
  t.same(outcomes, ['open', 'open', 'open'])
  const fourth = await refusal(gw.client('r4'))
  t.equal(fourth.status, 429)
  t.equal((fourth.body as { code?: string }).code, 'SLUICE_RATE_HTTP', 'Fastify\'s error body, coded')
  t.ok(Number(fourth.headers['retry-after']) >= 1, 'with Retry-After')
})

test('fail-closed: the admin API answers 503 SLUICE_RATE_UNAVAILABLE while Redis is away', async t => {
  const server = new RedisServer()
  await server.start()
  t.teardown(() => server.stop())
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: server.url, prefix: prefix(), rateLimit: { failure: 'fail-closed' }, admin: true })
  t.equal((await fetch(`${gw.url}/admin/policy`, { headers: admin })).status, 200)
  await server.stop()
  const started = Date.now()
  const res = await fetch(`${gw.url}/admin/policy`, { headers: admin })
  t.equal(res.status, 503)
  t.equal((await res.json() as { error: { code: string } }).error.code, 'SLUICE_RATE_UNAVAILABLE')
  t.ok(Date.now() - started < 500, `within 500 ms (${Date.now() - started} ms)`)
})

test('public routes (catalogue, API documents, portal): per address and route; probes and /metrics never', async t => {
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: redisUrl(), prefix: prefix(), rateLimit: { http: { public: { max: 3, timeWindowMs: 60_000 } } } })
  const statuses = async (path: string, times: number) => {
    const seen: number[] = []
    for (let i = 0; i < times; i++) {
      const res = await fetch(`${gw.url}${path}`)
      seen.push(res.status)
      if (res.status === 429) {
        t.ok(Number(res.headers.get('retry-after')) >= 1, `${path}: Retry-After on the refusal`)
        // Fastify's error body, coded, as on a refused upgrade
        t.equal((await res.json() as { code: string }).code, 'SLUICE_RATE_HTTP')
      } else await res.arrayBuffer()
    }
    return seen
  }
  t.same(await statuses('/v1/products', 4), [200, 200, 200, 429], 'the catalogue: three, then 429')
  t.same(await statuses('/asyncapi.json', 4), [200, 200, 200, 429], 'the AsyncAPI document counts on its own')
  t.same(await statuses('/openapi.json', 4), [200, 200, 200, 429])
  t.same(await statuses('/portal/', 4), [200, 200, 200, 429], 'the portal\'s files')
  for (const probe of ['/healthz', '/readyz', '/metrics']) {
    t.same(await statuses(probe, 6), [200, 200, 200, 200, 200, 200], `${probe} is never limited`)
  }
})
