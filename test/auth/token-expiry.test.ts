// A credential that expires during a connection closes it with 4001 within
// 1 s of its expiry (plus the clock skew for JWTs), never before; a client
// may renew in-band first, with the same subject and no wider access.
import { test, type Test } from 'tap'
import { JwksServer, nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway, type TestGateway } from '../harness/live-route.ts'
import type { Client } from '../harness/client.ts'
import { redisUrl, unique } from '../helpers.ts'

const SKEW_S = 1
// docs/design.md's bound: closed within 1 s of exp plus skew
const BOUND_MS = 1000

async function gateway (t: Test, idp: JwksServer, extra: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await liveGateway({
    config: {
      auth: { jwt: { audience: ['sluice'], clockSkewSeconds: SKEW_S, issuers: [{ issuer: idp.issuer, algorithms: ['RS256'], jwksUri: idp.jwksUri }] } },
      ...extra
    }
  })
  t.teardown(() => gw.app.close())
  return gw
}

async function closedAfter (client: Client, deadlineMs: number): Promise<{ code: number, reason: string, at: number }> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`not closed within ${deadlineMs} ms`)), deadlineMs) })
  try {
    return await Promise.race([client.closed, timeout])
  } finally {
    clearTimeout(timer)
  }
}

test('an expiring JWT closes its socket with 4001 within 1 s of exp plus skew', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const key = idp.addKey('RS256')
  const gw = await gateway(t, idp)

  const exp = nowSeconds() + 2
  const client = gw.ws('?topics=prices.btc', { headers: { authorization: `Bearer ${idp.token(key, { exp })}` } })
  await client.opened
  const closed = await closedAfter(client, 10_000)
  const due = exp * 1000 + SKEW_S * 1000
  t.equal(closed.code, 4001, 'closed with 4001')
  t.equal(closed.reason, 'credentials expired')
  t.ok(closed.at >= due, `not before exp plus skew (${closed.at - due} ms after)`)
  t.ok(closed.at - due <= BOUND_MS, `within ${BOUND_MS} ms of exp plus skew (${closed.at - due} ms)`)
})

test('renewing in-band before exp keeps the socket; a wider or foreign token is refused', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const key = idp.addKey('RS256')
  const gw = await gateway(t, idp)

  const exp = nowSeconds() + 2
  const claims = { sub: 'alice', roles: ['reader'], scope: 'prices' }
  const client = gw.ws('?topics=prices.btc', { headers: { authorization: `Bearer ${idp.token(key, { ...claims, exp })}` } })
  await client.opened

  const refusedWith = async (id: string, token: string) => {
    client.send({ op: 'auth', id, token })
    return (await client.next(f => f.id === id)).reason
  }
  t.equal(await refusedWith('other-sub', idp.token(key, { ...claims, sub: 'mallory', exp: nowSeconds() + 600 })), 'SLUICE_AUTH_RENEW_REFUSED', 'another subject is refused')
  t.equal(await refusedWith('wider', idp.token(key, { ...claims, roles: ['reader', 'admin'], exp: nowSeconds() + 600 })), 'SLUICE_AUTH_RENEW_REFUSED', 'more roles are refused')
  t.equal(await refusedWith('new-claim', idp.token(key, { ...claims, tier: 'gold', exp: nowSeconds() + 600 })), 'SLUICE_AUTH_RENEW_REFUSED', 'a new claim is refused')
  t.equal(await refusedWith('expired', idp.token(key, { ...claims, iat: nowSeconds() - 600, exp: nowSeconds() - 60 })), 'SLUICE_AUTH_EXPIRED', 'an expired token is refused')
  t.equal(await refusedWith('forged', signJwt({ alg: 'none', kid: key.kid }, { ...claims, iss: idp.issuer, aud: 'sluice', exp: nowSeconds() + 600 })), 'SLUICE_AUTH_INVALID_TOKEN', 'an unsigned token is refused')

  const freshExp = nowSeconds() + 600
  client.send({ op: 'auth', id: 'renew', token: idp.token(key, { ...claims, exp: freshExp, jti: 'fresh' }) })
  const renewed = await client.next(f => f.id === 'renew')
  t.equal(renewed.op, 'authenticated', 'the same grant with a later exp is accepted')
  t.equal(renewed.expiresAt, freshExp * 1000)

  // past the old exp + skew + the bound, the socket is still open
  const oldDue = exp * 1000 + SKEW_S * 1000 + BOUND_MS + 500
  await new Promise(resolve => setTimeout(resolve, Math.max(0, oldDue - Date.now())))
  t.equal(client.ws.readyState, client.ws.OPEN, 'still open after the old token\'s expiry')
  client.send({ op: 'subscribe', id: 's', topics: ['prices.eth'] })
  t.equal((await client.next(f => f.id === 's')).op, 'subscribed', 'and still served')
  client.close()
})

test('an expiring API key closes its socket with 4001 within 1 s', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const gw = await gateway(t, idp, { redis: { url: redisUrl() }, auth: { apiKeys: { prefix: unique('sluice-test') + ':' } } })
  const store = gw.app.credentials.apiKeys!
  const { key, record } = await store.issue({ owner: 'carol', product: 'market', plan: 'gold', expiresAt: Date.now() + 1500 })
  const client = gw.ws('', { headers: { 'x-api-key': key } })
  await client.opened
  const closed = await closedAfter(client, 10_000)
  t.equal(closed.code, 4001)
  t.ok(closed.at >= record.expiresAt, 'not before its expiry')
  t.ok(closed.at - record.expiresAt <= BOUND_MS, `within ${BOUND_MS} ms of its expiry (${closed.at - record.expiresAt} ms)`)
  t.equal((await gw.app.inject({ method: 'GET', url: '/test/whoami', headers: { 'x-api-key': key } })).json().error.code, 'SLUICE_AUTH_INVALID_API_KEY', 'and it no longer opens anything')

  // an API-key session cannot renew in-band
  const second = await store.issue({ owner: 'carol', product: 'market', plan: 'gold', expiresAt: Date.now() + 60_000 })
  const other = gw.ws('', { headers: { 'x-api-key': second.key } })
  await other.opened
  other.send({ op: 'auth', id: 'r', token: idp.token(idp.addKey('RS256')) })
  t.equal((await other.next(f => f.id === 'r')).reason, 'SLUICE_AUTH_RENEW_REFUSED')
  other.close()
})
