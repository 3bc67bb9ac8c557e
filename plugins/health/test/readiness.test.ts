import { test } from 'tap'
import { Readiness } from '../src/readiness.ts'

test('ready only when every check passes, each with its reason', async t => {
  const readiness = new Readiness()
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
