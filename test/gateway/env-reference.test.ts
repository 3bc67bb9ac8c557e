// The gateway as a process refuses to start on an unresolved ${env:NAME}: it
// exits 78 naming each one, before it reaches Kafka, rather than serving with
// the reference's text as its admin token or HMAC key.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const entry = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')
// "${env:NAME}" written without a template-literal lookalike in the source
const ref = (name: string) => '$' + '{env:' + name + '}'

test('the gateway exits 78 on an unset variable and on a reference left in a secret', async t => {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-gw-')), 'gateway.yaml')
  writeFileSync(file, [
    'kafka:',
    '  brokers: [127.0.0.1:9]',
    'admin:',
    `  token: ${ref('ADMIN_TOKEN')}`,
    'auth:',
    '  jwt:',
    '    audience: [sluice]',
    '    issuers:',
    '      - issuer: https://auth.example',
    '        algorithms: [HS256]',
    `        secret: ${ref('JWT_SECRET')}`,
    ''
  ].join('\n'))
  const child = spawn(process.execPath, [entry, '--config', file], {
    env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', JWT_SECRET: ref('JWT_SECRET_FROM_THE_VAULT_OF_SECRETS') },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', chunk => { stderr += chunk })
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
  t.equal(code, 78, 'exits with EX_CONFIG')
  t.match(stderr, `- /admin/token: environment variable ADMIN_TOKEN is not set (${file}:4)`)
  t.match(stderr, `- /auth/jwt/issuers/0/secret: holds an unresolved reference to JWT_SECRET_FROM_THE_VAULT_OF_SECRETS: ${ref('NAME')} is resolved once, in the config file, and never in a value from the environment (${file}:11, env JWT_SECRET)`)
})
