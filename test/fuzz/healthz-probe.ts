// A process of its own (forked by gateway.ts, not a test file) that asks the
// gateway's /healthz every 100 ms for as long as a fuzz suite runs, and on the
// message `report` answers with what it saw: the slowest answer, how many
// took over 200 ms, and how many failed. In the suite's own process a 1 MiB
// frame being generated would delay the probe and be blamed on the gateway.
//
// A slow answer while this (idle) process itself could not run for 100 ms is
// the machine's, not the gateway's: on 2 cores at a load average of 13 (other
// work on the machine) /healthz took 413-476 ms during runs of a few bytes.
// Those are counted apart (`starved`) and do not count against the bound.
//
// So is a slow answer while the gateway's main thread itself waited for a CPU:
// runnable, not running, because the machine's two cores ran other work (the
// suite runs two test files at a time, one of them may be Chromium). Linux
// counts each thread's time on a run queue (/proc/<pid>/task/<tid>/schedstat,
// its second field). An answer that would have been within the bound without
// that wait is counted apart (`queued`). A clean-clone CI run had one probe of
// 86 at 238 ms while the probe's own process was not starved; the same file
// alone on the same machine answered within 7-11 ms in four runs.
import { Agent, get } from 'node:http'
import { queuedMs, slowOnlyByQueue } from './run-queue.ts'

const url = process.argv[2]!
// the gateway's pid (its main thread's id): the parent sends the new one after a restart
let gatewayPid = Number(process.argv[3] ?? NaN)
process.on('message', m => {
  if (typeof m === 'object' && m !== null && 'pid' in m) gatewayPid = Number((m as { pid: unknown }).pid)
})

const EVERY_MS = 100
// the invariant's bound
const SLOW_MS = 200
// an answer later than this is a failure (and the probe does not pile up requests behind it)
const GIVE_UP_MS = 2000

const agent = new Agent({ keepAlive: true, maxSockets: 1 })
let samples = 0
let maxMs = 0
let over = 0
let failures = 0
let down = 0
const worst: Array<{ at: string, ms: number }> = []
let busy = false
let starved = 0
let queued = 0
// this process's own timer: when it fires 100 ms late, nothing on the machine got the CPU it asked for
const TICK_MS = 10
const STARVED_MS = 100
let lastTick = performance.now()
let starvedAt = -Infinity
setInterval(() => {
  const now = performance.now()
  if (now - lastTick - TICK_MS > STARVED_MS) starvedAt = now
  lastTick = now
}, TICK_MS)
// after the gateway was down (a crash, then its restart), a new process answers its first requests cold
const WARMING_MS = 3000
let downUntil = 0

function probe (): void {
  if (busy) return
  busy = true
  const started = performance.now()
  const pid = gatewayPid
  const queuedBefore = queuedMs(pid)
  const done = (ok: boolean, refused = false) => {
    busy = false
    const ms = performance.now() - started
    const queuedAfter = queuedMs(pid)
    const waited = queuedBefore !== undefined && queuedAfter !== undefined ? queuedAfter - queuedBefore : 0
    if (refused) {
      // nothing listens, or the process died under the request: the gateway crashed and is being
      // started again (the crash is its own finding)
      down++
      downUntil = performance.now() + WARMING_MS
      return
    }
    if (performance.now() < downUntil) return
    if ((ms > SLOW_MS || !ok) && starvedAt >= started) {
      starved++
      return
    }
    // an answer only that late because the gateway waited its turn for a CPU: the machine's load
    if (ok && slowOnlyByQueue(ms, waited, SLOW_MS)) {
      queued++
      return
    }
    samples++
    if (!ok) failures++
    if (ms > maxMs) maxMs = ms
    if (ms > SLOW_MS) {
      over++
      worst.push({ at: new Date().toISOString(), ms: Math.round(ms) })
      worst.sort((a, b) => b.ms - a.ms)
      worst.length = Math.min(worst.length, 5)
    }
  }
  const req = get(url, { agent, timeout: GIVE_UP_MS }, res => {
    res.resume()
    res.once('end', () => done(res.statusCode === 200))
    res.once('error', () => done(false))
  })
  req.once('timeout', () => req.destroy(new Error('timeout')))
  req.once('error', err => done(false, ['ECONNREFUSED', 'ECONNRESET'].includes((err as NodeJS.ErrnoException).code ?? '')))
}

const timer = setInterval(probe, EVERY_MS)
process.on('message', m => {
  if (m !== 'report') return
  clearInterval(timer)
  process.send!({ samples, maxMs: Math.round(maxMs), over, failures, down, starved, queued, worst }, () => process.exit(0))
})
process.on('disconnect', () => process.exit(0))
