// `policy check <dir>` as CI runs it: a process, its exit code, its output.
import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..', '..', '..')
const cli = join(root, 'plugins', 'policy', 'src', 'cli.ts')

function run (...args: string[]) {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } })
  return { code: result.status, out: result.stdout, err: result.stderr }
}

test('the shipped example is valid', async t => {
  const { code, out } = run('check', 'policies/')
  t.equal(code, 0)
  t.match(out, /policies\/ is valid: 1 product, 2 plans, 2 rules in 1 file/)
})

test('an invalid directory: exit 1 and every problem, one a line', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'))
  writeFileSync(join(dir, 'a.yaml'), 'version: 1\nplans:\n  free:\n    limits: { connections: -1 }\nrules:\n  - name: r\n    product: nope\n    plan: free\n')
  writeFileSync(join(dir, 'b.yml'), 'products: [\n')
  writeFileSync(join(dir, '.hidden.yaml'), 'not: [even, yaml')
  const { code, err } = run('check', dir)
  t.equal(code, 1)
  t.match(err, `- /plans/free/limits/connections: must be >= 0 (${join(dir, 'a.yaml')}:4)`)
  t.match(err, `- /plans/free/limits/dailyQuota: is required (${join(dir, 'a.yaml')}:4)`)
  t.match(err, `- /rules/0/product: unknown product "nope" (${join(dir, 'a.yaml')}:7)`)
  t.match(err, '- /rules/0: grants nothing')
  t.match(err, `(${join(dir, 'b.yml')}:`, 'a YAML syntax error in the other file')
  t.notMatch(err, '.hidden.yaml', 'dot files are not policy (editors\' and ConfigMaps\' temporaries)')
})

test('usage', async t => {
  t.equal(run().code, 2)
  t.equal(run('verify', 'policies/').code, 2)
  t.equal(run('check', join(tmpdir(), 'no-such-dir-for-sluice')).code, 1)
})
