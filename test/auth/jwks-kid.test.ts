// A JWKS issuer picks the verifying key by the token's `kid`: a token without
// one (or with an empty or oversized one) is refused before any JWKS fetch,
// and a published key without a `kid` is never used. An issuer with one key
// (a secret or a public key) needs no `kid`. plugins/auth/README.md says so.
import { test } from 'tap'
import { createServer } from 'node:http'
import { generateKeyPairSync } from 'node:crypto'
import { JwksServer, nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway, WHOAMI_PATH } from '../harness/live-route.ts'
import { JwksKeys, MAX_KID_LENGTH } from '@sluice/auth'

const HS_SECRET = 'the-kid-suite-hs256-secret-of-32-bytes-or-more'

test('a JWKS issuer refuses a token without kid before fetching its keys; a one-key issuer needs none', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const key = idp.addKey('RS256')
  const gw = await liveGateway({
    config: {
      auth: {
        jwt: {
          audience: ['sluice'],
          issuers: [
            { issuer: idp.issuer, algorithms: ['RS256'], jwksUri: idp.jwksUri },
            { issuer: 'internal', algorithms: ['HS256'], secret: HS_SECRET }
          ]
        }
      }
    }
  })
  t.teardown(() => gw.app.close())
  const whoami = async (token: string) => {
    const res = await gw.app.inject({ method: 'GET', url: WHOAMI_PATH, headers: { authorization: `Bearer ${token}` } })
    return { status: res.statusCode, code: (res.json() as { error?: { code?: string } }).error?.code }
  }

  t.same(await whoami(idp.token(key)), { status: 200, code: undefined }, 'with its kid: accepted')
  const fetched = idp.fetches

  // signed by the very key the JWKS publishes, only the kid left out
  const cases: Array<[string, Record<string, unknown>]> = [
    ['no kid', { kid: undefined }],
    ['an empty kid', { kid: '' }],
    ['a kid that is not a string', { kid: 7 }],
    [`a kid of ${MAX_KID_LENGTH + 1} characters`, { kid: 'k'.repeat(MAX_KID_LENGTH + 1) }]
  ]
  for (const [what, header] of cases) {
    t.same(await whoami(idp.token(key, {}, header)), { status: 401, code: 'SLUICE_AUTH_INVALID_TOKEN' }, `${what}: 401 SLUICE_AUTH_INVALID_TOKEN`)
  }
  t.equal(idp.fetches, fetched, 'none of them made the gateway fetch the JWKS')

  const now = nowSeconds()
  const hs = signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'internal', aud: 'sluice', sub: 'svc', iat: now, exp: now + 300 }, HS_SECRET)
  t.same(await whoami(hs), { status: 200, code: undefined }, 'an issuer with a secret: no kid needed')
})

test('a key the JWKS publishes without kid is never used', async t => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const { kid: _kid, ...noKid } = { ...rsa.publicKey.export({ format: 'jwk' }), kid: undefined, alg: 'RS256', use: 'sig' }
  const server = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [noKid] })) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const jwks = new JwksKeys({ uri: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`, cooldownMs: 0, maxAgeMs: 600_000, timeoutMs: 500 })
  let code: string | undefined
  try {
    await jwks.key('any', 'RS256')
  } catch (err) {
    code = (err as { code?: string }).code
  }
  t.equal(code, 'SLUICE_AUTH_UNKNOWN_KEY', 'the only key has no kid: no token can name it')
})
