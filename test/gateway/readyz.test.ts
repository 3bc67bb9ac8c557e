// /readyz follows the real dependencies: 503 with the reason while the broker
// (or Redis) is down, 200 again once it is back, with no gateway restart.
// This suite runs its own broker and Redis, since it stops them.
import { test } from 'tap'
import { KafkaBroker, RedisServer } from '@sluice/stack'
import type { FastifyInstance } from 'fastify'
import { eventually } from '../helpers.ts'
import { startGateway } from '../harness/gateway.ts'
import { DEFAULT_REUSE_MS } from '@sluice/health'

async function readyz (app: FastifyInstance) {
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  return { status: res.statusCode, body: res.json() as { status: string, checks: Record<string, { ok: boolean, reason?: string }> } }
}

test('readyz answers 503 while the broker is stopped and 200 after it restarts', async t => {
  const broker = new KafkaBroker()
  t.teardown(() => broker.destroy())
  await broker.start()
  const { app } = await startGateway({ t, config: { kafka: { brokers: broker.brokers } } })

  t.match(await readyz(app), { status: 200, body: { status: 'ready', checks: { kafka: { ok: true } } } })
  t.same((await app.inject({ method: 'GET', url: '/healthz' })).json(), { status: 'ok' })

  await broker.stop()
  const down = await readyz(app)
  t.equal(down.status, 503, 'not ready while the broker is down')
  t.equal(down.body.checks.kafka?.ok, false)
  t.type(down.body.checks.kafka?.reason, 'string', 'the reason is given')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still alive: a dependency down is no reason to restart')

  await broker.start()
  // the gateway reconnects on its own; allow a few probe periods for it
  await eventually(async () => (await readyz(app)).status === 200, 20_000, 'ready again after the broker restarts')
  t.pass('ready again without restarting the gateway')
})

test('readyz includes Redis when it is configured', async t => {
  const broker = new KafkaBroker()
  const redis = new RedisServer()
  t.teardown(async () => { await broker.destroy(); await redis.stop() })
  await Promise.all([broker.start(), redis.start()])
  const { app } = await startGateway({ t, config: { kafka: { brokers: broker.brokers }, redis: { url: redis.url } } })

  await eventually(async () => (await readyz(app)).status === 200, 5000, 'ready with Redis up')
  t.match((await readyz(app)).body.checks, { kafka: { ok: true }, redis: { ok: true } })

  await redis.stop()
  // probes within DEFAULT_REUSE_MS share the last run of the checks (a flood costs Redis nothing more)
  await new Promise(resolve => setTimeout(resolve, DEFAULT_REUSE_MS + 50))
  const started = Date.now()
  const down = await readyz(app)
  t.equal(down.status, 503)
  t.equal(down.body.checks.redis?.ok, false)
  t.ok(Date.now() - started < 1500, 'a dead Redis does not make the probe hang')

  await redis.start()
  await eventually(async () => (await readyz(app)).status === 200, 10_000, 'ready again after Redis restarts')
  t.pass('ready again without restarting the gateway')
})
