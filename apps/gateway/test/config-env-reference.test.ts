// The gateway's secrets and trusted issuers from ${env:NAME} references: each
// resolved, an unset variable reported with its path and line, and a value
// still shaped like a reference refused rather than used as the secret.
import { test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '@sluice/config'
import { loadGatewayConfig } from '../src/config.ts'

// "${env:NAME}" written without a template-literal lookalike in the source
const ref = (name: string) => '$' + '{env:' + name + '}'
const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }) as string

const JWT_SECRET = 'jwt-secret-'.padEnd(40, 'j')
const ADMIN_TOKEN = 'admin-token-'.padEnd(40, 'a')
const DEV_TOKEN = 'dev-token-'.padEnd(40, 'd')
const REDIS_PASSWORD = 'redis-password-r3d1s'

function writeConfig (lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-gateway-')), 'gateway.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function problemsOf (fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

const every = [
  'kafka:',
  '  brokers: [127.0.0.1:9092]',
  'redis:',
  `  url: redis://:${ref('REDIS_PASSWORD')}@127.0.0.1:6379`,
  'dev:',
  `  token: ${ref('DEV_TOKEN')}`,
  'admin:',
  `  token: ${ref('ADMIN_TOKEN')}`,
  'auth:',
  '  jwt:',
  `    audience: ${ref('JWT_AUDIENCE')}`,
  '    issuers:',
  `      - issuer: ${ref('JWT_ISSUER')}`,
  '        algorithms: [HS256]',
  `        secret: ${ref('JWT_SECRET')}`,
  `      - issuer: ${ref('IDP_ISSUER')}`,
  '        algorithms: [RS256]',
  `        jwksUri: ${ref('IDP_JWKS_URI')}`,
  '      - issuer: https://keys.example',
  '        algorithms: [ES256]',
  `        publicKey: ${ref('IDP_PUBLIC_KEY')}`
]
const everyEnv = {
  REDIS_PASSWORD,
  DEV_TOKEN,
  ADMIN_TOKEN,
  JWT_AUDIENCE: 'sluice, sluice-eu',
  JWT_ISSUER: 'https://auth.example',
  JWT_SECRET,
  IDP_ISSUER: 'https://idp.example',
  IDP_JWKS_URI: 'https://idp.example/.well-known/jwks.json',
  IDP_PUBLIC_KEY: pem
}

test('every secret and every issuer field is resolved from its variable', async t => {
  const config = loadGatewayConfig({ file: writeConfig(every), env: everyEnv })
  t.equal(config.redis?.url, `redis://:${REDIS_PASSWORD}@127.0.0.1:6379`, 'the Redis password inside its URL')
  t.equal(config.dev?.token, DEV_TOKEN)
  t.equal(config.admin?.token, ADMIN_TOKEN)
  t.same(config.auth.jwt.audience, ['sluice', 'sluice-eu'], 'a comma-separated list')
  t.same(config.auth.jwt.issuers, [
    { issuer: 'https://auth.example', algorithms: ['HS256'], secret: JWT_SECRET },
    { issuer: 'https://idp.example', algorithms: ['RS256'], jwksUri: 'https://idp.example/.well-known/jwks.json' },
    { issuer: 'https://keys.example', algorithms: ['ES256'], publicKey: pem }
  ], 'an HMAC secret, a JWKS issuer and a PEM key over several lines')
})

test('every unset variable is reported at once with its path and line, and no secret in any message', async t => {
  const file = writeConfig(every)
  const err = problemsOf(() => loadGatewayConfig({ file, env: { JWT_SECRET, IDP_PUBLIC_KEY: pem } }))
  t.equal(err.code, 'SLUICE_CONFIG_INVALID')
  t.same(err.message.split('\n').slice(1), [
    `- /redis/url: environment variable REDIS_PASSWORD is not set (${file}:4)`,
    `- /dev/token: environment variable DEV_TOKEN is not set (${file}:6)`,
    `- /admin/token: environment variable ADMIN_TOKEN is not set (${file}:8)`,
    `- /auth/jwt/audience: environment variable JWT_AUDIENCE is not set (${file}:11)`,
    `- /auth/jwt/issuers/0/issuer: environment variable JWT_ISSUER is not set (${file}:13)`,
    `- /auth/jwt/issuers/1/issuer: environment variable IDP_ISSUER is not set (${file}:16)`,
    `- /auth/jwt/issuers/1/jwksUri: environment variable IDP_JWKS_URI is not set (${file}:18)`
  ])
  t.notMatch(err.message, JWT_SECRET)
  t.notMatch(err.message, 'BEGIN PUBLIC KEY')
})

test('a reference left in a secret is refused, from the file, from a variable, or from a mapped SLUICE_* variable', async t => {
  // long names, so that the literal text passes the 32-character minimum and only this check stands in the way
  const file = writeConfig([
    'kafka:',
    '  brokers: [127.0.0.1:9092]',
    'auth:',
    '  jwt:',
    '    audience: [sluice]',
    '    issuers:',
    '      - issuer: https://auth.example',
    '        algorithms: [HS256]',
    `        secret: ${ref('JWT_SECRET')}`,
    '      - issuer: https://other.example',
    '        algorithms: [HS256]',
    '        secret: $' + '{OTHER_JWT_SECRET_FROM_THE_VAULT}'
  ])
  const err = problemsOf(() => loadGatewayConfig({
    file,
    env: {
      JWT_SECRET: ref('JWT_SECRET_FROM_THE_VAULT_OF_SECRETS'),
      SLUICE_ADMIN_TOKEN: ref('SLUICE_ADMIN_TOKEN_FROM_THE_VAULT'),
      SLUICE_DEV_TOKEN: '$SLUICE_DEV_TOKEN_FROM_THE_VAULT_OF_SECRETS',
      REDIS_URL: 'redis://:$REDIS_PASSWORD@127.0.0.1:6379'
    }
  }))
  const SHAPE = 'looks like an unexpanded $' + '{NAME} or $NAME, not a secret'
  t.same(err.problems.map(p => `${p.path}: ${p.message.split(':')[0]} (${p.source})`), [
    `/redis/url: ${SHAPE} (env REDIS_URL)`,
    `/dev/token: ${SHAPE} (env SLUICE_DEV_TOKEN)`,
    '/admin/token: holds an unresolved reference to SLUICE_ADMIN_TOKEN_FROM_THE_VAULT (env SLUICE_ADMIN_TOKEN)',
    `/auth/jwt/issuers/0/secret: holds an unresolved reference to JWT_SECRET_FROM_THE_VAULT_OF_SECRETS (${file}:9, env JWT_SECRET)`,
    `/auth/jwt/issuers/1/secret: ${SHAPE} (${file}:12)`
  ])
  t.notMatch(err.message, 'OTHER_JWT_SECRET', 'a value is never quoted')

  // without the check, each of these would load, and the literal text would be the HMAC key or the admin token
  const admin = problemsOf(() => loadGatewayConfig({ base: { kafka: { brokers: ['127.0.0.1:9092'] } }, env: { SLUICE_ADMIN_TOKEN: ref('SLUICE_ADMIN_TOKEN_FROM_THE_VAULT') } }))
  t.match(admin.problems, [{ path: '/admin/token', message: /^holds an unresolved reference/ }])
})

test('issuers from one variable holding a JSON array; nothing in it is resolved again', async t => {
  const issuers = [
    { issuer: 'https://auth.example', algorithms: ['HS256'], secret: JWT_SECRET },
    { issuer: 'https://idp.example', algorithms: ['RS256', 'ES256'], jwksUri: 'https://idp.example/jwks' }
  ]
  const file = writeConfig([
    'kafka:',
    '  brokers: [127.0.0.1:9092]',
    'auth:',
    '  jwt:',
    `    audience: ${ref('JWT_AUDIENCE')}`,
    `    issuers: ${ref('JWT_ISSUERS')}`
  ])
  const config = loadGatewayConfig({ file, env: { JWT_AUDIENCE: '["sluice"]', JWT_ISSUERS: JSON.stringify(issuers) } })
  t.same(config.auth.jwt.issuers, issuers)
  t.same(config.auth.jwt.audience, ['sluice'], 'a JSON list of strings too')

  const bad = problemsOf(() => loadGatewayConfig({ file, env: { JWT_AUDIENCE: 'sluice', JWT_ISSUERS: JSON.stringify([{ issuer: 'https://x.example', algorithms: ['HS384'], secret: 'short' }]) } }))
  t.same(bad.problems.map(p => `${p.path}: ${p.message} (${p.source})`), [
    `/auth/jwt/issuers/0/secret: must NOT have fewer than 32 characters (${file}:6, env JWT_ISSUERS)`
  ], 'a schema problem inside the list names the variable')

  const nested = problemsOf(() => loadGatewayConfig({ file, env: { JWT_AUDIENCE: 'sluice', JWT_ISSUERS: JSON.stringify([{ issuer: 'https://x.example', algorithms: ['HS256'], secret: ref('JWT_SECRET_FROM_THE_VAULT_OF_SECRETS') }]), JWT_SECRET_FROM_THE_VAULT_OF_SECRETS: JWT_SECRET } }))
  t.match(nested.problems, [{ path: '/auth/jwt/issuers/0/secret', message: /^holds an unresolved reference to JWT_SECRET_FROM_THE_VAULT_OF_SECRETS/ }])

  const broken = problemsOf(() => loadGatewayConfig({ file, env: { JWT_AUDIENCE: 'sluice', JWT_ISSUERS: `[{"issuer":"i","secret":"${JWT_SECRET}"` } }))
  t.same(broken.problems.map(p => `${p.path}: ${p.message}`), ['/auth/jwt/issuers: environment variable JWT_ISSUERS starts with "[" but is not a JSON array'])
  t.notMatch(broken.message, JWT_SECRET)
})

test('a reference where the gateway reads none is refused, not taken as text', async t => {
  const err = problemsOf(() => loadGatewayConfig({ base: { kafka: { brokers: ['127.0.0.1:9092'] }, policy: { dir: ref('POLICY_DIR') } }, env: { POLICY_DIR: '/etc/sluice' } }))
  t.match(err.problems, [{ path: '/policy/dir', message: /^holds a \$\{env:NAME\} reference, which is resolved only in \/redis\/url, / }])
})
