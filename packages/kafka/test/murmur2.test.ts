// Our murmur2 must give exactly the hash kafkajs's (and the Java client's) gives, so a
// key keeps its partition; and it must stay cheap on long keys. The seed is printed.
import { test } from 'tap'
import fc from 'fast-check'
import { createRequire } from 'node:module'
import { murmur2 } from '../src/murmur2.ts'

const kafkajsMurmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer | string) => number
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)

test('the same hash as kafkajs for any key, bytes or text', async t => {
  t.comment(`seed ${seed}`)
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), bytes => murmur2(Buffer.from(bytes)) === kafkajsMurmur2(Buffer.from(bytes))), { seed, numRuns: 2_000 })
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 100 }), text => murmur2(text) === kafkajsMurmur2(text)), { seed, numRuns: 2_000 })
  // known values of Kafka's Utils.murmur2 tests (the Java client), as kafkajs's own tests have them
  t.equal(murmur2(''), kafkajsMurmur2(''))
  t.equal(murmur2('21'), -973932308)
  t.equal(murmur2('foobar'), -790332482)
  t.equal(murmur2('a-little-bit-long-string'), -985981536)
  t.equal(murmur2('a-little-bit-longer-string'), -1486304829)
  t.equal(murmur2('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'), -58897971)
})

test('a 300,000-byte key hashes in milliseconds, not seconds', async t => {
  const started = process.hrtime.bigint()
  murmur2('x'.repeat(300_000))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  // kafkajs's took 14.6 s here; a bound with room for a loaded machine
  t.ok(ms < 500, `${ms.toFixed(1)} ms`)
})
