// GET /v1/me on the real gateway (buildApp, the example policy, the real
// broker): the credential a client connects with, sent the ways the upgrade
// takes it, answers with its subject, its plan and its topics; no credential
// or a wrong one is refused with the auth plugin's codes; the answer is never
// cached.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { startGateway } from '../harness/gateway.ts'

const POLICIES = fileURLToPath(new URL('../../policies/', import.meta.url))

test('GET /v1/me answers what the policy grants the credential, and refuses without one', async t => {
  const token = randomBytes(24).toString('base64url')
  const { app } = await startGateway({ t, policyDir: POLICIES, config: { dev: { token }, policy: { watch: false } } })

  for (const request of [{ headers: { authorization: `Bearer ${token}` } }, { query: { access_token: token } }]) {
    const res = await app.inject({ method: 'GET', url: '/v1/me', ...request })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    const me = res.json()
    t.match(me, { subject: 'dev', kind: 'dev', plan: { name: 'pro', title: 'Pro', limits: { connections: 20 } } })
    t.same(me.products, [{ name: 'demo', title: 'Demo market data', plans: ['free', 'pro'], subscribe: ['demo.ticks', 'orders.dev'], publish: ['orders.dev'] }])
  }
  const none = await app.inject({ method: 'GET', url: '/v1/me' })
  t.equal(none.statusCode, 401)
  t.equal(none.json().error.code, 'SLUICE_AUTH_MISSING')
  const wrong = await app.inject({ method: 'GET', url: '/v1/me', headers: { authorization: 'Bearer not-the-dev-token' } })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.json().error.code, /^SLUICE_AUTH_/)
})
