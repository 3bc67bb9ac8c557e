// The developer API never hangs on Redis (docs/design.md: a dependency failing
// never hangs a client): without Redis configured it answers 503
// SLUICE_APPS_UNAVAILABLE; with Redis configured but unreachable, 503
// SLUICE_APPS_REDIS_UNAVAILABLE within the 500 ms Redis budget (plus slack for
// a loaded machine), never 500.
import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { startGateway } from '../harness/gateway.ts'
import { policyDir } from '../harness/policy.ts'
import { ADMIN_TOKEN, APPS_POLICY, developerToken, ISSUER, SECRET } from './harness.ts'

// the Redis budget (500 ms) with room for a loaded CI machine: what matters is that nothing waits on a reconnect
const BOUND_MS = 2000

async function app (t: Test, redis: { url: string } | undefined): Promise<FastifyInstance> {
  const { app } = await startGateway({
    t,
    policyDir: policyDir(APPS_POLICY),
    // the Redis of this suite is down: not waited for
    redisReady: false,
    config: {
      policy: { watch: false },
      admin: { token: ADMIN_TOKEN },
      rateLimit: { enabled: false },
      ...(redis ? { redis } : {}),
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: ISSUER, algorithms: ['HS256'], secret: SECRET }] } }
    }
  })
  return app
}

test('without Redis configured the developer and admin routes answer 503 SLUICE_APPS_UNAVAILABLE', async t => {
  const gw = await app(t, undefined)
  const response = await gw.inject({ method: 'POST', url: '/v1/developer/applications', headers: { authorization: `Bearer ${developerToken('hana')}` }, payload: { name: 'x' } })
  t.equal(response.statusCode, 503)
  t.equal(response.json().error.code, 'SLUICE_APPS_UNAVAILABLE')
  const pending = await gw.inject({ method: 'GET', url: '/admin/subscriptions/pending', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(pending.json().error.code, 'SLUICE_APPS_UNAVAILABLE')
})

test('with Redis unreachable the developer API answers 503 SLUICE_APPS_REDIS_UNAVAILABLE at once', async t => {
  // a port nothing listens on: connections are refused, and ioredis keeps reconnecting
  const gw = await app(t, { url: 'redis://127.0.0.1:1' })
  for (const [method, url, payload] of [['POST', '/v1/developer/applications', { name: 'x' }], ['GET', '/v1/developer/applications', undefined]] as const) {
    const started = Date.now()
    const response = await gw.inject({ method, url, headers: { authorization: `Bearer ${developerToken('hana')}` }, ...(payload ? { payload } : {}) })
    t.equal(response.statusCode, 503, `${method} ${url}: 503`)
    t.equal(response.json().error.code, 'SLUICE_APPS_REDIS_UNAVAILABLE')
    t.ok(Date.now() - started < BOUND_MS, `within ${BOUND_MS} ms (${Date.now() - started} ms)`)
  }
})
