// The admin API: its own credential (client credentials never work there),
// API keys issued once and stored as a hash only, listed without secrets and
// revoked; the policy shown, validated and reloaded; live sessions listed and
// kicked. Real Redis, real sockets.
import { test } from 'tap'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { liveGateway } from '../harness/live-route.ts'
import { TEST_POLICY } from '../harness/policy.ts'
import { refusal } from '../harness/client.ts'
import { eventually, redisUrl, unique } from '../helpers.ts'

const ADMIN_TOKEN = 'admin-token-for-the-admin-suite-0123456789'
const DEV_TOKEN = 'dev-token-for-the-admin-suite-0123456789'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }

test('the admin API answers only to its own token', async t => {
  const gw = await liveGateway({ config: { admin: { token: ADMIN_TOKEN }, dev: { token: DEV_TOKEN } } })
  t.teardown(() => gw.app.close())
  for (const [name, headers] of [
    ['no token', {}],
    ['a wrong token', { authorization: `Bearer ${ADMIN_TOKEN}x` }],
    ['a client credential', { authorization: `Bearer ${DEV_TOKEN}` }],
    ['the token in another scheme', { authorization: `Basic ${ADMIN_TOKEN}` }]
  ] as const) {
    for (const url of ['/admin/policy', '/admin/sessions', '/admin/no-such-thing']) {
      const res = await gw.app.inject({ method: 'GET', url, headers })
      t.equal(res.statusCode, 401, `${name} on ${url}: 401`)
      t.equal(res.json().error.code, 'SLUICE_ADMIN_UNAUTHORIZED')
    }
  }
  const unknown = await gw.app.inject({ method: 'GET', url: '/admin/no-such-thing', headers: admin })
  t.equal(unknown.json().error.code, 'SLUICE_ADMIN_NOT_FOUND', 'an unknown admin path is a 404 only for an admin')
  t.equal((await gw.app.inject({ method: 'GET', url: '/test/whoami', headers: admin })).json().error.code, 'SLUICE_AUTH_INVALID_TOKEN', 'and the admin token is no client credential')
  const keys = await gw.app.inject({ method: 'POST', url: '/admin/keys', headers: admin, payload: { owner: 'carol', product: 'market', plan: 'gold' } })
  t.equal(keys.statusCode, 503)
  t.equal(keys.json().error.code, 'SLUICE_ADMIN_API_KEYS_UNAVAILABLE', 'without Redis, API keys are unavailable, and it says so')
})

test('API keys: issued once, stored hashed, listed, used, revoked', async t => {
  const prefix = unique('sluice-test') + ':'
  const gw = await liveGateway({ config: { admin: { token: ADMIN_TOKEN }, redis: { url: redisUrl() }, auth: { apiKeys: { prefix } } } })
  t.teardown(() => gw.app.close())
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.disconnect())

  const issue = (payload: Record<string, unknown>) => gw.app.inject({ method: 'POST', url: '/admin/keys', headers: admin, payload })
  t.equal((await issue({ owner: 'carol', product: 'nope', plan: 'gold' })).json().error.code, 'SLUICE_ADMIN_UNKNOWN_PRODUCT')
  t.equal((await issue({ owner: 'carol', product: 'constructor', plan: 'gold' })).json().error.code, 'SLUICE_ADMIN_UNKNOWN_PRODUCT', 'no inherited property is a product')
  t.equal((await issue({ owner: 'carol', product: 'market', plan: 'platinum' })).json().error.code, 'SLUICE_ADMIN_UNKNOWN_PLAN')
  for (const bad of [{ owner: 'carol' }, { owner: 'a b', product: 'market', plan: 'gold' }, { owner: 'carol', product: 'market', plan: 'gold', ttlSeconds: 10 ** 9 }, { owner: 'carol', product: 'market', plan: 'gold', ttlSeconds: 'long' }]) {
    const res = await issue(bad)
    t.equal(res.statusCode, 400, `refused: ${JSON.stringify(bad)}`)
    t.equal(res.json().error.code, 'SLUICE_ADMIN_BAD_REQUEST')
  }

  const issued = await issue({ owner: 'carol', product: 'market', plan: 'gold', ttlSeconds: 3600 })
  t.equal(issued.statusCode, 201)
  t.equal(issued.headers['cache-control'], 'no-store', 'the response carrying the key is not cached')
  const body = issued.json() as { key: string, id: string, owner: string, expiresAt: string }
  t.match(body.key, /^sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/)
  t.match(body, { owner: 'carol', product: 'market', plan: 'gold' })
  t.ok(Math.abs(Date.parse(body.expiresAt) - (Date.now() + 3600_000)) < 60_000, 'expires when asked')
  const secret = body.key.split('_').slice(2).join('_')

  // Redis holds the hash of the secret, never the key or the secret
  const stored = await redis.hgetall(`${prefix}apikey:${body.id}`)
  t.equal(stored.hash, createHash('sha256').update(secret).digest('hex'), 'only a SHA-256 of the secret is stored')
  t.notOk(JSON.stringify(stored).includes(secret), 'the secret is not in the record')
  t.ok(await redis.pttl(`${prefix}apikey:${body.id}`) > 0, 'and Redis expires the record itself')

  const listed = await gw.app.inject({ method: 'GET', url: '/admin/keys', headers: admin })
  t.equal(listed.statusCode, 200)
  t.same(listed.json().keys.map((k: { id: string }) => k.id), [body.id])
  t.notOk(listed.body.includes(secret), 'the listing shows no secret')
  t.notOk('key' in listed.json().keys[0], 'nor the key')
  const byOwner = await gw.app.inject({ method: 'GET', url: '/admin/keys?owner=dave', headers: admin })
  t.same(byOwner.json().keys, [], 'filtered by owner')
  const one = await gw.app.inject({ method: 'GET', url: `/admin/keys/${body.id}`, headers: admin })
  t.match(one.json(), { id: body.id, owner: 'carol' })
  t.notOk(one.body.includes(secret))

  // the key works, in every form a client may send it, as its owner under its plan
  for (const headers of [{ 'x-api-key': body.key }, { authorization: `Bearer ${body.key}` }]) {
    t.match((await gw.app.inject({ method: 'GET', url: '/test/whoami', headers })).json(), { subject: 'carol', kind: 'api-key' })
  }
  const client = gw.ws(`?topics=orders.carol&api_key=${body.key}`)
  await client.opened
  client.send({ op: 'publish', id: 'p', topic: 'orders.carol' })
  t.match(await client.next(f => f.id === 'p'), { op: 'ack', plan: 'gold' }, 'under the plan it was issued for')
  const wrongSecret = body.key.slice(0, -4) + (body.key.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  t.equal((await refusal(gw.ws('', { headers: { 'x-api-key': wrongSecret } }))).body.error?.code, 'SLUICE_AUTH_INVALID_API_KEY', 'a wrong secret for a real id is refused')

  t.equal((await gw.app.inject({ method: 'DELETE', url: `/admin/keys/${body.id}`, headers: admin })).statusCode, 204)
  t.equal((await client.closed).code, 4001, 'revoking closes its socket with 4001')
  t.equal((await gw.app.inject({ method: 'DELETE', url: `/admin/keys/${body.id}`, headers: admin })).json().error.code, 'SLUICE_ADMIN_NOT_FOUND')
  t.equal((await gw.app.inject({ method: 'GET', url: `/admin/keys/${body.id}`, headers: admin })).statusCode, 404)
  t.same((await gw.app.inject({ method: 'GET', url: '/admin/keys', headers: admin })).json().keys, [])
})

test('policy: show, validate, reload', async t => {
  const gw = await liveGateway({ config: { admin: { token: ADMIN_TOKEN }, policy: { watch: false } } })
  t.teardown(() => gw.app.close())

  const shown = (await gw.app.inject({ method: 'GET', url: '/admin/policy', headers: admin })).json()
  t.match(shown, { dir: gw.policyDir, version: /^[0-9a-f]{12}$/, files: [join(gw.policyDir, 'policy.yaml')] })
  t.same(Object.keys(shown.policy.products), ['market'])
  t.notOk('lastError' in shown)

  const validate = (payload?: Record<string, unknown>) => gw.app.inject({ method: 'POST', url: '/admin/policy/validate', headers: admin, ...(payload === undefined ? {} : { payload }) })
  t.same((await validate()).json(), { valid: true, problems: [] }, 'the directory on disk is valid')
  t.same((await validate({ files: { 'a.yaml': TEST_POLICY } })).json(), { valid: true, problems: [] })
  const invalid = (await validate({ files: { 'a.yaml': TEST_POLICY, 'b.yaml': 'plans:\n  basic:\n    limits: {}\n' } })).json()
  t.equal(invalid.valid, false)
  t.ok(invalid.problems.some((p: { path: string, source: string }) => p.path === '/plans/basic' && p.source === 'b.yaml:2'), 'the duplicate plan, with file and line')
  t.ok(invalid.problems.some((p: { path: string }) => p.path === '/plans/basic/limits/connections'), 'and the missing limit')
  t.equal((await validate({ files: { '../../etc/passwd': 'x' } })).statusCode, 400, 'file names are names, not paths')

  const reload = () => gw.app.inject({ method: 'POST', url: '/admin/policy/reload', headers: admin })
  t.match((await reload()).json(), { outcome: 'applied', version: shown.version })

  writeFileSync(join(gw.policyDir, 'policy.yaml'), 'rules: [oops]\n')
  const failed = await reload()
  t.equal(failed.statusCode, 422)
  t.equal(failed.json().error.code, 'SLUICE_POLICY_INVALID')
  t.ok(failed.json().problems.length > 0, 'with every problem')
  const after = (await gw.app.inject({ method: 'GET', url: '/admin/policy', headers: admin })).json()
  t.equal(after.version, shown.version, 'the last good policy stays in force')
  t.ok(after.lastError.problems.length > 0, 'and the failed reload is shown')
  t.equal(gw.app.policy.authorize({ kind: 'dev', subject: 'dev', claims: { sub: 'dev' } }, 'subscribe', 'prices.btc').allowed, true)
})

test('sessions: listed and kicked', async t => {
  const gw = await liveGateway({ config: { admin: { token: ADMIN_TOKEN }, dev: { token: DEV_TOKEN } } })
  t.teardown(() => gw.app.close())
  const a = gw.ws('?topics=prices.btc', { headers: { authorization: `Bearer ${DEV_TOKEN}` } })
  const b = gw.ws('?topics=prices.eth', { headers: { authorization: `Bearer ${DEV_TOKEN}` } })
  await Promise.all([a.opened, b.opened])
  const listed = (await gw.app.inject({ method: 'GET', url: '/admin/sessions?subject=dev', headers: admin })).json()
  t.equal(listed.total, 2)
  t.same(listed.sessions.map((s: { topics: string[] }) => s.topics).flat().sort(), ['prices.btc', 'prices.eth'])
  t.match(listed.sessions[0], { kind: 'dev', subject: 'dev', route: '/test/live', remoteAddress: '127.0.0.1' })
  t.equal((await gw.app.inject({ method: 'GET', url: '/admin/sessions?subject=nobody', headers: admin })).json().total, 0)

  const target = listed.sessions.find((s: { topics: string[] }) => s.topics.includes('prices.btc')).id
  t.equal((await gw.app.inject({ method: 'DELETE', url: `/admin/sessions/${target}`, headers: admin })).statusCode, 204)
  t.match(await a.closed, { code: 1008, reason: 'closed by an administrator' })
  t.equal(b.ws.readyState, b.ws.OPEN, 'only that one')
  await eventually(() => gw.sessions.size === 1, 5000, 'the kicked session leaves the registry')
  t.equal((await gw.app.inject({ method: 'DELETE', url: `/admin/sessions/${target}`, headers: admin })).json().error.code, 'SLUICE_ADMIN_NOT_FOUND')
  b.close()
})
