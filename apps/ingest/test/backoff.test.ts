import { test } from 'tap'
import { backoffDelay } from '../src/backoff.ts'

const options = { baseMs: 100, maxMs: 1000, jitter: 0.25 }

test('without randomness the delay doubles from the base up to the max', async t => {
  const delays = [1, 2, 3, 4, 5, 6].map(n => backoffDelay(n, options, () => 0))
  t.same(delays, [100, 200, 400, 800, 1000, 1000])
})

test('jitter takes up to its share off, so the max is a true bound', async t => {
  t.equal(backoffDelay(1, options, () => 1), 75)
  t.equal(backoffDelay(10, options, () => 1), 750)
  t.equal(backoffDelay(10, options, () => 0.5), 875)
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(1 + (i % 8), options)
    t.ok(d >= 75 && d <= 1000, `delay ${d} within bounds`, { diagnostic: false })
  }
})

test('huge attempt numbers stay finite', async t => {
  t.equal(backoffDelay(10_000, options, () => 0), 1000)
})
