// The delivery lease against a fake source (pure logic): one refill per
// batch, the next batch asked for at half, a frame larger than what is left
// paid from the next batch, refusals explained once per holder, and unused
// tokens given back when the last socket leaves.
import { test } from 'tap'
import { DeliveryLease, type LeaseGrant, type LeaseSource, type Refusal } from '../src/lease.ts'

function source (batch = { messages: 10, bytes: 1000 }) {
  const asked: Array<{ messages: number, bytes: number }> = []
  const given: Array<{ messages: number, bytes: number, source: string }> = []
  let answer: (messages: number, bytes: number) => LeaseGrant = (messages, bytes) => ({ ok: true, messages, bytes, source: 'redis' })
  let now = 0
  const src: LeaseSource = {
    batch: () => batch,
    now: () => now,
    refill: async (messages, bytes) => { asked.push({ messages, bytes }); return answer(messages, bytes) },
    giveBack: async (messages, bytes, s) => { given.push({ messages, bytes, source: s }) }
  }
  return { src, asked, given, answer: (fn: typeof answer) => { answer = fn }, advance: (ms: number) => { now += ms } }
}

test('one refill per batch, asked for at half, so a steady stream never waits', async t => {
  const s = source()
  const lease = new DeliveryLease(s.src)
  await lease.refill()
  let admitted = 0
  for (let i = 0; i < 100; i++) {
    if (lease.take(10)) admitted++
    // the event loop turns between frames: refills land
    await new Promise(resolve => setImmediate(resolve))
  }
  t.equal(admitted, 100, 'every frame admitted')
  t.ok(s.asked.length <= 21, `${s.asked.length} refills for 100 frames in batches of 10`)
})

test('a burst beyond the lease is refused; no frame is ever admitted without a token', async t => {
  const s = source()
  const lease = new DeliveryLease(s.src)
  await lease.refill()
  let admitted = 0
  for (let i = 0; i < 50; i++) if (lease.take(1)) admitted++
  t.equal(admitted, 10, 'a synchronous burst gets what the lease holds')
  t.equal(lease.refusedFrames, 40)
})

test('bytes: a frame larger than what is left goes through and the debt is paid from the next batch', async t => {
  const s = source({ messages: 10, bytes: 100 })
  const lease = new DeliveryLease(s.src)
  await lease.refill()
  t.ok(lease.take(250), 'one large frame passes on a positive balance')
  t.equal(lease.bytes, -150)
  t.equal(lease.take(1), false, 'nothing more until the debt is paid')
  await lease.refill()
  t.equal(s.asked.at(-1)?.bytes, 250, 'the next refill asks for the debt and a batch')
})

test('a refusal is explained once to each holder; a grant clears it', async t => {
  const s = source()
  const lease = new DeliveryLease(s.src)
  const heard: Refusal[] = []
  const holder = { refused: (r: Refusal) => heard.push(r) }
  lease.holders.add(holder)
  s.answer(() => ({ ok: false, limit: 'dailyQuota', retryAfterMs: 5000 }))
  await lease.refill()
  t.equal(heard.length, 1, 'an empty lease tells its holders at once')
  t.match(heard[0], { limit: 'dailyQuota', retryAfterMs: 5000 })
  t.equal(lease.take(1), false)
  lease.explain(holder)
  t.equal(heard.length, 1, 'once')
  await lease.refill()
  t.equal(s.asked.length, 1, 'no refill before the wait it was given')
  s.advance(5000)
  s.answer((messages, bytes) => ({ ok: true, messages, bytes, source: 'redis' }))
  await lease.refill()
  t.ok(lease.take(1), 'granted again')
  t.equal(lease.refusal, undefined)
})

test('closing gives the unused tokens back to the store that granted them', async t => {
  const s = source()
  const lease = new DeliveryLease(s.src)
  await lease.refill()
  lease.take(100)
  await lease.close()
  t.same(s.given, [{ messages: 9, bytes: 900, source: 'redis' }])
})
