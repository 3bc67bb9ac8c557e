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
import { Agent, get } from 'node:http'

const url = process.argv[2]!
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
  const done = (ok: boolean, refused = false) => {
    busy = false
    const ms = performance.now() - started
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
  process.send!({ samples, maxMs: Math.round(maxMs), over, failures, down, starved, worst }, () => process.exit(0))
})
process.on('disconnect', () => process.exit(0))
