// Every bad credential is refused with 401/403 and a JSON error before the
// WebSocket upgrade: no socket is opened, no session registered, and an
// untrusted issuer's JWKS is never fetched. Real sockets, a real JWKS server.
import { test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { JwksServer, nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway, type TestGateway } from '../harness/live-route.ts'
import { refusal } from '../harness/client.ts'

const HS_SECRET = 'an-internal-issuer-secret-of-at-least-32-bytes'
const ORIGIN = 'https://app.example.com'
const DEV_TOKEN = 'dev-token-for-the-reject-suite-0123456789'

test('credentials are checked before the upgrade', async t => {
  const idp = await new JwksServer().start()
  const untrusted = await new JwksServer().start()
  t.teardown(() => Promise.all([idp.stop(), untrusted.stop()]))
  const key = idp.addKey('RS256')
  const evilKey = untrusted.addKey('RS256')

  const gw: TestGateway = await liveGateway({
    config: {
      dev: { token: DEV_TOKEN },
      auth: {
        origins: [ORIGIN],
        jwt: {
          audience: ['sluice'],
          clockSkewSeconds: 5,
          issuers: [
            { issuer: idp.issuer, algorithms: ['RS256'], jwksUri: idp.jwksUri },
            // an HS256 issuer too, so that HS256 is an algorithm the gateway accepts at all
            { issuer: 'internal', algorithms: ['HS256'], secret: HS_SECRET }
          ]
        }
      }
    }
  })
  t.teardown(() => gw.app.close())

  const now = nowSeconds()
  const claims = { iss: idp.issuer, aud: 'sluice', sub: 'alice', iat: now, exp: now + 300 }
  const header = { alg: 'RS256', typ: 'JWT', kid: key.kid }
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey

  const cases: Array<{ name: string, status: number, code: string, query?: string, headers?: Record<string, string>, protocols?: string[] }> = [
    { name: 'no credential', status: 401, code: 'SLUICE_AUTH_MISSING' },
    { name: 'not a JWT', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: 'Bearer not-a-jwt' } },
    { name: 'undecodable JWT', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: 'Bearer eyJhbGciOi.eyJzdWIi.c2ln' } },
    { name: 'another auth scheme', status: 401, code: 'SLUICE_AUTH_MALFORMED', headers: { authorization: 'Basic YWxpY2U6cHc=' } },
    { name: 'alg none', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt({ alg: 'none', typ: 'JWT', kid: key.kid }, claims)}` } },
    { name: 'alg none, no kid', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt({ alg: 'none' }, claims)}` } },
    { name: 'HS256 keyed with the RS256 public key', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt({ ...header, alg: 'HS256' }, claims, key.publicPem)}` } },
    { name: 'HS256 keyed with whitespace + the public key', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt({ ...header, alg: 'HS256' }, claims, '\n  ' + key.publicPem)}` } },
    { name: 'HS256 keyed with a prefix + the public key', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt({ ...header, alg: 'HS256' }, claims, 'prefix' + key.publicPem)}` } },
    { name: 'HS256 keyed with the public key, claiming the HS issuer', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt({ alg: 'HS256', typ: 'JWT' }, { ...claims, iss: 'internal' }, key.publicPem)}` } },
    { name: 'signed by another key under the same kid', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${signJwt(header, claims, otherRsa)}` } },
    { name: 'expired', status: 401, code: 'SLUICE_AUTH_EXPIRED', headers: { authorization: `Bearer ${idp.token(key, { iat: now - 600, exp: now - 60 })}` } },
    { name: 'nbf in the future', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${idp.token(key, { nbf: now + 120 })}` } },
    { name: 'no exp', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${idp.token(key, { exp: undefined })}` } },
    { name: 'no aud', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${idp.token(key, { aud: undefined })}` } },
    { name: 'wrong aud', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${idp.token(key, { aud: 'another-api' })}` } },
    { name: 'no iss', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${idp.token(key, { iss: undefined })}` } },
    { name: 'wrong iss', status: 401, code: 'SLUICE_AUTH_UNTRUSTED_ISSUER', headers: { authorization: `Bearer ${idp.token(key, { iss: idp.issuer + '/' })}` } },
    { name: 'unknown crit header', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${idp.token(key, {}, { crit: ['x-sluice-unknown'], 'x-sluice-unknown': true })}` } },
    { name: 'untrusted issuer (its own JWKS)', status: 401, code: 'SLUICE_AUTH_UNTRUSTED_ISSUER', headers: { authorization: `Bearer ${untrusted.token(evilKey)}` } },
    { name: 'untrusted issuer in the subprotocol', status: 401, code: 'SLUICE_AUTH_UNTRUSTED_ISSUER', protocols: ['sluice.v1', `bearer.${untrusted.token(evilKey)}`] },
    { name: 'expired token in the query', status: 401, code: 'SLUICE_AUTH_EXPIRED', query: `?access_token=${idp.token(key, { iat: now - 600, exp: now - 60 })}` },
    { name: 'two credentials', status: 401, code: 'SLUICE_AUTH_AMBIGUOUS', query: `?access_token=${idp.token(key)}`, headers: { authorization: `Bearer ${idp.token(key)}` } },
    { name: 'an Origin not allowed, valid token', status: 403, code: 'SLUICE_AUTH_ORIGIN_FORBIDDEN', headers: { authorization: `Bearer ${idp.token(key)}`, origin: 'https://evil.example.net' } },
    { name: 'a lookalike Origin, valid token', status: 403, code: 'SLUICE_AUTH_ORIGIN_FORBIDDEN', headers: { authorization: `Bearer ${idp.token(key)}`, origin: ORIGIN + '.evil.net' } },
    { name: 'a wrong dev token', status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN', headers: { authorization: `Bearer ${DEV_TOKEN}x` } },
    { name: 'an API key without Redis', status: 401, code: 'SLUICE_AUTH_API_KEYS_DISABLED', headers: { 'x-api-key': 'sk_0123456789abcdef_' + 'a'.repeat(43) } }
  ]

  for (const c of cases) {
    const client = gw.ws(c.query, { headers: c.headers, protocols: c.protocols })
    const { status, body } = await refusal(client)
    t.equal(status, c.status, `${c.name}: HTTP ${c.status}`)
    t.equal(body.error?.code, c.code, `${c.name}: ${c.code}`)
    t.type(body.error?.message, 'string', `${c.name}: a message`)
  }
  t.equal(gw.opened(), 0, 'no socket was ever opened by a refused client')
  t.equal(gw.sessions.size, 0, 'no session (and so no subscription) was created')
  t.equal(untrusted.fetches, 0, 'the untrusted issuer\'s JWKS was never fetched')

  // and the good ones pass, by every route a client may take
  const viaHeader = gw.ws('', { headers: { authorization: `Bearer ${idp.token(key)}` } })
  await viaHeader.opened
  const viaProtocol = gw.wsAt(gw.protocolPath, '', { protocols: ['sluice.v1', `bearer.${idp.token(key)}`], headers: { origin: ORIGIN } })
  await viaProtocol.opened
  t.equal(viaProtocol.protocol, 'sluice.v1', `the server selects sluice.v1, never the bearer token (${gw.protocolPath})`)
  const viaQuery = gw.ws(`?access_token=${idp.token(key)}`, { headers: { origin: ORIGIN } })
  await viaQuery.opened
  const viaDev = gw.ws(`?access_token=${DEV_TOKEN}`)
  await viaDev.opened
  const hs = gw.ws('', { headers: { authorization: `Bearer ${signJwt({ alg: 'HS256', typ: 'JWT' }, { ...claims, iss: 'internal', sub: 'svc' }, HS_SECRET)}` } })
  await hs.opened
  const welcomes = await Promise.all([viaHeader, viaQuery, viaDev, hs].map(c => c.next(f => f.op === 'welcome')))
  t.same(welcomes.map(w => w.subject), ['alice', 'alice', 'dev', 'svc'], 'each identity is the token\'s subject')
  t.ok(gw.sessions.list().some(s => s.route === gw.protocolPath && s.identity.subject === 'alice'), 'the subprotocol\'s identity is the token\'s subject')
  for (const c of [viaHeader, viaProtocol, viaQuery, viaDev, hs]) c.close()
})
