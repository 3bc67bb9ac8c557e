// A KafkaClient left idle after an admin request costs nothing between requests (kafkajs-idle.ts): without
// the fix kafkajs's request queue re-arms a 1 ms timer forever (~800 timers a second per connection).
import { test } from 'tap'
import { createHook } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { KafkaClient } from '../src/kafka.ts'
import '../src/kafkajs-idle.ts'

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

// kafkajs's request queue, on its own (no socket): its request-timeout check runs only while a request waits
interface Queue {
  scheduleRequestTimeoutCheck (): void
  push (request: unknown): void
  fulfillRequest (response: { correlationId: number, payload: Buffer | null, size: number }): void
  destroy (): void
}
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as new (options: Record<string, unknown>) => Queue

// every timer made from here on, for timerFirings: an interval made before a count is counted too
const timeouts = new Set<number>()
let fired = 0
createHook({
  init (id, type) { if (type === 'Timeout') timeouts.add(id) },
  before (id) { if (timeouts.has(id)) fired++ },
  destroy (id) { timeouts.delete(id) }
}).enable()

/** Timer callbacks run while `during` runs (an armed interval fires at each of its periods). */
async function timerFirings (during: () => Promise<void>): Promise<number> {
  const from = fired
  await during()
  return fired - from
}

function request (queue: Queue, correlationId: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    queue.push({
      entry: { correlationId, apiName: 'Fetch', apiKey: 1, apiVersion: 11, resolve, reject },
      expectResponse: true,
      sendRequest: () => {}
    })
  })
}

test('the request-timeout check runs only while a request waits, and still times a silent one out', async t => {
  const logger = { debug () {}, info () {}, warn () {}, error () {} }
  const queue = new RequestQueue({ maxInFlightRequests: null, requestTimeout: 300, enforceRequestTimeout: true, clientId: 't', broker: 'b', logger, isConnected: () => true })
  t.teardown(() => queue.destroy())
  // the connection is up (kafkajs arms the check in connect()): idle, nothing fires. Before the fix, 100 ms
  // periods for good: ~6 in 600 ms
  queue.scheduleRequestTimeoutCheck()
  // the sleep's own timer is one of the timers that fire
  t.ok(await timerFirings(() => sleep(600)) <= 1, 'an idle queue: no check')

  // a request nobody answers is timed out after its requestTimeout, as kafkajs does
  const started = Date.now()
  const silent = request(queue, 1)
  await t.rejects(silent, { name: 'KafkaJSRequestTimeoutError' }, 'a silent request times out')
  const took = Date.now() - started
  t.ok(took >= 300 && took < 1000, `after its 300 ms (${took} ms)`)
  t.ok(await timerFirings(() => sleep(600)) <= 1, 'the queue empty again: the check stopped')

  // an answered request: answered, and the check stops after it
  const answered = request(queue, 2)
  queue.fulfillRequest({ correlationId: 2, payload: null, size: 0 })
  t.match(await answered, { correlationId: 2 }, 'an answer resolves its request')
  await sleep(150)
  t.ok(await timerFirings(() => sleep(600)) <= 1, 'and the check stopped after it')

  // closed (disconnect destroys the queue): a request pushed after it is not checked until connect() arms it again
  queue.destroy()
  request(queue, 3).catch(() => {})
  t.ok(await timerFirings(() => sleep(600)) <= 1, 'a destroyed queue runs no check')
})

test('over a real connection to a real broker that stops answering (SIGSTOP), a request is timed out at the request timeout', async t => {
  // a broker of the test's own: the shared one must not freeze under the other files. A frozen JVM (a long GC
  // pause, a VM stopped) keeps its connections and answers nothing: kafkajs's check must run while the request waits
  const { KafkaBroker } = await import('@sluice/stack')
  const broker = new KafkaBroker()
  t.teardown(async () => {
    if (broker.pid) process.kill(broker.pid, 'SIGCONT')
    await broker.destroy()
  })
  await broker.start()
  const { Kafka, logLevel } = await import('kafkajs')
  const admin = new Kafka({ brokers: broker.brokers, clientId: 'kafkajs-idle-frozen', requestTimeout: 1000, retry: { retries: 0 }, logLevel: logLevel.NOTHING }).admin()
  t.teardown(() => admin.disconnect().catch(() => {}))
  await admin.connect()
  await admin.listTopics()
  // idle a while first: the check is not running now, and the next request must start it
  await sleep(300)
  process.kill(broker.pid!, 'SIGSTOP')
  const started = Date.now()
  const outcome = await Promise.race([
    admin.listTopics().then(() => 'answered', (err: Error & { originalError?: Error }) => [err.name, err.originalError?.name].filter(Boolean).join(' < ')),
    sleep(5000).then(() => 'still waiting after 5 s')
  ])
  const took = Date.now() - started
  process.kill(broker.pid!, 'SIGCONT')
  t.match(outcome, /KafkaJSRequestTimeoutError/, `the request to the frozen broker timed out (${outcome})`)
  t.ok(took >= 1000 && took < 2500, `after its 1,000 ms (${took} ms)`)
  const thawed = await admin.listTopics()
  t.ok(Array.isArray(thawed), `the broker thawed: the next request is answered (${thawed.length} topics)`)
})
