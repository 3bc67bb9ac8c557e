// The gateway as a process refuses to start when policy.dir does not exist:
// it exits 1 naming the directory (as given and resolved) and the setting, and
// never answers on its port. Before, it booted, logged "invalid policy" and
// refused every client while /healthz said it was alive.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '@sluice/stack'
import { kafkaBrokers } from '../helpers.ts'

const entry = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')
// far more than a refusal takes (about 1 s here); a gateway that boots instead is killed and fails the test
const DEADLINE_MS = 20_000

test('a gateway whose policy directory does not exist exits 1 naming it', async t => {
  const cwd = mkdtempSync(join(tmpdir(), 'sluice-gw-policy-'))
  const port = await freePort()
  const child = spawn(process.execPath, [entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', KAFKA_BROKERS: kafkaBrokers().join(','), SLUICE_PORT: String(port), SLUICE_HOST: '127.0.0.1', SLUICE_POLICY_DIR: 'policies-typo' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', chunk => { stderr += chunk })
  child.stdout.resume()
  const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS)
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
  clearTimeout(timer)
  t.equal(code, 1, 'exits 1, by itself')
  t.match(stderr, `No policy directory at "policies-typo" (${join(cwd, 'policies-typo')}): it does not exist`, 'names the path as given and resolved')
  t.match(stderr, 'SLUICE_POLICY_DIR', 'and the variable that sets it')
  const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
  t.equal(res, undefined, 'nothing listens on its port')
})
