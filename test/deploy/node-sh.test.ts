// deploy/local/node.sh --jemalloc, as `npm start` runs the gateway: the Node it starts has jemalloc
// mapped and node.sh's settings, unless the caller asks for glibc's malloc or sets its own.
import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const nodeSh = join(import.meta.dirname, '..', '..', 'deploy', 'local', 'node.sh')
const PROBE = "console.log(JSON.stringify({ jemalloc: require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes('libjemalloc.so.2'), conf: process.env.MALLOC_CONF ?? null }))"

function run (args: string[], env: Record<string, string> = {}): { jemalloc: boolean, conf: string | null, stderr: string } {
  // the environment of this process less what would decide the outcome
  const { LD_PRELOAD: _preload, MALLOC_CONF: _conf, SLUICE_MALLOC: _malloc, ...rest } = process.env
  const result = spawnSync('bash', [nodeSh, ...args, '-e', PROBE], { env: { ...rest, ...env }, encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`node.sh exited ${result.status}: ${result.stderr}`)
  return { ...JSON.parse(result.stdout), stderr: result.stderr }
}

test('node.sh --jemalloc: Node on jemalloc, with node.sh\'s settings', async t => {
  const on = run(['--jemalloc'])
  t.ok(on.jemalloc, 'libjemalloc.so.2 is mapped in the Node it starts (Debian\'s libjemalloc2 is installed here)')
  t.equal(on.conf, 'background_thread:true,dirty_decay_ms:1000', 'MALLOC_CONF: a background thread returns freed pages within about a second')
  t.equal(on.stderr, '', 'and nothing to say')

  const plain = run([])
  t.notOk(plain.jemalloc, 'without the option: glibc\'s malloc (tests and tools)')
  t.equal(plain.conf, null, 'and no MALLOC_CONF')

  const glibc = run(['--jemalloc'], { SLUICE_MALLOC: 'glibc' })
  t.notOk(glibc.jemalloc, 'SLUICE_MALLOC=glibc: glibc\'s malloc')

  const own = run(['--jemalloc'], { MALLOC_CONF: 'dirty_decay_ms:5000' })
  t.ok(own.jemalloc, 'a MALLOC_CONF of the caller\'s: still jemalloc')
  t.equal(own.conf, 'dirty_decay_ms:5000', 'with the caller\'s settings')
})
