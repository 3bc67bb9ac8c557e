// The resume cursor is client input (a query parameter and a frame field): its
// parser is fuzzed here. The seed is printed; FUZZ_SEED=<seed> replays it.
import { test } from 'tap'
import fc from 'fast-check'
import { formatPositions, parseCursor } from '../src/cursor.ts'

const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)

// Kafka refuses '.' and '..' as names
const topic = fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/).filter(name => name !== '.' && name !== '..')
const positions = fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.bigInt({ min: 0n, max: 2n ** 63n - 1n })), { minLength: 1, maxLength: 20, selector: ([p]) => p })

test('any cursor the gateway writes parses back to the same positions', async t => {
  t.comment(`seed ${seed}`)
  fc.assert(fc.property(fc.uniqueArray(fc.tuple(topic, positions), { minLength: 1, maxLength: 5, selector: ([name]) => name }), topics => {
    const text = topics.map(([name, pairs]) => formatPositions(name, new Map(pairs))).join(';')
    const parsed = parseCursor(text)
    return topics.every(([name, pairs]) => pairs.every(([p, o]) => parsed.get(name)?.get(p) === o)) && parsed.size === topics.length
  }), { seed, numRuns: 500 })
  t.pass('round trip')
})

test('anything else is refused with SLUICE_HUB_BAD_CURSOR, never another error', async t => {
  t.comment(`seed ${seed}`)
  const noise = fc.string({ unit: fc.constantFrom('a', '.', '@', ':', ',', ';', '0', '9', '-', '1', ' ', '\u00e9', '\ud800', '\n'), maxLength: 200 })
  fc.assert(fc.property(fc.oneof(noise, fc.string({ maxLength: 300 })), text => {
    try {
      parseCursor(text)
      return true
    } catch (err) {
      return (err as { code?: string }).code === 'SLUICE_HUB_BAD_CURSOR'
    }
  }), { seed, numRuns: 5_000 })
  t.pass('only BAD_CURSOR')
  t.throws(() => parseCursor('t@0:' + '9'.repeat(30)), { code: 'SLUICE_HUB_BAD_CURSOR' }, 'an offset beyond int64')
  t.throws(() => parseCursor('t@' + '1'.repeat(20) + ':0'), { code: 'SLUICE_HUB_BAD_CURSOR' }, 'a partition beyond int32')
})
