// run-queue.ts: what the /healthz probe subtracts from a slow answer is the time
// Linux says the gateway waited for a CPU, not the time it ran. Two busy
// processes pinned to one CPU (taskset), one of them at the lowest priority
// (nice 19): the low one waits while the other runs, far longer than it runs
// itself; a sleeping process on the same CPU waits for nothing meanwhile.
import { test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { queuedMs, slowOnlyByQueue } from './run-queue.ts'

// each child spins until it has used this much CPU, then says so and waits to be read and killed
const HIGH_MS = 300
const LOW_MS = 30
const spin = (ms: number) => `const t = process.cpuUsage(); while ((process.cpuUsage(t).user + process.cpuUsage(t).system) / 1000 < ${ms}); process.stdout.write('done\\n'); setTimeout(() => {}, 60000)`

async function pinned (code: string, nice = 0): Promise<ChildProcess> {
  // taskset and nice exec node: the pid is node's
  const child = spawn('nice', ['-n', String(nice), 'taskset', '-c', '0', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  await once(child, 'spawn')
  return child
}

async function done (child: ChildProcess): Promise<void> {
  let out = ''
  for await (const chunk of child.stdout!) {
    out += String(chunk)
    if (out.includes('done')) return
  }
  throw new Error(`child exited before it was done (${child.exitCode ?? child.signalCode})`)
}

test('queuedMs: a process waits on the run queue while another runs on its CPU, and a sleeping one does not', async t => {
  const children: ChildProcess[] = []
  t.teardown(() => { for (const c of children) c.kill('SIGKILL') })
  const idle = await pinned(spin(0))
  children.push(idle)
  await done(idle)
  const idleBefore = queuedMs(idle.pid!)
  t.type(idleBefore, 'number', 'Linux reports a run-queue time')
  const high = await pinned(spin(HIGH_MS))
  const low = await pinned(spin(LOW_MS), 19)
  children.push(high, low)
  await Promise.all([done(high), done(low)])
  const lowWait = queuedMs(low.pid!)
  t.ok(lowWait !== undefined && lowWait >= HIGH_MS * 2 / 3, `the nice-19 process, ${LOW_MS} ms of CPU of its own, waited ${lowWait?.toFixed(1)} ms while the other ran ${HIGH_MS} ms (at least ${HIGH_MS * 2 / 3})`)
  const idleWait = (queuedMs(idle.pid!) ?? NaN) - idleBefore!
  t.ok(idleWait < 20, `the sleeping one waited ${idleWait.toFixed(1)} ms meanwhile (under 20)`)
})

test('queuedMs: no such process, or not a pid', async t => {
  t.equal(queuedMs(0), undefined)
  t.equal(queuedMs(Number.NaN), undefined)
  t.equal(queuedMs(2 ** 22 + 12345), undefined, 'a pid past pid_max')
  t.type(queuedMs(process.pid), 'number', 'this process')
})

test('slowOnlyByQueue: the answer less the wait, against the bound', async t => {
  t.equal(slowOnlyByQueue(238, 60, 200), true, '238 ms with 60 ms queued: 178 ms of its own')
  t.equal(slowOnlyByQueue(238, 20, 200), false, '238 ms with 20 ms queued: still 218 ms of its own')
  t.equal(slowOnlyByQueue(150, 100, 200), false, 'within the bound: not slow at all')
  t.equal(slowOnlyByQueue(238, 0, 200), false, 'no wait: slow of its own')
  t.equal(slowOnlyByQueue(200, 0, 200), false, 'the bound itself is within it')
})
