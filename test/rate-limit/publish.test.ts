// Publishing faster than the plan: RATE_LIMITED errors carrying a
// retryAfterMs that works (wait it, and the next publish is acked); a client
// that goes on publishing while told to wait is closed with 4029; a client
// that obeys retryAfterMs is never closed, and gets the plan's rate.
import { test, type Test } from 'tap'
import { redisUrl, unique } from '../helpers.ts'
import { gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import type { Client, Frame } from '../harness/client.ts'

const RATE = 5

async function setup (t: Test) {
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({ publishedPerSecond: RATE })), redisUrl: redisUrl(), prefix: prefix() })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic }])
  return { gw, topic }
}

async function publish (client: Client, topic: string, id: string): Promise<Frame> {
  const after = client.frames.length
  client.send({ op: 'publish', id, topic, value: { id } })
  return client.next(f => f.id === id, 15_000, after)
}

test('RATE_LIMITED with a retryAfterMs that works', async t => {
  const { gw, topic } = await setup(t)
  const client = gw.client('henry')
  t.equal(await client.outcome, 'open')
  // three seconds' worth at once: the plan's burst is acked, the rest refused
  const ids = Array.from({ length: RATE * 3 }, (_, i) => `p${i}`)
  for (const id of ids) client.send({ op: 'publish', id, topic, value: { id } })
  const answers = await Promise.all(ids.map(id => client.next(f => f.id === id, 15_000)))
  const acks = answers.filter(f => f.op === 'ack').length
  t.ok(acks >= RATE && acks <= RATE + 1, `the burst is the plan's per-second rate (${acks} acked)`)
  const refused = answers.filter(f => f.op === 'error')
  t.equal(refused.length, ids.length - acks)
  t.ok(refused.every(f => f.code === 'RATE_LIMITED'), 'the others: RATE_LIMITED')
  const limited = refused.at(-1)!
  const wait = limited.retryAfterMs as number
  t.ok(wait > 0 && wait <= 1000 / RATE, `retryAfterMs is one token's time at most (${wait} ms)`)
  await new Promise(resolve => setTimeout(resolve, wait))
  t.equal((await publish(client, topic, 'after-wait')).op, 'ack', 'waiting retryAfterMs is enough')
  t.ok((await gw.metric('sluice_rate_limit_limited_total', { limit: 'publishedPerSecond' }))! >= 1, 'counted in metrics')
  t.ok((await gw.metric('sluice_rate_limit_allowed_total', { limit: 'publishedPerSecond' }))! >= RATE + 1)
})

test('a client that goes on publishing while told to wait is closed with 4029', async t => {
  const { gw, topic } = await setup(t)
  const client = gw.client('ivan')
  t.equal(await client.outcome, 'open')
  // no waiting at all: a publish every millisecond
  const timer = setInterval(() => client.send({ op: 'publish', topic, value: 1 }), 1)
  t.teardown(() => clearInterval(timer))
  const closed = await client.closed
  clearInterval(timer)
  t.equal(closed.code, 4029, 'closed with 4029')
  const errors = client.frames.filter(f => f.op === 'error')
  t.ok(errors.length > 0 && errors.every(f => f.code === 'RATE_LIMITED' && (f.retryAfterMs as number) > 0), `told ${errors.length} times to wait before`)
})

test('a client that obeys retryAfterMs is never closed and gets the plan\'s rate', async t => {
  const { gw, topic } = await setup(t)
  const client = gw.client('judy')
  t.equal(await client.outcome, 'open')
  const started = Date.now()
  let acks = 0
  let limited = 0
  for (let i = 0; Date.now() - started < 4000; i++) {
    const answer = await publish(client, topic, `o${i}`)
    if (answer.op === 'ack') acks++
    else {
      t.equal(answer.code, 'RATE_LIMITED')
      limited++
      await new Promise(resolve => setTimeout(resolve, answer.retryAfterMs as number))
    }
  }
  const seconds = (Date.now() - started) / 1000
  t.ok(limited > 0, `it was limited ${limited} times`)
  t.ok(acks <= RATE + Math.ceil(seconds * RATE) + 1, `${acks} acks in ${seconds.toFixed(1)} s: never more than the burst plus the rate`)
  t.ok(acks >= RATE + Math.floor(seconds * RATE) - 3, `and close to it (${acks})`)
  t.equal(client.ws.readyState, client.ws.OPEN, 'still open')
})
