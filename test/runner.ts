// npm test's suite runner (test/run.ts): each suite a plain `node <file>` process, the
// longest first, a few at a time, and each file's outcome from its top-level TAP points
// and how its process ended. Apart from run.ts so that test/runner.test.ts can run it.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'

export const root = resolve(import.meta.dirname, '..')
// A suite that holds a whole broker restart plus its own assertions stays well
// under this; anything slower is stuck: tap ends the file with a failed point,
// and KILL_AFTER_S later the runner kills what is left and reports it failed.
export const FILE_TIMEOUT_S = 180
const KILL_AFTER_S = 20
// seconds per suite from an earlier run; suites not listed count as this
const TIMES_FILE = join(root, 'test', 'suite-times.json')
const UNKNOWN_TIME_S = 10

export interface Outcome { name: string, ok: boolean, skipped?: boolean }
export interface SuiteRun { file: string, ms: number, code: number | null, signal: string | null, killed: boolean, tap: string }
export interface RunOptions {
  env: NodeJS.ProcessEnv
  jobs: number
  /** where each file's TAP goes once it ends (npm test: stdout) */
  write: (text: string) => void
  /** seconds per suite; the longest start first */
  times?: Record<string, number>
  /** kill a suite's process after this long */
  killAfterMs?: number
}

const resultsFile = (file: string): string => join(root, '.tap', 'test-results', file + '.tap')

/** Top-level test points of each file's TAP output (kept in .tap/test-results), and how each process ended. */
export function outcomes (runs: SuiteRun[]): Outcome[] {
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
    else if (failed === 0 && (code !== 0 || killed)) {
      out.push({ name: `${file} (${killed ? 'killed: past its time' : `exit ${code ?? signal}`})`, ok: false })
    }
  }
  return out
}

export function knownTimes (): Record<string, number> {
  try {
    return JSON.parse(readFileSync(TIMES_FILE, 'utf8')) as Record<string, number>
  } catch {
    return {}
  }
}

/** One suite as `node <file>`; its TAP output goes to .tap/test-results. */
function runSuite (file: string, env: NodeJS.ProcessEnv, killAfterMs: number): Promise<SuiteRun> {
  const started = Date.now()
  return new Promise(resolve => {
    const child = spawn(process.execPath, [file], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
    const chunks: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    let killed = false
    const kill = setTimeout(() => {
      killed = true
      child.kill('SIGKILL')
    }, killAfterMs)
    child.on('close', (code, signal) => {
      clearTimeout(kill)
      const tap = Buffer.concat(chunks).toString('utf8')
      mkdirSync(dirname(resultsFile(file)), { recursive: true })
      writeFileSync(resultsFile(file), tap)
      resolve({ file, ms: Date.now() - started, code, signal, killed, tap })
    })
  })
}

/** Every suite, the longest first, `jobs` at a time; each file's TAP is written, indented, in one piece when it ends. */
export async function runSuites (files: string[], options: RunOptions): Promise<SuiteRun[]> {
  const times = options.times ?? knownTimes()
  const killAfterMs = options.killAfterMs ?? (FILE_TIMEOUT_S + KILL_AFTER_S) * 1000
  const queue = [...files].sort((a, b) => (times[b] ?? UNKNOWN_TIME_S) - (times[a] ?? UNKNOWN_TIME_S))
  const runs: SuiteRun[] = []
  options.write(`TAP version 14\n1..${files.length}\n`)
  await Promise.all(Array.from({ length: Math.min(options.jobs, queue.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const r = await runSuite(file, options.env, killAfterMs)
      runs.push(r)
      const ok = r.code === 0 && !r.killed
      const body = r.tap.split('\n').map(line => line === '' ? line : '    ' + line).join('\n')
      options.write(`# Subtest: ${file}\n${body}\n${ok ? 'ok' : 'not ok'} ${runs.length} - ${file} # time=${r.ms}ms\n`)
    }
  }))
  return runs
}
