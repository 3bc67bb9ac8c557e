// A resume on the gateway as shipped with Redis-backed limits: the session's
// open waits on Redis for its subject's first delivery lease, turns after the
// upgrade. The 101 is held until the open settled (hold-writes.ts), so the
// 101, the subscribed frame and the replayed gap still leave the node in one
// write: counted on the node's own end of each socket (_write/_writev calls,
// each a syscall).
import { test } from 'tap'
import { redisUrl, unique } from '../helpers.ts'
import { gateway, prefix } from '../harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../harness/policy.ts'
import { clientPort, countWrites } from '../harness/writes.ts'

const LIVE = 40
const RESUMES = 12

test('a resume with Redis limits: the 101, subscribed and the gap in one write', async t => {
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: redisUrl(), prefix: prefix() })
  const topic = unique('rl')
  await gw.app.kafka.ensureTopics([{ topic, partitions: 2 }])
  const holder = gw.client('holder', `?topics=${topic}`)
  t.same(await holder.outcome, 'open')
  await holder.next(f => f.op === 'subscribed')
  await gw.app.kafka.produceBatch(topic, Array.from({ length: LIVE }, (_v, i) => ({ key: null, value: Buffer.from(JSON.stringify({ n: i })), partition: i % 2 })))
  const seen = await holder.waitMessages(LIVE, 30_000)
  const half = (p: number) => seen.filter(f => f.partition === p)[LIVE / 4]!
  const cursor = `${topic}@0:${half(0).offset as string},1:${half(1).offset as string}`

  const writes = countWrites(gw.app.server)
  const counts: number[] = []
  for (let i = 0; i < RESUMES; i++) {
    // a subject of its own each: its first lease is asked from Redis before it subscribes
    const client = gw.client(`resumer-${i}`, `?topics=${topic}&from=${encodeURIComponent(cursor)}`)
    t.equal(await client.outcome, 'open')
    const gap = await client.waitMessages(LIVE / 2, 10_000)
    t.equal(gap.length, LIVE / 2)
    t.equal(client.frames[0]?.op, 'subscribed', 'subscribed first')
    counts.push(writes(clientPort(client.ws)) ?? -1)
  }
  t.same([...new Set(counts)], [1], `each resume in one write (${counts.join(', ')})`)
})
