// A port the stack picked itself can be taken by another process before the
// server binds it (an outgoing connection's local port: seen once in a CI run,
// the broker exiting with "Address already in use"). Redis and a Kafka broker
// then pick again and start: here the first port handed out is one this test
// holds.
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'
import { test, type Test } from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { freePort, KafkaBroker, RedisServer } from '../src/stack.ts'

/** a port held by a listening socket of this process, and a picker that hands it out first */
async function takenFirst (t: Test): Promise<{ taken: number, pickPort: () => Promise<number>, picks: () => number }> {
  const holder: Server = createServer()
  holder.listen(0, '127.0.0.1')
  await once(holder, 'listening')
  t.teardown(() => { holder.close() })
  const taken = (holder.address() as { port: number }).port
  let picks = 0
  return { taken, pickPort: async () => ++picks === 1 ? taken : freePort(), picks: () => picks }
}

test('Redis: a picked port that is taken is picked again', async t => {
  const { taken, pickPort, picks } = await takenFirst(t)
  const redis = new RedisServer({ pickPort })
  t.teardown(() => redis.stop())
  await redis.start()
  t.not(redis.port, taken, `started on another port (${redis.port})`)
  t.equal(picks(), 2)
  t.ok(redis.running)
})

test('Redis: a port given is not changed: taken, the start fails', async t => {
  const { taken } = await takenFirst(t)
  const redis = new RedisServer({ port: taken })
  t.teardown(() => redis.stop())
  await t.rejects(redis.start(), /exited while starting/)
  t.equal(redis.port, taken)
})

test('Kafka: a picked port that is taken is picked again, and the broker answers', async t => {
  const { taken, pickPort, picks } = await takenFirst(t)
  const broker = new KafkaBroker({ pickPort, heap: '512m' })
  t.teardown(() => broker.destroy())
  await broker.start()
  t.not(broker.port, taken)
  t.not(broker.controllerPort, taken)
  t.equal(picks(), 4, 'two ports picked, twice')
  const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'port-taken' })
  t.teardown(() => kafka.close())
  await kafka.ping(5000)
  t.pass('the broker answers on its new port')
})
