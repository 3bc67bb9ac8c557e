// The event loop's delay (sluice_nodejs_eventloop_lag_*), sampled finely only while the loop works.
//
// prom-client samples it with Node's monitorEventLoopDelay at a 10 ms resolution: a timer that wakes the
// loop 100 times a second, busy or idle. On a 2-core VM a Node process woken by a 10 ms timer spent
// 180-258 ms of CPU in 20 s, against 17-27 ms with none (bench/README.md, "What woke an idle node"): about
// 1 % of a core on every idle node. Here the same samples come from a timer of ours, whose period follows
// the loop's utilisation (performance.eventLoopUtilization: the loop's own idle-time counter, read once a
// second at no cost) and the lateness of its own ticks:
// - FINE_MS (prom-client's 10 ms) while the loop works: every stall of 10 ms or more delays a tick;
// - COARSE_MS (50 ms, 20 wakeups a second) after a second with under IDLE_BELOW of it at work and no tick
//   FINE_MS late. The fine ticks' own wakeups are 0.8-2 % of this VM's second; the coarse ones 0.2-0.3 %;
// - back to FINE_MS after a second with WORK_FROM or more at work, or at once when a coarse tick runs
//   FINE_MS late. While coarse, every stall of COARSE_MS or more is seen; a shorter one with a chance of its
//   length over COARSE_MS (a stall on an idle node, the first of its work).
// A tick records how late it ran (its due time to now, in ns), as monitorEventLoopDelay records each
// interval less its resolution. The gauges and their names are prom-client's, with one more: the period.
import { createHistogram, performance, type EventLoopUtilization, type RecordableHistogram } from 'node:perf_hooks'
import { Gauge, type Registry } from 'prom-client'

/** The period while the loop works: prom-client's default resolution, so a working node's figures do not change. */
export const FINE_MS = 10
/** The period while it is idle: 20 wakeups a second; every stall of 50 ms or more is still seen. */
export const COARSE_MS = 50
/** How often the utilisation is read, and the window it is read over. */
export const CHECK_MS = 1000
/** Fine to coarse under this share of a second at work (20 ms), the fine ticks' own wakeups included. */
export const IDLE_BELOW = 0.02
/** Coarse to fine from this share (10 ms of work: room for a stall the coarse ticks may not have seen). */
export const WORK_FROM = 0.01

export class LoopDelaySampler {
  readonly histogram: RecordableHistogram = createHistogram()
  #period = FINE_MS
  #due = 0
  #timer: NodeJS.Timeout | undefined
  #checkedAt = 0
  #elu: EventLoopUtilization | undefined
  /** the most a tick ran late in the current check window, and in the last one (ms) */
  #windowLate = 0
  #lastLate = 0
  /** ticks since start, and changes of period: how often the sampler woke the loop, and how often it changed pace */
  ticks = 0
  switches = 0

  /** The current period in ms: FINE_MS or COARSE_MS. */
  get periodMs (): number {
    return this.#period
  }

  start (): void {
    if (this.#timer) return
    this.#checkedAt = performance.now()
    this.#elu = performance.eventLoopUtilization()
    this.#arm(this.#checkedAt)
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm (now: number): void {
    this.#due = now + this.#period
    this.#timer = setTimeout(this.#tick, this.#period)
    this.#timer.unref()
  }

  readonly #tick = (): void => {
    const now = performance.now()
    this.ticks++
    const late = now - this.#due
    // RecordableHistogram takes integers >= 1. A tick can run up to about a millisecond before its due time by
    // this clock (Node's timers count from the loop's cached time): such a tick records 1 ns
    this.histogram.record(Math.max(1, Math.round(late * 1e6)))
    if (late > this.#windowLate) this.#windowLate = late
    let period = this.#period
    if (period === COARSE_MS && late >= FINE_MS) {
      period = FINE_MS
      this.#check(now)
    } else if (now - this.#checkedAt >= CHECK_MS) {
      const used = this.#check(now)
      if (period === FINE_MS && used < IDLE_BELOW && this.#lastLate < FINE_MS) period = COARSE_MS
      else if (period === COARSE_MS && used >= WORK_FROM) period = FINE_MS
    }
    if (period !== this.#period) {
      this.#period = period
      this.switches++
      this.#arm(now)
      return
    }
    // the same timer again, from now: no new Timeout a tick
    this.#due = now + period
    this.#timer!.refresh()
  }

  /** Starts a new check window; returns the share of the last one the loop was at work. */
  #check (now: number): number {
    const elu = performance.eventLoopUtilization()
    const used = performance.eventLoopUtilization(elu, this.#elu).utilization
    this.#elu = elu
    this.#checkedAt = now
    this.#lastLate = this.#windowLate
    this.#windowLate = 0
    return used
  }
}

/**
 * Registers prom-client's event-loop delay gauges (PREFIXnodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds,
 * reset at each scrape, and PREFIXnodejs_eventloop_lag_seconds, one setImmediate's delay at the scrape) fed by
 * `sampler`, and PREFIXnodejs_eventloop_lag_resolution_seconds, the sampler's period at the scrape. Each replaces
 * prom-client's gauge of its name in `registry` (collectDefaultMetrics' own); one of prom-client's left under
 * another name (a prom-client that names them otherwise) is an error, not a second set fed by a sampler that
 * never ticks.
 */
export function registerLoopDelay (registry: Registry, prefix: string, sampler: LoopDelaySampler): void {
  const ours = new Set<string>()
  const gauge = (name: string, help: string, collect?: () => Promise<void>): Gauge => {
    const full = `${prefix}nodejs_eventloop_lag_${name}`
    registry.removeSingleMetric(full)
    ours.add(full)
    return new Gauge({ name: full, help, registers: [registry], ...(collect ? { collect } : {}) })
  }
  const h = sampler.histogram
  // registered first, as prom-client's is: its collect sets the others before the registry reads them, and a
  // scrape then reads one window
  gauge('seconds', 'Lag of event loop in seconds.', async function (this: Gauge) {
    const start = performance.now()
    // an empty window (no tick since the last scrape: a scrape right after another) reports 0, not the histogram's sentinels
    const empty = h.count === 0
    for (const [g, read] of stats) g.set(empty ? 0 : read() / 1e9)
    resolution.set(sampler.periodMs / 1000)
    h.reset()
    await new Promise(resolve => setImmediate(resolve))
    this.set((performance.now() - start) / 1000)
  })
  const stats: Array<[Gauge, () => number]> = [
    [gauge('min_seconds', 'The minimum recorded event loop delay.'), () => h.min],
    [gauge('max_seconds', 'The maximum recorded event loop delay.'), () => h.max],
    [gauge('mean_seconds', 'The mean of the recorded event loop delays.'), () => h.mean],
    [gauge('stddev_seconds', 'The standard deviation of the recorded event loop delays.'), () => h.stddev],
    [gauge('p50_seconds', 'The 50th percentile of the recorded event loop delays.'), () => h.percentile(50)],
    [gauge('p90_seconds', 'The 90th percentile of the recorded event loop delays.'), () => h.percentile(90)],
    [gauge('p99_seconds', 'The 99th percentile of the recorded event loop delays.'), () => h.percentile(99)]
  ]
  const resolution = gauge('resolution_seconds', `The delay sampler's period at the scrape: ${FINE_MS / 1000} while the event loop worked in the last second, ${COARSE_MS / 1000} after an idle one.`)
  const left = registry.getMetricsAsArray().map(metric => metric.name).filter(name => name.includes('eventloop_lag') && !ours.has(name))
  if (left.length > 0) throw new Error(`prom-client registered event-loop delay gauges the metrics plugin does not replace: ${left.join(', ')}`)
}
