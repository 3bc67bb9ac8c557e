// A /v2/broker/ socket that stops reading does not hold anyone up; past its
// send queue it loses records. An old client cannot resume from a cursor, so
// with `slowClient: lagging` it is told how many it lost and gets the topic
// live again. (`evict`, 4008, is the same code as /v1/stream's: stream-slow-client.)
import { test } from 'tap'
import { gateway, LegacyClient, subscribed } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { eventually, unique } from '../helpers.ts'

const RECORDS = 5000
// 4 KiB values, 100 to a batch: 20 MiB in all, far beyond the queue and what loopback socket buffers absorb
const VALUE = 'x'.repeat(4096)
// 1 MiB: the fast client shares this process with the gateway and lags a little; the slow one never reads
const MAX_QUEUE = 1024 * 1024

test('a socket that stops reading is told what it lost and gets the topic live again', async t => {
  const topic = unique('lag.topic')
  const gw = await gateway(t, {
    policy: policyYaml({ lag: { topics: '[{ pattern: "lag.**", encoding: text, slowClient: lagging }]', subscribe: ['lag.**'], publish: ['lag.**'] } }),
    config: { stream: { maxQueueBytes: MAX_QUEUE, consumerGraceMs: 200 } }
  })
  await gw.kafka.ensureTopics([{ topic }])
  const fast = new LegacyClient(gw.url, `topics=${topic}`, 'kafka-binary')
  const slow = new LegacyClient(gw.url, `topics=${topic}`)
  t.teardown(() => { fast.close(); slow.close() })
  await Promise.all([fast.opened, slow.opened])
  await subscribed(gw, topic, 2)
  // the slow client stops reading its TCP socket: the server's writes pile up
  const slowTcp = (slow.ws as unknown as { _socket: { pause (): void, resume (): void } })._socket
  slowTcp.pause()

  for (let sent = 0; sent < RECORDS; sent += 100) {
    await gw.kafka.produceBatch(topic, Array.from({ length: 100 }, (_v, i) => ({ value: `${sent + i}:${VALUE}` })))
  }
  await fast.waitMessages(RECORDS, 120_000)
  t.pass('the other socket got every record')
  t.ok(gw.app.hub.stats.drops > 0, 'records were dropped for the slow one')

  slowTcp.resume()
  const notice = await slow.waitFor(() => slow.errors().find(e => e.code === 'SLUICE_COMPAT_LAGGING'), 60_000, 'the lagging notice')
  t.match(notice, { topic, dropped: Number })
  const dropped = notice.dropped as number
  t.ok(dropped > 0, `it says how many it lost (${dropped})`)
  const before = slow.messages().length
  t.ok(before + dropped <= RECORDS, `what it got and what it lost add up to no more than was sent (${before} + ${dropped})`)

  // live again: a record written now reaches it
  await eventually(() => gw.app.hub.subscribers(topic) === 2, 20_000, 'subscribed again')
  await gw.kafka.produce(topic, { value: 'after' })
  await slow.waitFor(() => slow.messages().find(r => r.text?.message === 'after'), 60_000, 'the record written after the notice')
  const numbers = slow.messages().map(r => String(r.text!.message).split(':')[0])
  t.equal(new Set(numbers).size, numbers.length, 'no record twice')
  t.equal(slow.ws.readyState, slow.ws.OPEN)
})
