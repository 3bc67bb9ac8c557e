// A KafkaClient left idle after an admin request costs nothing between requests (kafkajs-idle.ts): without
// the fix kafkajs's request queue re-arms a 1 ms timer forever (~800 timers a second per connection).
import { test } from 'tap'
import { createHook } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { KafkaClient } from '../src/kafka.ts'

const BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')

test('an idle client after admin requests arms almost no timers, and its next request is still answered', async t => {
  const kafka = new KafkaClient({ brokers: BROKERS, clientId: 'kafkajs-idle-test' })
  t.teardown(() => kafka.close())
  const before = await kafka.listTopics()
  await kafka.listTopics()
  let timers = 0
  const hook = createHook({ init (_id, type) { if (type === 'Timeout') timers++ } }).enable()
  await sleep(2000)
  hook.disable()
  // the sleep's own timer and a few of the client's (metadata, connection) at most; the loop made ~1,600 here
  t.ok(timers < 50, `${timers} timers armed in 2 s idle`)
  const after = await kafka.listTopics()
  t.ok(after.length >= before.length, 'a request after the idle time is answered')
})
