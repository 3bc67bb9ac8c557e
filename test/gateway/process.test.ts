// The gateway as a process: bad config exits naming every problem; SIGTERM
// closes cleanly within the deadline.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '@sluice/stack'
import { eventually, kafkaBrokers } from '../helpers.ts'

const entry = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')

function runGateway (args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [entry, ...args], { env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += chunk })
  child.stderr.on('data', chunk => { stderr += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, exited, out: () => stdout, err: () => stderr }
}

test('bad config exits with every problem and its path', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gw-'))
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, [
    'server:',
    '  port: "not a port"',
    '  tls: true',
    'kafka:',
    '  clientId: x',
    ''
  ].join('\n'))
  const gw = runGateway(['--config', file], { SLUICE_LOG_LEVEL: 'loud' })
  const code = await gw.exited
  t.equal(code, 78, 'exits with EX_CONFIG')
  const stderr = gw.err()
  t.match(stderr, `- /server/port: must be integer (${file}:2)`, 'wrong type, with file and line')
  t.match(stderr, `- /server/tls: unknown key (${file}:3)`, 'unknown key')
  t.match(stderr, `- /kafka/brokers: is required (${file}:4)`, 'missing required value')
  t.match(stderr, '- /log/level: must be one of', 'a bad env value')
  t.match(stderr, '(env SLUICE_LOG_LEVEL)', 'named by its variable')
})

test('SIGTERM closes the gateway within its deadline', async t => {
  const port = await freePort()
  const gw = runGateway([], { KAFKA_BROKERS: kafkaBrokers().join(','), SLUICE_PORT: String(port), SLUICE_HOST: '127.0.0.1', SLUICE_SHUTDOWN_TIMEOUT_MS: '5000', SLUICE_DRAIN_MS: '2000' })
  t.teardown(() => { gw.child.kill('SIGKILL') })
  await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
    return res?.status === 200
  }, 20_000, 'the gateway answers /healthz')
  const started = Date.now()
  gw.child.kill('SIGTERM')
  const code = await gw.exited
  t.equal(code, 0, 'a clean exit')
  t.ok(Date.now() - started < 5000, 'within the configured deadline')
  t.match(gw.out(), '"signal":"SIGTERM"', 'the shutdown is logged')
})
