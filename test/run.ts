// `npm test`: lint and typecheck, then every tap suite against a real Kafka
// broker and a real Redis started once for the whole run, then stops them.
// Ends with the line CI reads: `N passed, N failed`.
//
//   npm test                      everything
//   npm test -- path/a.test.ts    only those files (the checks still run)
import { spawn } from 'node:child_process'
import { existsSync, globSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KafkaBroker, RedisServer } from '@sluice/stack'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TEST_GLOBS = ['apps/*/test/**/*.test.ts', 'plugins/*/test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
// A suite that holds a whole broker restart plus its own assertions stays well
// under this; anything slower is stuck, and tap kills it and reports it failed.
const FILE_TIMEOUT_S = 180

interface Outcome { name: string, ok: boolean, skipped?: boolean }

function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise(resolve => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: 'inherit' })
    child.on('exit', code => resolve(code ?? 1))
  })
}

/** Top-level test points of each file's TAP output (tap keeps them in .tap/test-results). */
function outcomes (files: string[]): Outcome[] {
  const out: Outcome[] = []
  for (const file of files) {
    const results = join(root, '.tap', 'test-results', file + '.tap')
    if (!existsSync(results)) {
      out.push({ name: file, ok: false })
      continue
    }
    let points = 0
    for (const line of readFileSync(results, 'utf8').split('\n')) {
      const m = /^(not ok|ok) \d+ - (.*)$/.exec(line)
      if (!m) continue
      points++
      out.push({ name: `${file} > ${m[2]}`, ok: m[1] === 'ok', skipped: /# (SKIP|TODO)/i.test(m[2]!) })
    }
    if (points === 0) out.push({ name: `${file} (no test points)`, ok: false })
  }
  return out
}

async function main (): Promise<number> {
  const started = Date.now()
  const only = process.argv.slice(2)
  const files = only.length > 0 ? only : TEST_GLOBS.flatMap(g => globSync(g, { cwd: root })).sort()
  const node = process.execPath

  const kafka = new KafkaBroker()
  const redis = new RedisServer()
  // interrupted (Ctrl-C, a CI timeout): stop what was started, then go
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      Promise.allSettled([kafka.destroy(), redis.stop()]).finally(() => process.exit(130))
    })
  }
  const stack = Promise.all([kafka.start(), redis.start()])
  // checks run while the broker starts (it takes a few seconds)
  const lint = await run(node, ['node_modules/eslint/bin/eslint.js', '.'])
  const typecheck = await run(node, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'])
  const results: Outcome[] = [{ name: 'lint (neostandard)', ok: lint === 0 }, { name: 'typecheck (tsc)', ok: typecheck === 0 }]
  let tapCode = 1
  try {
    await stack
    process.stderr.write(`[test] Kafka ${kafka.brokers.join(',')} and Redis ${redis.url} ready after ${Date.now() - started} ms\n`)
    rmSync(join(root, '.tap', 'test-results'), { recursive: true, force: true })
    tapCode = await run(node, [
      'node_modules/tap/dist/esm/run.mjs',
      '--disable-coverage', '--allow-empty-coverage',
      '--plugin=!@tapjs/typescript',
      `--timeout=${FILE_TIMEOUT_S}`,
      // two suites at a time: the machine has two cores and the broker needs one
      '--jobs=2',
      ...files
    ], {
      ...process.env,
      KAFKA_BROKERS: kafka.brokers.join(','),
      REDIS_URL: redis.url
    })
  } finally {
    await Promise.allSettled([kafka.destroy(), redis.stop()])
  }
  results.push(...outcomes(files))
  const failed = results.filter(r => !r.ok)
  const skipped = results.filter(r => r.ok && r.skipped)
  const passed = results.length - failed.length - skipped.length
  for (const f of failed) process.stdout.write(`FAILED: ${f.name}\n`)
  process.stderr.write(`[test] took ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  const failedCount = failed.length === 0 && tapCode !== 0 ? 1 : failed.length
  process.stdout.write(`${passed} passed, ${failedCount} failed${skipped.length ? `, ${skipped.length} skipped` : ''}\n`)
  return failedCount === 0 ? 0 : 1
}

main().then(code => process.exit(code), err => {
  process.stderr.write(`[test] ${(err as Error).stack ?? String(err)}\n`)
  process.stdout.write('0 passed, 1 failed\n')
  process.exit(1)
})
