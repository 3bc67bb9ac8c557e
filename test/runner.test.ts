// npm test's runner (test/runner.ts) on small tap files of its own: what CI counts as
// passed and failed must follow each file's points and how its process ended.
import { test } from 'tap'
import { join, relative } from 'node:path'
import { outcomes, root, runSuites } from './runner.ts'

const passing = "import t from 'tap'\nt.test('passes', async t => { t.pass('ok') })\n"

test('points, a crash after the last point and a hang count as npm test counts them; the longest starts first', async t => {
  const dir = t.testdir({
    'pass.test.ts': passing,
    'fail.test.ts': "import t from 'tap'\nt.test('fails', async t => { t.equal(1, 2) })\nt.test('passes', async t => { t.pass('ok') })\n",
    'crash.test.ts': passing + 'setTimeout(() => process.exit(3), 100)\n',
    'hang.test.ts': passing + 'setInterval(() => {}, 1000)\n',
    'none.test.ts': 'process.exit(0)\n'
  })
  const file = (name: string) => relative(root, join(dir, name))
  const files = ['pass', 'fail', 'crash', 'hang', 'none'].map(n => file(`${n}.test.ts`))
  let written = ''
  const runs = await runSuites(files, {
    env: { ...process.env, TAP_TIMEOUT: '60' },
    jobs: 1,
    write: text => { written += text },
    // one job: the order they start in is the order of the times, the longest first
    times: { [file('none.test.ts')]: 5, [file('hang.test.ts')]: 4, [file('crash.test.ts')]: 3, [file('fail.test.ts')]: 2, [file('pass.test.ts')]: 1 },
    killAfterMs: 3_000
  })
  t.same(runs.map(r => r.file), [...files].reverse(), 'started longest first')
  const all = outcomes(runs)
  // a point's name goes on with its time (`passes # time=12ms`)
  const byName = { get: (name: string) => all.find(o => o.name === name || o.name.startsWith(`${name} # `))?.ok }
  t.equal(byName.get(`${file('pass.test.ts')} > passes`), true, 'a passing point passes')
  t.equal(byName.get(`${file('fail.test.ts')} > fails`), false, 'a failing point fails')
  t.equal(byName.get(`${file('fail.test.ts')} > passes`), true, 'its passing point still passes')
  t.equal(byName.get(`${file('crash.test.ts')} (exit 3)`), false, 'a crash after the last point fails')
  t.equal(byName.get(`${file('hang.test.ts')} (killed: past its time)`), false, 'a file that does not end is killed and fails')
  t.equal(byName.get(`${file('none.test.ts')} (no test points)`), false, 'a file with no points fails')
  t.equal(all.filter(o => !o.ok).length, 4, 'four failures: fail, crash, hang, none')
  t.match(written, /^TAP version 14\n1\.\.5\n/, 'the TAP header')
  t.match(written, new RegExp(`\\nnot ok \\d - ${file('crash.test.ts').replace(/[.]/g, '\\.')} # time=`), 'the crash is a failed point in the runner\'s own TAP')
})
