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
import { existsSync, globSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KafkaBroker, RedisServer } from '@sluice/stack'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TEST_GLOBS = ['apps/*/test/**/*.test.ts', 'plugins/*/test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
// A suite that holds a whole broker restart plus its own assertions stays well
// under this; anything slower is stuck: tap ends the file with a failed point,
// and KILL_AFTER_S later the runner kills what is left and reports it failed.
const FILE_TIMEOUT_S = 180
const KILL_AFTER_S = 20
// Three suites at a time on two cores: most of a suite's time is spent waiting
// on Kafka, Redis and timers (2 at a time kept the cores 70 % busy, 3 kept them
// 87 % busy and took 20 % less time for test/stream and test/mqtt).
const JOBS = Number(process.env.SLUICE_TEST_JOBS ?? 3)
// seconds per suite from an earlier run; suites not listed count as this
const TIMES_FILE = join(root, 'test', 'suite-times.json')
const UNKNOWN_TIME_S = 10

interface Outcome { name: string, ok: boolean, skipped?: boolean }
interface SuiteRun { file: string, ms: number, code: number | null, signal: string | null, killed: boolean }

function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise(resolve => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: 'inherit' })
    child.on('exit', code => resolve(code ?? 1))
  })
}

const resultsFile = (file: string): string => join(root, '.tap', 'test-results', file + '.tap')

/** Top-level test points of each file's TAP output (kept in .tap/test-results), and how each process ended. */
function outcomes (runs: SuiteRun[]): Outcome[] {
  const out: Outcome[] = []
  for (const { file, code, signal, killed } of runs) {
    const results = resultsFile(file)
    if (!existsSync(results)) {
      out.push({ name: file, ok: false })
      continue
    }
    let points = 0
    let failed = 0
    for (const line of readFileSync(results, 'utf8').split('\n')) {
      const m = /^(not ok|ok) \d+ - (.*)$/.exec(line)
      if (!m) continue
      points++
      if (m[1] !== 'ok') failed++
      out.push({ name: `${file} > ${m[2]}`, ok: m[1] === 'ok', skipped: /# (SKIP|TODO)/i.test(m[2]!) })
    }
    if (points === 0) out.push({ name: `${file} (no test points)`, ok: false })
    // a process that crashed or hung after its last point fails even when every point passed
    else if (failed === 0 && code !== 0) {
      out.push({ name: `${file} (${killed ? `killed after ${FILE_TIMEOUT_S + KILL_AFTER_S} s` : `exit ${code ?? signal}`})`, ok: false })
    }
  }
  return out
}

function knownTimes (): Record<string, number> {
  try {
    return JSON.parse(readFileSync(TIMES_FILE, 'utf8')) as Record<string, number>
  } catch {
    return {}
  }
}

/** One suite as `node <file>`; its TAP output goes to .tap/test-results and, once it ends, to stdout in one piece. */
function runSuite (file: string, index: number, env: NodeJS.ProcessEnv): Promise<SuiteRun> {
  const started = Date.now()
  return new Promise(resolve => {
    const child = spawn(process.execPath, [file], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
    const chunks: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    let killed = false
    const kill = setTimeout(() => {
      killed = true
      child.kill('SIGKILL')
    }, (FILE_TIMEOUT_S + KILL_AFTER_S) * 1000)
    child.on('close', (code, signal) => {
      clearTimeout(kill)
      const ms = Date.now() - started
      const tap = Buffer.concat(chunks).toString('utf8')
      mkdirSync(dirname(resultsFile(file)), { recursive: true })
      writeFileSync(resultsFile(file), tap)
      const ok = code === 0 && !killed
      const body = tap.split('\n').map(line => line === '' ? line : '    ' + line).join('\n')
      process.stdout.write(`# Subtest: ${file}\n${body}\n${ok ? 'ok' : 'not ok'} ${index} - ${file} # time=${ms}ms\n`)
      resolve({ file, ms, code, signal, killed })
    })
  })
}

/** Every suite, the longest first, `jobs` at a time. */
async function runSuites (files: string[], env: NodeJS.ProcessEnv, jobs: number): Promise<SuiteRun[]> {
  const times = knownTimes()
  const queue = [...files].sort((a, b) => (times[b] ?? UNKNOWN_TIME_S) - (times[a] ?? UNKNOWN_TIME_S))
  const runs: SuiteRun[] = []
  let done = 0
  process.stdout.write(`TAP version 14\n1..${files.length}\n`)
  await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      runs.push(await runSuite(file, ++done, env))
    }
  }))
  return runs
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
    runs = await runSuites(files, {
      ...process.env,
      KAFKA_BROKERS: kafka.brokers.join(','),
      REDIS_URL: redis.url,
      TAP_TIMEOUT: String(FILE_TIMEOUT_S),
      // every suite is a process that compiles much of the same code (the gateway, fastify, the Kafka clients)
      NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(root, '.cache', 'node-compile-cache')
    }, JOBS)
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
