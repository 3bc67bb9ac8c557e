import { test } from 'tap'
import { Readiness } from '../src/readiness.ts'

test('ready only when every check passes, each with its reason', async t => {
  const readiness = new Readiness({ reuseMs: 0 })
  let kafkaUp = true
  readiness.add('kafka', async () => { if (!kafkaUp) throw new Error('broker down') })
  readiness.add('redis', async () => {})
  const up = await readiness.report(100)
  t.equal(up.ready, true)
  t.same(Object.keys(up.checks).sort(), ['kafka', 'redis'])
  kafkaUp = false
  const down = await readiness.report(100)
  t.equal(down.ready, false)
  t.equal(down.checks.kafka?.reason, 'broker down')
  t.equal(down.checks.redis?.ok, true)
})

test('a check that hangs is reported not ready at its deadline', async t => {
  const readiness = new Readiness()
  readiness.add('stuck', () => new Promise(() => {}))
  const started = Date.now()
  const report = await readiness.report(50)
  t.equal(report.ready, false)
  t.match(report.checks.stuck?.reason, /no answer within 50 ms/)
  t.ok(Date.now() - started < 1000, 'the report does not wait for the stuck check')
})

test('draining turns the node not ready whatever the checks say', async t => {
  const readiness = new Readiness()
  readiness.add('kafka', async () => {})
  readiness.drain('shutting down')
  const report = await readiness.report(100)
  t.equal(report.ready, false)
  t.equal(report.checks.drain?.reason, 'shutting down')
})

test('a name is registered once', async t => {
  const readiness = new Readiness()
  readiness.add('kafka', async () => {})
  t.throws(() => readiness.add('kafka', async () => {}), /registered twice/)
})

test('callers at the same moment share one run of the checks; a run serves for reuseMs', async t => {
  const readiness = new Readiness({ reuseMs: 200 })
  let runs = 0
  let up = true
  readiness.add('kafka', async () => {
    runs++
    await new Promise(resolve => setTimeout(resolve, 20))
    if (!up) throw new Error('broker down')
  })
  const flood = await Promise.all(Array.from({ length: 50 }, () => readiness.report(100)))
  t.equal(runs, 1, '50 probes at once: one metadata request')
  t.ok(flood.every(r => r.ready))
  up = false
  t.equal((await readiness.report(100)).ready, true, 'within 200 ms the last run answers')
  t.equal(runs, 1)
  // a drain shows at once, on top of the reused run
  const draining = new Readiness({ reuseMs: 60_000 })
  draining.add('kafka', async () => {})
  t.equal((await draining.report(100)).ready, true)
  draining.drain('shutting down')
  t.equal((await draining.report(100)).checks.drain?.reason, 'shutting down', 'the drain is not cached')
  await new Promise(resolve => setTimeout(resolve, 220))
  const later = await readiness.report(100)
  t.equal(runs, 2, 'after 200 ms the checks run again')
  t.equal(later.checks.kafka?.reason, 'broker down')
})
