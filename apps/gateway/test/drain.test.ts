// Graceful drain on one real gateway (buildApp, real Kafka and Redis): the
// closes are spread over the window, never more than their share per slice;
// meanwhile /readyz says "draining" and new sockets hear 503 with Retry-After;
// a socket answers the publishes it read before its 1001, and writes none it
// did not answer. The schedule's arithmetic and the config rule are checked alone.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { ConfigError } from '@sluice/config'
import { closedAfterSlice } from '../src/drain.ts'
import { loadGatewayConfig } from '../src/config.ts'
import { gateway, prefix } from '../../../test/harness/rate-limit.ts'
import { limitsPolicy, policyDir } from '../../../test/harness/policy.ts'
import { type Client, refusal } from '../../../test/harness/client.ts'
import { redisUrl } from '../../../test/helpers.ts'

test('the schedule: even, at most ceil(total / slices) per slice, everything by the last one', async t => {
  for (const [total, slices] of [[0, 10], [1, 100], [3, 20], [31, 10], [1000, 100], [7, 1], [101, 100]] as const) {
    let before = 0
    let most = 0
    for (let i = 0; i < slices; i++) {
      const after = closedAfterSlice(total, slices, i)
      t.ok(after >= before, `${total} over ${slices}: never fewer after slice ${i}`)
      most = Math.max(most, after - before)
      before = after
    }
    t.equal(before, total, `${total} over ${slices}: all closed by the last slice`)
    t.ok(most <= Math.ceil(total / slices), `${total} over ${slices}: at most ${Math.ceil(total / slices)} in a slice (saw ${most})`)
    if (total > 0) t.equal(closedAfterSlice(total, slices, 0) > 0, true, 'the first slice closes one at least')
  }
  // 3 sockets over 20 slices are spread out, not closed in the first three slices
  const firsts = [1, 2, 3].map(k => Array.from({ length: 20 }, (_v, i) => i).find(i => closedAfterSlice(3, 20, i) >= k))
  t.same(firsts, [0, 6, 13], 'closes at slices 0, 6 and 13 of 20')
})

test('the shutdown deadline must leave room after the drain', async t => {
  const base = { kafka: { brokers: ['127.0.0.1:9092'] } }
  let problems: ConfigError['problems'] = []
  try {
    loadGatewayConfig({ base, env: { SLUICE_SHUTDOWN_TIMEOUT_MS: '5000' } })
  } catch (err) {
    if (err instanceof ConfigError) problems = err.problems
  }
  t.match(problems, [{ path: '/server/shutdownTimeoutMs', message: /must exceed \/server\/drainMs \(10000\)/ }], 'a deadline of 5 s with the 10 s drain is refused')
  const config = loadGatewayConfig({ base, env: { SLUICE_SHUTDOWN_TIMEOUT_MS: '5000', SLUICE_DRAIN_MS: '2000' } })
  t.equal(config.server.drainMs, 2000, 'SLUICE_DRAIN_MS sets it')
  t.same(loadGatewayConfig({ base }).server, { host: '0.0.0.0', port: 8080, shutdownTimeoutMs: 25_000, drainMs: 10_000, handshakeTimeoutMs: 10_000, listenBacklog: 4096, listenSockets: 2 }, 'the defaults')
})

const SOCKETS = 30
const WINDOW_MS = 1000
const SLICES = WINDOW_MS / 100
const PUBLISHES = 40

test(`${SOCKETS + 1} sockets drained over ${WINDOW_MS} ms: spread, refused meanwhile, publishes answered before 1001`, async t => {
  const gw = await gateway(t, { policyDir: policyDir(limitsPolicy({})), redisUrl: redisUrl(), prefix: prefix() })
  const topic = `rl.drain-${randomBytes(4).toString('hex')}`
  await gw.app.kafka.ensureTopics([{ topic, partitions: 1 }])

  // the oldest socket publishes: it is the first to be closed, while its publishes are still in flight
  const publisher = gw.client('pub')
  t.equal(await publisher.outcome, 'open')
  const others: Client[] = []
  for (let i = 0; i < SOCKETS; i++) others.push(gw.client(`s${i}`))
  t.same(new Set(await Promise.all(others.map(c => c.outcome))), new Set(['open']), `${SOCKETS} more sockets open`)
  const closes = [publisher, ...others].map(c => c.closed)

  for (let i = 0; i < PUBLISHES; i++) publisher.send({ op: 'publish', id: `p${i}`, topic, value: { n: i } })
  await publisher.next(f => f.op === 'ack')
  const started = Date.now()
  const draining = gw.app.drain(WINDOW_MS)

  const ready = await gw.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, '/readyz: 503 at once')
  t.match(ready.json(), { status: 'not ready', checks: { drain: { ok: false, reason: 'draining' } } })
  const late = await refusal(gw.client('late'))
  t.equal(late.status, 503, 'a new /v1/stream upgrade: 503')
  t.equal(late.headers['retry-after'], '1', 'with Retry-After')
  t.equal(late.body.error?.code, 'UNAVAILABLE')
  const compat = await gw.app.inject({ method: 'GET', url: '/v2/broker/?topics=x', headers: { connection: 'upgrade', upgrade: 'websocket' } })
  t.equal(compat.statusCode, 503, '/v2/broker/ too')
  t.equal((await gw.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'plain HTTP is still served')

  const report = await draining
  const closed = await Promise.all(closes)
  t.equal(report.closed, SOCKETS + 1, 'every socket was told')
  t.ok(closed.every(c => c.code === 1001), 'each closed with 1001')
  t.equal(gw.app.sessions.size, 0, 'no session left')
  const most = Math.max(...report.slices.map(s => s.closed))
  t.ok(most <= Math.ceil((SOCKETS + 1) / SLICES), `at most ${Math.ceil((SOCKETS + 1) / SLICES)} closes per slice (saw ${most})`)
  t.equal(report.slices.length, SLICES, 'every slice closed some')
  t.ok(report.slices.every((s, i) => s.atMs >= i * 100), 'each slice ran no earlier than its place in the window')
  const last = Math.max(...closed.map(c => c.at)) - started
  t.ok(last >= (SLICES - 1) * 100, `the last socket closed ${last} ms into the window, not at once`)

  // the publisher heard an answer for every publish that was written, and nothing it did not hear about was written
  const acked = publisher.frames.filter(f => f.op === 'ack').length
  t.same(publisher.frames.filter(f => f.op === 'error'), [], 'no publish refused')
  const offsets = await gw.app.kafka.topicOffsets(topic)
  t.equal(offsets.reduce((sum, o) => sum + Number(o.high), 0), acked, `the topic holds exactly the ${acked} acked records`)
  t.ok(acked >= 1 && acked <= PUBLISHES)
})
