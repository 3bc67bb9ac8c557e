// What a usage flush writes is what it was given, summed across flushes, for
// many applications at once (2,000 in one script call), for subjects of any
// text (quotes, a backslash, non-ASCII, a lone surrogate: stored as U+FFFD),
// with refusals beside the counts and a count past 2^32 summed exactly. Real
// Redis (the run's REDIS_URL).
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { UsageStore, dayOf, periodOf, type UsageLine } from '../src/index.ts'

const PERIOD_MS = 60_000

test('lines of 2,000 applications in one flush, twice: each application\'s counts summed, odd subjects kept as given', async t => {
  const r = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  t.teardown(() => r.quit())
  const store = new UsageStore(r, `usage-flush-${randomBytes(4).toString('hex')}:`)
  const period = periodOf(Date.now(), PERIOD_MS)
  const odd = ['app "quoted" \\ back', 'appé✓ ünïcode', 'lone \ud800 surrogate']
  const lines: UsageLine[] = [
    ...Array.from({ length: 2000 }, (_, i) => ({ application: `app_${i}`, product: 'market', amounts: { delivered: i + 1, deliveredBytes: 100 * (i + 1), published: i % 3, connectionMs: 1000 } })),
    ...odd.map(application => ({ application, product: 'market', amounts: { delivered: 5, 'refused:RATE_LIMITED': 2, 'refused:QUOTA': 1 } })),
    { application: 'app_0', product: 'weather', amounts: { published: 9_007_199_254_740 } }
  ]
  await store.flush(lines, period, period)
  await store.flush(lines, period, period)
  const stored = await store.period(period.start)
  const find = (application: string, product: string) => [...stored.values()].find(l => l.application === application && l.product === product)
  t.equal(stored.size, 2000 + odd.length + 1, 'a line per application and product')
  t.same(find('app_1999', 'market')?.amounts, { delivered: 4000, deliveredBytes: 400_000, published: 2, connectionMs: 2000 }, 'the last application\'s counts, twice')
  t.same(find('app_0', 'weather')?.amounts, { delivered: 0, deliveredBytes: 0, published: 18_014_398_509_480, connectionMs: 0 }, 'a large count summed exactly')
  for (const application of odd.slice(0, 2)) {
    t.same(find(application, 'market')?.amounts, { delivered: 10, deliveredBytes: 0, published: 0, connectionMs: 0, 'refused:RATE_LIMITED': 4, 'refused:QUOTA': 2 }, `${application}: counts and refusals`)
  }
  t.ok(find('lone \ufffd surrogate', 'market'), 'the lone surrogate stored as U+FFFD')
  // the day's hash and the application's own day have the same counts
  const day = await store.day(dayOf(period.start))
  t.equal(day.find(l => l.application === 'appé✓ ünïcode')?.delivered, 10, 'the day\'s view')
  const [own] = await store.applicationDays(odd[0]!, [dayOf(period.start)])
  t.equal(own?.delivered, 10, 'the application\'s own day')
})
