// The policy plugin refuses to start on a policy directory that is not there:
// a mistyped policy.dir would otherwise boot a gateway that refuses every
// client. A symlink to a directory (a ConfigMap mount) is a directory.
import { test } from 'tap'
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import health from '@sluice/health'
import sessions from '@sluice/sessions'
import policy, { checkPolicyDir } from '../src/index.ts'

const POLICY = `
version: 1
plans:
  free:
    limits: { connections: 5, connectsPerMinute: 60, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 }
products:
  market:
    plans: [free]
    topics:
      - pattern: prices.*
        encoding: json
rules:
  - name: everyone
    product: market
    plan: free
    subscribe: ['prices.*']
`

async function boot (dir: string): Promise<{ code?: string, message?: string }> {
  const app = Fastify({ logger: false })
  try {
    await app.register(health)
    await app.register(sessions)
    await app.register(policy, { dir, watch: false })
    await app.ready()
    return {}
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message }
  } finally {
    await app.close()
  }
}

async function codeOf (promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

test('a policy directory that does not exist stops the plugin from starting, naming the path', async t => {
  const missing = join(mkdtempSync(join(tmpdir(), 'sluice-policy-dir-')), 'policies-typo')
  const refused = await boot(missing)
  t.equal(refused.code, 'SLUICE_POLICY_DIR_MISSING')
  t.match(refused.message, missing, 'the message names the path')
  t.match(refused.message, 'SLUICE_POLICY_DIR', 'and how to set it')

  const relative = await codeOf(checkPolicyDir('no-such-policies-for-sluice'))
  t.equal(relative, 'SLUICE_POLICY_DIR_MISSING', 'a relative path')
  const err = await checkPolicyDir('no-such-policies-for-sluice').catch((e: Error) => e)
  t.match((err as Error).message, join(process.cwd(), 'no-such-policies-for-sluice'), 'a relative path is also shown resolved')
})

test('a file where the directory should be is refused too', async t => {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-policy-dir-')), 'policy.yaml')
  writeFileSync(file, POLICY)
  const refused = await boot(file)
  t.equal(refused.code, 'SLUICE_POLICY_DIR_MISSING')
  t.match(refused.message, 'not a directory')
})

test('a directory, or a symlink to one, starts; an empty one starts with no policy in force', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-policy-dir-'))
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const link = join(mkdtempSync(join(tmpdir(), 'sluice-policy-link-')), 'policies')
  symlinkSync(dir, link)
  t.same(await boot(dir), {}, 'the directory')
  t.same(await boot(link), {}, 'a symlink to it')
  // exists but holds nothing yet (a ConfigMap being written): served as "no valid policy", /readyz says so
  t.same(await boot(mkdtempSync(join(tmpdir(), 'sluice-policy-empty-'))), {}, 'an empty directory')
})
