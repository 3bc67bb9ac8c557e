// The event-loop delay sampler: 10 ms ticks while the loop works, 50 ms after an idle second, every stall
// of 50 ms or more recorded either way, and /metrics's gauges fed by it with prom-client's 100-a-second
// sampler out of the way (the main thread's wakeups, counted by the kernel).
import { test } from 'tap'
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import metrics from '../src/index.ts'
import { COARSE_MS, FINE_MS, LoopDelaySampler, registerLoopDelay } from '../src/loop-delay.ts'

function block (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until);
}

/** Waits (up to 30 s) for the sampler to go coarse: one check second with no work in it, after the test's own start. */
async function coarse (sampler: LoopDelaySampler): Promise<number> {
  const start = performance.now()
  while (sampler.periodMs !== COARSE_MS && performance.now() - start < 30_000) await sleep(100)
  return performance.now() - start
}

/** Times the main thread slept and was woken (/proc/<pid>/task/<pid>/status): the loop's wakeups. */
function wakeups (): number {
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${process.pid}/task/${process.pid}/status`, 'utf8'))?.[1])
}

test('an idle loop is sampled every 50 ms, a working one every 10 ms', async t => {
  const sampler = new LoopDelaySampler()
  sampler.start()
  t.teardown(() => sampler.stop())
  t.equal(sampler.periodMs, FINE_MS, 'it starts fine')
  const waited = await coarse(sampler)
  t.equal(sampler.periodMs, COARSE_MS, `an idle loop goes coarse (${waited.toFixed(0)} ms)`)
  // an idle second's ticks, counted again (3 tries) if the machine's load delayed a tick by 10 ms meanwhile
  // and so brought the 10 ms ticks back: that is the sampler doing its job, not the count asked here
  let perSecond = 0
  for (let attempt = 0; attempt < 3; attempt++) {
    await coarse(sampler)
    const [ticks, switches] = [sampler.ticks, sampler.switches]
    await sleep(1000)
    perSecond = sampler.ticks - ticks
    if (sampler.switches === switches) break
  }
  t.ok(perSecond >= 10 && perSecond <= 1000 / COARSE_MS + 3, `${perSecond} ticks in an idle second`)

  // a stall of 70 ms: a coarse tick falls due in its first 50 ms and runs 10 ms late or more, which brings
  // the fine ticks back at once
  block(COARSE_MS + 2 * FINE_MS)
  await sleep(COARSE_MS + 10)
  t.equal(sampler.periodMs, FINE_MS, 'a coarse tick 10 ms late brings the 10 ms ticks back')

  // work in short tasks (3 ms of every 20: no tick 10 ms late), once idle again
  await coarse(sampler)
  t.equal(sampler.periodMs, COARSE_MS)
  const busy = setInterval(() => block(3), 20)
  await sleep(1300)
  clearInterval(busy)
  t.equal(sampler.periodMs, FINE_MS, 'a second 1 % or more at work brings them back too')
})

test('a stall while coarse is recorded; none is invented', async t => {
  const sampler = new LoopDelaySampler()
  sampler.start()
  t.teardown(() => sampler.stop())
  await coarse(sampler)
  t.equal(sampler.periodMs, COARSE_MS)
  sampler.histogram.reset()
  await sleep(200)
  t.ok(sampler.histogram.max < 40e6, `idle: the longest delay ${sampler.histogram.max / 1e6} ms`)
  sampler.histogram.reset()
  // a tick due during a stall runs late by the stall less at most one period
  block(2 * COARSE_MS + 20)
  await sleep(COARSE_MS + 10)
  const max = sampler.histogram.max / 1e6
  t.ok(max >= COARSE_MS, `a ${2 * COARSE_MS + 20} ms stall: the longest delay ${max.toFixed(1)} ms`)
})

test('stop() ends the ticks', async t => {
  const sampler = new LoopDelaySampler()
  sampler.start()
  await sleep(100)
  t.ok(sampler.ticks > 0)
  sampler.stop()
  const ticks = sampler.ticks
  await sleep(200)
  t.equal(sampler.ticks, ticks)
})

test('/metrics: the delay gauges once each, the resolution, and an idle app no longer woken 100 times a second', async t => {
  const app = Fastify()
  await app.register(metrics)
  t.teardown(() => app.close())
  await app.inject('/metrics')
  await sleep(1300)
  // fine or coarse by now, a tick due during the stall runs late by 100 ms or more
  block(150)
  await sleep(60)
  const body = (await app.inject('/metrics')).body
  for (const stat of ['', '_min', '_max', '_mean', '_stddev', '_p50', '_p90', '_p99', '_resolution']) {
    t.equal(body.match(new RegExp(`^sluice_nodejs_eventloop_lag${stat}_seconds `, 'mg'))?.length, 1, `sluice_nodejs_eventloop_lag${stat}_seconds once`)
  }
  const max = Number(/^sluice_nodejs_eventloop_lag_max_seconds (\S+)/m.exec(body)?.[1])
  t.ok(max >= 0.1, `the 150 ms stall since the last scrape: ${max} s`)

  // an idle app's wakeups over 2 s, once the scrapes' work is behind it (a scrape's check second can be 1 %
  // at work); counted again (5 tries) unless the sampler was coarse at the end: the machine's load may delay
  // a tick by 10 ms, which brings the 10 ms ticks back for a second
  let woken = Infinity
  let coarseAtEnd = false
  for (let attempt = 0; attempt < 5 && woken >= 100; attempt++) {
    await sleep(2500)
    const before = wakeups()
    await sleep(2000)
    woken = wakeups() - before
    coarseAtEnd = /^sluice_nodejs_eventloop_lag_resolution_seconds 0\.05$/m.test((await app.inject('/metrics')).body)
    t.comment(`try ${attempt + 1}: woken ${woken} times in 2 s, ${coarseAtEnd ? 'coarse' : 'fine'} at the end`)
    if (!coarseAtEnd) woken = Infinity
  }
  t.ok(coarseAtEnd, 'idle: 50 ms')
  // prom-client's 10 ms sampler alone would be 200 in 2 s; the coarse one is 40, the scrapes a few more
  t.ok(woken < 100, `the main thread woke ${woken} times in 2 idle seconds`)
})

test('prom-client\'s delay gauges are replaced; one under a name ours do not have (a prom-client naming it otherwise) is an error', async t => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'sluice_', eventLoopMonitoringPrecision: 2 ** 31 - 1 })
  const sampler = new LoopDelaySampler()
  registerLoopDelay(registry, 'sluice_', sampler)
  const lag = registry.getMetricsAsArray().map(metric => metric.name).filter(name => name.includes('eventloop_lag')).sort()
  t.equal(lag.length, 9, `prom-client's eight replaced, one more (${lag.join(', ')})`)
  t.match((await registry.getSingleMetric('sluice_nodejs_eventloop_lag_max_seconds')!.get()).help, /maximum recorded/, 'ours, under prom-client\'s name')

  const renamed = new Registry()
  collectDefaultMetrics({ register: renamed, prefix: 'sluice_', eventLoopMonitoringPrecision: 2 ** 31 - 1 })
  // stands for a prom-client whose gauge is named otherwise: left in place, fed by a sampler that never ticks
  renamed.registerMetric(new Gauge({ name: 'sluice_nodejs_eventloop_lag_p95_seconds', help: 'prom-client, renamed', registers: [] }))
  t.throws(() => registerLoopDelay(renamed, 'sluice_', new LoopDelaySampler()), /event-loop delay gauges the metrics plugin does not replace: sluice_nodejs_eventloop_lag_p95_seconds/)
})
