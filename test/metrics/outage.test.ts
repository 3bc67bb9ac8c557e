// Kafka and Redis status on /metrics: sluice_dependency_up turns 0 when the
// dependency stops answering and 1 when it is back. This suite runs a Kafka
// broker and a Redis of its own, since it stops them.
import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { KafkaBroker, RedisServer } from '@sluice/stack'
import { eventually, kafkaBrokers, metricSum, redisUrl, unique } from '../helpers.ts'
import { startGateway } from '../harness/gateway.ts'
import { policyDir } from '../harness/policy.ts'

async function gateway (t: Test, brokers: string[], redisUrl: string): Promise<FastifyInstance> {
  const { app } = await startGateway({
    t,
    policyDir: policyDir('version: 1\n'),
    config: {
      kafka: { brokers, connectionTimeoutMs: 500 },
      redis: { url: redisUrl },
      policy: { watch: false },
      rateLimit: { prefix: unique('mx-outage') + ':' }
    }
  })
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
