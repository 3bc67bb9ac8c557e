// `npm test`: lint and typecheck, then every tap suite against a real Kafka
// broker and a real Redis started once for the whole run, then stops them.
// Ends with the line CI reads: `N passed, N failed`.
//
//   npm test                      everything
//   npm test -- path/a.test.ts    only those files (the checks still run)
//
// Each suite is a tap file run as a plain `node <file>` process: tap's own
// runner starts every file with its mock loader, source maps and process-info
// hooks, which cost ~0.6 s of CPU per file (221 files), and it runs files in
// alphabetical order, so a long suite can start last. This runner starts the
// longest suites first (test/suite-times.json), SLUICE_TEST_JOBS (3) at a time,
// and gives them Node's compile cache; `npx tap <file>` still runs one by hand.
import { spawn } from 'node:child_process'
import { globSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KafkaBroker, RedisServer } from '@sluice/stack'
import { FILE_TIMEOUT_S, outcomes, root, runSuites, type Outcome, type SuiteRun } from './runner.ts'

const TEST_GLOBS = ['apps/*/test/**/*.test.ts', 'plugins/*/test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
// Three suites at a time on two cores: most of a suite's time is spent waiting
// on Kafka, Redis and timers (2 at a time kept the cores 70 % busy, 3 kept them
// 87 % busy and took 20 % less time for test/stream and test/mqtt).
const JOBS = Number(process.env.SLUICE_TEST_JOBS ?? 3)

function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise(resolve => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: 'inherit' })
    child.on('exit', code => resolve(code ?? 1))
  })
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
  const [lint, typecheck] = await Promise.all([
    run(node, ['node_modules/eslint/bin/eslint.js', '.']),
    run(node, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'])
  ])
  const results: Outcome[] = [{ name: 'lint (neostandard)', ok: lint === 0 }, { name: 'typecheck (tsc)', ok: typecheck === 0 }]
  let runs: SuiteRun[] = []
  try {
    await stack
    process.stderr.write(`[test] Kafka ${kafka.brokers.join(',')} and Redis ${redis.url} ready after ${Date.now() - started} ms\n`)
    rmSync(join(root, '.tap', 'test-results'), { recursive: true, force: true })
    const env = {
      ...process.env,
      KAFKA_BROKERS: kafka.brokers.join(','),
      REDIS_URL: redis.url,
      TAP_TIMEOUT: String(FILE_TIMEOUT_S),
      // every suite is a process that compiles much of the same code (the gateway, fastify, the Kafka clients)
      NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(root, '.cache', 'node-compile-cache')
    }
    runs = await runSuites(files, { env, jobs: JOBS, write: text => process.stdout.write(text) })
  } finally {
    await Promise.allSettled([kafka.destroy(), redis.stop()])
  }
  results.push(...outcomes(runs))
  if (only.length === 0) {
    // the next run starts the longest suites first; commit test/suite-times.json after a full run to keep CI's order
    writeFileSync(join(root, '.tap', 'suite-times.json'), JSON.stringify(Object.fromEntries(runs.map(r => [r.file, Math.round(r.ms / 100) / 10]).sort()), null, 2) + '\n')
  }
  const failed = results.filter(r => !r.ok)
  const skipped = results.filter(r => r.ok && r.skipped)
  const passed = results.length - failed.length - skipped.length
  for (const f of failed) process.stdout.write(`FAILED: ${f.name}\n`)
  process.stderr.write(`[test] took ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  const failedCount = failed.length
  process.stdout.write(`${passed} passed, ${failedCount} failed${skipped.length ? `, ${skipped.length} skipped` : ''}\n`)
  return failedCount === 0 ? 0 : 1
}

main().then(code => process.exit(code), err => {
  process.stderr.write(`[test] ${(err as Error).stack ?? String(err)}\n`)
  process.stdout.write('0 passed, 1 failed\n')
  process.exit(1)
})
