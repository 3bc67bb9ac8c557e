// End to end on the real /v1/stream (buildApp's stream plugin, hub and Kafka):
// refused upgrades create no session and no subscription in the hub; the
// browser subprotocol form works; every frame is checked against the policy;
// in-band renewal; expiry and revocation close with 4001; a policy reload
// unsubscribes or closes (4003) live stream sockets.
import { test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway } from '../harness/live-route.ts'
import { TEST_POLICY } from '../harness/policy.ts'
import { type Client, refusal } from '../harness/client.ts'
import { redisUrl, unique } from '../helpers.ts'

const SECRET = 'stream-e2e-hs256-secret-0123456789abcdef'
const ADMIN_TOKEN = 'admin-token-for-the-stream-e2e-0123456789'
const SKEW_S = 1

function token (sub: string, claims: Record<string, unknown> = {}): string {
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'internal', aud: 'sluice', sub, exp: nowSeconds() + 600, ...claims }, SECRET)
}

test('identity and access on /v1/stream', async t => {
  const prefix = unique('sluice-test') + ':'
  const gw = await liveGateway({
    config: {
      redis: { url: redisUrl() },
      admin: { token: ADMIN_TOKEN },
      auth: {
        origins: ['https://app.example.com'],
        apiKeys: { prefix },
        jwt: { audience: ['sluice'], clockSkewSeconds: SKEW_S, issuers: [{ issuer: 'internal', algorithms: ['HS256'], secret: SECRET }] }
      }
    }
  })
  t.teardown(() => gw.app.close())
  const hub = (gw.app as unknown as { hub: { consumers: number, subscribers (topic: string): number } }).hub
  const stream = (query: string, options: { protocols?: string[], headers?: Record<string, string> } = {}): Client => gw.wsAt('/v1/stream', query, options)
  const tenant = `t${randomBytes(4).toString('hex')}`
  const prices = unique('prices').replace(/\.(?=.*\.)/g, '-')
  const orders = `orders.${tenant}`
  await gw.app.kafka.ensureTopics([{ topic: prices, partitions: 1 }, { topic: orders, partitions: 1 }])

  // refused before the upgrade: no session, no subscription, no consumer
  const now = nowSeconds()
  const refusals: Array<[string, { protocols?: string[], headers?: Record<string, string> }, string]> = [
    ['no credential', {}, 'SLUICE_AUTH_MISSING'],
    ['alg none', { headers: { authorization: `Bearer ${signJwt({ alg: 'none' }, { iss: 'internal', aud: 'sluice', sub: tenant, exp: now + 600 })}` } }, 'SLUICE_AUTH_INVALID_TOKEN'],
    ['expired', { headers: { authorization: `Bearer ${token(tenant, { exp: now - 60 })}` } }, 'SLUICE_AUTH_EXPIRED'],
    ['bad Origin', { headers: { authorization: `Bearer ${token(tenant)}`, origin: 'https://evil.example' } }, 'SLUICE_AUTH_ORIGIN_FORBIDDEN'],
    ['untrusted issuer', { protocols: ['sluice.v1', `bearer.${signJwt({ alg: 'HS256' }, { iss: 'elsewhere', aud: 'sluice', sub: tenant, exp: now + 600 }, SECRET)}`] }, 'SLUICE_AUTH_UNTRUSTED_ISSUER']
  ]
  for (const [name, options, code] of refusals) {
    const { body } = await refusal(stream(`?topics=${prices}`, options))
    t.equal(body.error?.code, code, `${name}: ${code}`)
  }
  t.equal((await refusal(stream('?topics=orders.someone-else', { headers: { authorization: `Bearer ${token(tenant)}` } }))).status, 403, 'another tenant\'s topic: 403 before the upgrade')
  t.equal(gw.sessions.size, 0, 'no session')
  t.equal(hub.subscribers(prices), 0, 'no subscription')
  t.equal(hub.consumers, 0, 'no Kafka consumer started')

  // the browser form: sluice.v1 selected, the token never echoed
  const alice = stream(`?topics=${prices}`, { protocols: ['sluice.v1', `bearer.${token(tenant, { tier: 'gold', exp: nowSeconds() + 3 })}`], headers: { origin: 'https://app.example.com' } })
  await alice.opened
  t.equal(alice.protocol, 'sluice.v1')
  // live from the `subscribed` frame on: a record produced before it is not this subscription's (a clean-clone
  // run produced it before the hub fixed its live position, and the cursor said @0:1)
  await alice.next(f => f.op === 'subscribed', 20_000)
  await gw.app.kafka.produce(prices, { key: 'k', value: JSON.stringify({ p: 1 }) })
  t.match(await alice.next(f => f.op === 'message', 20_000), { topic: prices, value: { p: 1 } }, 'served')

  // every frame is checked
  alice.send({ op: 'subscribe', id: 'theirs', topics: ['orders.someone-else'] })
  t.match(await alice.next(f => f.id === 'theirs'), { op: 'error', code: 'FORBIDDEN' })
  alice.send({ op: 'publish', id: 'mine', topic: orders, value: { qty: 1 } })
  t.match(await alice.next(f => f.id === 'mine', 20_000), { op: 'ack', topic: orders }, 'publish on its own topic, acked by Kafka')
  alice.send({ op: 'publish', id: 'ro', topic: prices, value: 1 })
  t.match(await alice.next(f => f.id === 'ro'), { op: 'error', code: 'FORBIDDEN' }, 'read-only topic')

  // renewal in-band, through the stream's own protocol
  alice.send({ op: 'auth', id: 'wider', token: token(tenant, { tier: 'gold', roles: ['admin'] }) })
  t.match(await alice.next(f => f.id === 'wider'), { op: 'error' }, 'a wider token is refused')
  alice.send({ op: 'auth', id: 'renew', token: token(tenant, { tier: 'gold' }) })
  t.match(await alice.next(f => f.id === 'renew'), { op: 'authenticated' })

  // expiry without renewal: 4001 within 1 s of exp plus skew
  const exp = nowSeconds() + 2
  const bob = stream(`?topics=${prices}`, { headers: { authorization: `Bearer ${token('bob', { exp })}` } })
  await bob.opened
  const bobClosed = await bob.closed
  t.equal(bobClosed.code, 4001, 'an expired token closes its stream with 4001')
  t.ok(bobClosed.at - (exp + SKEW_S) * 1000 <= 1000, `within 1 s of exp plus skew (${bobClosed.at - (exp + SKEW_S) * 1000} ms)`)

  // revocation of an API key
  const issued = await gw.app.inject({ method: 'POST', url: '/admin/keys', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { owner: 'carol', product: 'market', plan: 'basic' } })
  const { key, id } = issued.json() as { key: string, id: string }
  const carol = stream(`?topics=${prices}`, { headers: { 'x-api-key': key } })
  await carol.opened
  const revokedAt = Date.now()
  await gw.app.inject({ method: 'DELETE', url: `/admin/keys/${id}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  const carolClosed = await carol.closed
  t.equal(carolClosed.code, 4001, 'a revoked key closes its stream with 4001')
  t.ok(carolClosed.at - revokedAt <= 5000, `within 5 s (${carolClosed.at - revokedAt} ms)`)

  // a reload withdraws prices.* from everyone and orders from all but tier gold
  const dave = stream(`?topics=${prices}`, { headers: { authorization: `Bearer ${token('dave')}` } })
  await dave.opened
  const started = Date.now()
  writeFileSync(join(gw.policyDir, 'policy.yaml'), TEST_POLICY
    .replace(/ {2}- name: prices\n(.*\n){3}/, '')
    .replace("    plan: gold\n    subscribe: ['orders.{sub}']", "    plan: gold\n    match:\n      claims: { tier: gold }\n    subscribe: ['orders.{sub}']"))
  const [daveClosed, unsubscribed] = await Promise.all([dave.closed, alice.next(f => f.op === 'error' && Array.isArray(f.topics), 10_000)])
  t.equal(daveClosed.code, 4003, 'nothing left: closed with 4003')
  t.ok(daveClosed.at - started <= 2000, `within 2 s (${daveClosed.at - started} ms)`)
  t.match(unsubscribed, { code: 'FORBIDDEN', topics: [prices] }, 'something left: unsubscribed from what was withdrawn')
  t.equal(hub.subscribers(prices), 0, 'and the hub no longer feeds it')
  t.equal(alice.ws.readyState, alice.ws.OPEN)
  alice.close()
})
