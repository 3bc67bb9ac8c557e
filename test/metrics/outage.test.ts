// Kafka and Redis status on /metrics: sluice_dependency_up turns 0 when the
// dependency stops answering and 1 when it is back. This suite runs a Kafka
// broker and a Redis of its own, since it stops them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { KafkaBroker, RedisServer } from '@sluice/stack'
import { buildApp } from '@sluice/gateway'
import { loadGatewayConfig } from '@sluice/gateway/config'
import { eventually, kafkaBrokers, metricSum, redisUrl, unique } from '../helpers.ts'

async function gateway (t: Test, brokers: string[], redisUrl: string): Promise<FastifyInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-metrics-outage-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'policy.yaml'), 'version: 1\n')
  const app = await buildApp(loadGatewayConfig({
    base: {
      kafka: { brokers, connectionTimeoutMs: 500 },
      redis: { url: redisUrl },
      log: { level: 'silent' },
      policy: { dir, watch: false },
      rateLimit: { prefix: unique('mx-outage') + ':' }
    }
  }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

async function up (app: FastifyInstance, dependency: string): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  return metricSum(res.body, 'sluice_dependency_up', { dependency })
}

async function becomes (app: FastifyInstance, dependency: string, value: number, timeoutMs: number): Promise<void> {
  await eventually(async () => await up(app, dependency) === value, timeoutMs, `sluice_dependency_up{dependency="${dependency}"} = ${value}`)
}

test('Redis status: down when it stops, up when it is back', async t => {
  const redis = new RedisServer()
  await redis.start()
  t.teardown(() => redis.stop())
  const app = await gateway(t, kafkaBrokers(), redis.url)
  await eventually(() => app.redis.status === 'ready', 5000, 'Redis connected')
  t.equal(await up(app, 'redis'), 1, 'up while it answers PING')
  t.equal(await up(app, 'kafka'), 1, 'Kafka is up meanwhile')

  await redis.stop()
  // one scrape: PING fails at once on a closed connection, or within the 500 ms command deadline
  await becomes(app, 'redis', 0, 5000)
  t.pass('down once stopped')
  t.equal(await up(app, 'kafka'), 1, 'Kafka is still up')

  await redis.start()
  // ioredis reconnects backing off to 1 s
  await becomes(app, 'redis', 1, 10_000)
  t.pass('up again once restarted, without a gateway restart')
})

test('Kafka status: down when the broker stops, up when it is back', async t => {
  const broker = new KafkaBroker()
  t.teardown(() => broker.destroy())
  await broker.start()
  const app = await gateway(t, broker.brokers, redisUrl())
  t.equal(await up(app, 'kafka'), 1, 'up while the broker answers metadata')

  await broker.stop()
  await becomes(app, 'kafka', 0, 10_000)
  t.pass('down once the broker stopped')
  t.equal(await up(app, 'redis'), 1, 'Redis is up meanwhile')

  await broker.start()
  await becomes(app, 'kafka', 1, 60_000)
  t.pass('up again once it restarted')
})
