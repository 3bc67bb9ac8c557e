// The usage store and emitter on a real Redis (the run's REDIS_URL), with a
// recording stand-in for Kafka's produce: a node that dies after Kafka acked
// a period's events and before it marked the period done has the period
// written again by the next node, with the same ids and the same counts (the
// idempotency key a billing system deduplicates on); a flush that comes after
// a period was sealed counts in the open period instead, so nothing is lost
// or counted twice; the meter attributes counts to the product of the
// socket's first topic and gives back what a failed flush could not write.
import { test, type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { OutgoingRecord } from '@sluice/kafka'
import type { Identity } from '@sluice/protocol/identity'
import { UsageEmitter, UsageMeter, UsageStore, periodOf, type UsageEvent } from '../src/index.ts'

const PERIOD_MS = 60_000
const silent = { debug () {}, info () {}, warn () {}, error () {} }

function redis (t: Test): Redis {
  const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  t.teardown(() => client.quit())
  return client
}

function recorder () {
  const written: UsageEvent[] = []
  return { written, kafka: { async produceBatch (_topic: string, records: OutgoingRecord[]) { for (const r of records) written.push(JSON.parse(String(r.value))) } } }
}

test('a node that dies between Kafka\'s ack and marking the period done: the next one writes the same events, same ids', async t => {
  const r = redis(t)
  const prefix = `usage-unit-${randomBytes(4).toString('hex')}:`
  const store = new UsageStore(r, prefix)
  const start = periodOf(Date.now() - 3 * PERIOD_MS, PERIOD_MS)
  await store.flush([
    { application: 'app_a', product: 'market', amounts: { delivered: 40, deliveredBytes: 4000, published: 3, connectionMs: 90_000 } },
    { application: 'app_b', product: 'market', amounts: { delivered: 7, 'refused:RATE_LIMITED': 2 } }
  ], start, periodOf(Date.now(), PERIOD_MS))

  const first = recorder()
  // the first node: Kafka acks, then it dies before Redis hears the period is done
  const dying = new UsageStore(r, prefix)
  dying.emitted = async () => { throw new Error('SIGKILL') }
  const node1 = new UsageEmitter({ store: dying, kafka: first.kafka, topic: 'x', periodMs: PERIOD_MS, graceMs: 0, lockMs: 200, node: 'n1', log: silent })
  t.equal(await node1.check(Date.now()), 0, 'the dying node never marked it done')
  t.equal(first.written.length, 2, 'but Kafka had its two events')
  // its claim is still held: nobody else writes meanwhile (its unclaim died with it)
  await r.set(`${prefix}emit:${start.start}`, 'n1', 'PX', 200)
  const second = recorder()
  const node2 = new UsageEmitter({ store, kafka: second.kafka, topic: 'x', periodMs: PERIOD_MS, graceMs: 0, lockMs: 60_000, node: 'n2', log: silent })
  t.equal(await node2.check(Date.now()), 0, 'while the claim holds, the period is not written twice at once')
  await new Promise(resolve => setTimeout(resolve, 250))
  t.equal(await node2.check(Date.now()), 1, 'after the claim expired, the next node writes the period')
  const byId = (events: UsageEvent[]) => Object.fromEntries(events.map(e => [e.id, e.data]))
  t.same(byId(second.written), byId(first.written), 'the same ids with the same counts: a billing system keeps one of each')
  t.match(byId(second.written)[first.written.find(e => e.data.application === 'app_a')!.id], { delivered: 40, deliveredBytes: 4000, published: 3, connectionMinutes: 1.5 })
  t.match(second.written.find(e => e.data.application === 'app_b')!.data, { delivered: 7, refused: { RATE_LIMITED: 2 } })
  t.equal(await node2.check(Date.now()), 0, 'done: not written a third time')
})

test('a flush that arrives after its period was sealed counts in the open period: nothing lost, nothing twice', async t => {
  const r = redis(t)
  const prefix = `usage-unit-${randomBytes(4).toString('hex')}:`
  const store = new UsageStore(r, prefix)
  const now = Date.now()
  const closed = periodOf(now - 2 * PERIOD_MS, PERIOD_MS)
  const open = periodOf(now, PERIOD_MS)
  await store.flush([{ application: 'app_a', product: 'p', amounts: { delivered: 5 } }], closed, open)
  const out = recorder()
  const emitter = new UsageEmitter({ store, kafka: out.kafka, topic: 'x', periodMs: PERIOD_MS, graceMs: 0, lockMs: 60_000, node: 'n', log: silent })
  t.equal(await emitter.check(now), 1)
  // a node whose flush of the closed period comes late
  await store.flush([{ application: 'app_a', product: 'p', amounts: { delivered: 3 } }], closed, open)
  t.equal((await store.period(open.start)).get(JSON.stringify(['app_a', 'p']))?.amounts.delivered, 3, 'the late counts are in the open period')
  t.equal((await store.period(closed.start)).get(JSON.stringify(['app_a', 'p']))?.amounts.delivered, 5, 'the emitted period is unchanged')
  t.equal(out.written[0]!.data.delivered, 5)
})

test('the meter: counts by the product of the socket\'s first topic, connection time to the ms, a failed flush given back', async t => {
  let clock = 1_000_000
  const meter = new UsageMeter(() => clock)
  const jwt: Identity = { kind: 'jwt', subject: 'ann', claims: {} }
  const key: Identity = { kind: 'api-key', subject: 'app_1', claims: { product: 'market' } }
  const session = { identity: jwt, connectedAt: clock, product: undefined as string | undefined }
  const usage = meter.opened(session)
  const keyed = meter.opened({ identity: key, connectedAt: clock })
  session.product = 'weather'
  usage.delivered += 10
  usage.deliveredBytes += 1000
  usage.published += 2
  usage.refuse('FORBIDDEN')
  keyed.delivered += 1
  meter.refused(key, 'SLUICE_RATE_TOO_MANY_CONNECTIONS')
  clock += 30_000
  const lines = meter.take()
  t.same(lines.find(l => l.application === 'ann'), { application: 'ann', product: 'weather', amounts: { delivered: 10, deliveredBytes: 1000, published: 2, connectionMs: 30_000, 'refused:FORBIDDEN': 1 } })
  t.same(lines.find(l => l.application === 'app_1')?.amounts, { delivered: 1, connectionMs: 30_000, 'refused:SLUICE_RATE_TOO_MANY_CONNECTIONS': 1 }, 'an API key counts under its own product')
  t.same(meter.take(), [], 'nothing twice: a take right after finds nothing (no time passed)')
  meter.restore(lines)
  clock += 1000
  meter.ended(session)
  const again = meter.take()
  t.same(again.find(l => l.application === 'ann')?.amounts, { delivered: 10, deliveredBytes: 1000, published: 2, connectionMs: 31_000, 'refused:FORBIDDEN': 1 }, 'given back, plus the second until the socket closed')
  t.equal(meter.size, 1, 'the closed session left the meter')
})
