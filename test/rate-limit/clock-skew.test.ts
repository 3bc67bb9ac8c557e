// A gateway whose clock is 5 s off gets no extra tokens: buckets are
// computed by the Lua script on Redis' clock, and a node's own clock (given
// here 5 s ahead, and on a third node 5 s behind) only times local things.
// Three nodes publish for one subject as fast as they are let; together they
// get the plan's burst plus its rate for the time that passed, no more and
// no less — a node that stamped buckets with its own clock would hand out
// 5 s of refill at once (ahead) or starve the others for 5 s (behind).
import { test } from 'tap'
import { redisUrl, unique } from '../helpers.ts'
import { gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import type { Client, Frame } from '../harness/client.ts'

const RATE = 5
const SKEW_MS = 5000
const RUN_MS = 3000

test('nodes with clocks 5 s ahead and behind get no extra tokens', async t => {
  const dir = policyDir(limitsPolicy({ publishedPerSecond: RATE }))
  const shared = prefix()
  const honest = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared })
  const ahead = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared, now: () => Date.now() + SKEW_MS })
  const behind = await gateway(t, { policyDir: dir, redisUrl: redisUrl(), prefix: shared, now: () => Date.now() - SKEW_MS })
  const topic = unique('rl')
  await honest.app.kafka.ensureTopics([{ topic }])
  const clients = [honest.client('kate'), ahead.client('kate'), behind.client('kate')]
  t.same(await Promise.all(clients.map(c => c.outcome)), ['open', 'open', 'open'])

  const acks = [0, 0, 0]
  const waits: number[] = []
  const started = Date.now()
  // each client publishes one at a time and obeys retryAfterMs, so no socket is ever struck
  await Promise.all(clients.map(async (client: Client, n) => {
    for (let i = 0; Date.now() - started < RUN_MS; i++) {
      const id = `${n}.${i}`
      const after = client.frames.length
      client.send({ op: 'publish', id, topic, value: i })
      const answer: Frame = await client.next(f => f.id === id, 15_000, after)
      if (answer.op === 'ack') acks[n]!++
      else {
        waits.push(answer.retryAfterMs as number)
        await new Promise(resolve => setTimeout(resolve, answer.retryAfterMs as number))
      }
    }
  }))
  const elapsed = (Date.now() - started) / 1000
  const total = acks.reduce((a, b) => a + b, 0)
  const allowed = RATE + elapsed * RATE
  t.ok(total <= Math.ceil(allowed), `${total} acks across the three nodes in ${elapsed.toFixed(2)} s: at most the burst plus ${RATE}/s (${allowed.toFixed(1)})`)
  t.ok(total >= Math.floor(allowed) - 3, `and the nodes were not starved either (${total})`)
  t.ok(acks.every(n => n > 0), `every node got tokens (${acks.join(', ')})`)
  t.ok(waits.every(w => w > 0 && w <= 1000 / RATE), `every retryAfterMs is within one token's time (max ${Math.max(...waits)} ms), never the skew`)
})
