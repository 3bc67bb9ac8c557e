// The gateway's auth, policy and admin config: defaults, env bindings, and
// every misconfiguration that would weaken auth refused at startup with its path.
import { test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { loadGatewayConfig } from '../src/config.ts'

const base = { kafka: { brokers: ['127.0.0.1:9092'] } }
const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }) as string

function problems (config: Record<string, unknown>, env: Record<string, string> = {}): string[] {
  try {
    loadGatewayConfig({ base: { ...base, ...config }, env })
    return []
  } catch (err) {
    return ((err as { problems?: Array<{ path: string, message: string }> }).problems ?? []).map(p => `${p.path}: ${p.message}`)
  }
}

test('defaults and env', async t => {
  const config = loadGatewayConfig({ base, env: { SLUICE_AUTH_ORIGINS: 'https://a.example,https://*.b.example', SLUICE_JWT_AUDIENCE: 'sluice', SLUICE_POLICY_DIR: '/etc/sluice/policies', SLUICE_ADMIN_TOKEN: 'a'.repeat(32) } })
  t.same(config.auth.origins, ['https://a.example', 'https://*.b.example'])
  t.same(config.auth.jwt.audience, ['sluice'])
  t.equal(config.auth.jwt.clockSkewSeconds, 30)
  t.same(config.auth.jwt.jwks, { cooldownMs: 30_000, maxAgeMs: 600_000, timeoutMs: 3000 })
  t.same(config.auth.apiKeys, { prefix: 'sluice:', recheckIntervalMs: 4000 })
  t.same(config.policy, { dir: '/etc/sluice/policies', watch: true, pollIntervalMs: 1000 })
  t.same(config.admin, { token: 'a'.repeat(32) })
  t.same(loadGatewayConfig({ base }).auth.origins, [], 'no browser origin by default')
  t.equal(loadGatewayConfig({ base }).admin, undefined, 'no admin API without its token')
})

test('misconfigurations are refused with their path', async t => {
  const issuer = (extra: Record<string, unknown>) => ({ auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'i', ...extra }] } } })
  t.match(problems(issuer({ algorithms: ['RS256'] })), ['/auth/jwt/issuers/0: needs exactly one of jwksUri, publicKey or secret'])
  t.match(problems(issuer({ algorithms: ['RS256'], publicKey: pem, jwksUri: 'https://idp.example/jwks' })), ['/auth/jwt/issuers/0: needs exactly one'])
  t.match(problems(issuer({ algorithms: ['HS256', 'RS256'], secret: 's'.repeat(32) })), ['/auth/jwt/issuers/0/algorithms: a secret verifies HS256'])
  t.match(problems(issuer({ algorithms: ['HS256'], secret: `${pem}${'x'.repeat(10)}` })), ['/auth/jwt/issuers/0/secret: looks like a PEM key'])
  t.match(problems(issuer({ algorithms: ['HS256'], jwksUri: 'https://idp.example/jwks' })), ['/auth/jwt/issuers/0/algorithms: HS256 needs a secret'])
  t.match(problems(issuer({ algorithms: ['none'], jwksUri: 'https://idp.example/jwks' })), ['/auth/jwt/issuers/0/algorithms/0: must be one of'])
  t.match(problems(issuer({ algorithms: ['HS256'], secret: 'short' })), ['/auth/jwt/issuers/0/secret: must NOT have fewer than 32 characters'])
  t.match(problems(issuer({ algorithms: ['RS256'], jwksUri: 'http://idp.example/jwks' })), ['/auth/jwt/issuers/0/jwksUri: must match pattern'], 'plain HTTP only on loopback')
  t.same(problems(issuer({ algorithms: ['RS256'], jwksUri: 'http://127.0.0.1:8080/jwks' })), [])
  t.match(problems(issuer({ algorithms: ['ES256'], publicKey: 'not a key' })), ['/auth/jwt/issuers/0/publicKey: not a public key'])
  t.match(problems(issuer({ algorithms: ['RS256'], publicKey: pem })), ['/auth/jwt/issuers/0/algorithms: issuer "i": its ec key cannot verify RS256'], 'an EC key cannot verify RS256')
  t.same(problems(issuer({ algorithms: ['ES256'], publicKey: pem })), [])
  t.match(problems({ auth: { jwt: { issuers: [{ issuer: 'i', algorithms: ['ES256'], publicKey: pem }] } } }), ['/auth/jwt/audience: is required when issuers are configured'])
  t.match(problems({ auth: { jwt: { audience: ['a'], issuers: [{ issuer: 'i', algorithms: ['ES256'], publicKey: pem }, { issuer: 'i', algorithms: ['ES256'], publicKey: pem }] } } }), ['/auth/jwt/issuers/1/issuer: "i" is configured twice'])
  t.match(problems({ auth: { jwt: { clockSkewSeconds: 3600 } } }), ['/auth/jwt/clockSkewSeconds: must be <= 300'])
  t.match(problems({ auth: { origins: ['https://a.example/path'] } }), ['/auth/origins/0: must match pattern'])
  t.match(problems({ admin: { token: 'short' } }), ['/admin/token: must NOT have fewer than 32 characters'])
  t.match(problems({ auth: { apiKeys: { recheckIntervalMs: 10 } } }), ['/auth/apiKeys/recheckIntervalMs: must be >= 500'])
})
