import { test } from 'tap'
import { SequenceTracker, sequenceOf } from '../src/sequence.ts'

test('gaps and the numbers they skip are counted', async t => {
  const tracker = new SequenceTracker()
  for (const n of [1, 2, 3, 5, 6, 9, 10]) tracker.observe(n)
  t.same(tracker.stats, { gaps: 2, missing: 3, regressions: 0, invalid: 0 })
})

test('a restart or replay is a regression, not a gap, and rebases', async t => {
  const tracker = new SequenceTracker()
  for (const n of [100, 101, 1, 2, 2, 3]) tracker.observe(n)
  t.same(tracker.stats, { gaps: 0, missing: 0, regressions: 2, invalid: 0 })
  t.equal(tracker.last, 3)
})

test('digit strings count; other values are invalid and do not move the sequence', async t => {
  t.equal(sequenceOf('42'), 42)
  t.equal(sequenceOf(7), 7)
  t.equal(sequenceOf(1.5), undefined)
  t.equal(sequenceOf('12345678901234567'), undefined, 'beyond 2^53 cannot be compared exactly')
  t.equal(sequenceOf(null), undefined)
  const tracker = new SequenceTracker()
  for (const n of [1, 'x', undefined, '2', 4]) tracker.observe(n)
  t.same(tracker.stats, { gaps: 1, missing: 1, regressions: 0, invalid: 2 })
})
