// Session ids come from a pool the CSPRNG fills 256 at a time (session-id.ts):
// every id is 32 hex characters, none repeats across many refills, and the
// bits show no position stuck at a value (a pool reused without refilling, or
// ids cut at the wrong place, would).
import { test } from 'tap'
import { sessionId } from '../src/session-id.ts'

test('session ids: 128 bits as hex, each handed out once, across pool refills', async t => {
  const count = 256 * 40 + 7
  const ids = Array.from({ length: count }, () => sessionId())
  t.ok(ids.every(id => /^[0-9a-f]{32}$/.test(id)), '32 hex characters each')
  t.equal(new Set(ids).size, count, `${count} ids, all distinct`)
  // each of the 128 bits is set in about half the ids: 10,247 draws put a fair bit within 45-55 %
  let skewed = 0
  for (let bit = 0; bit < 128; bit++) {
    const digit = Math.floor(bit / 4)
    const mask = 1 << (bit % 4)
    const set = ids.reduce((n, id) => n + ((parseInt(id[digit]!, 16) & mask) !== 0 ? 1 : 0), 0)
    if (set < count * 0.45 || set > count * 0.55) skewed++
  }
  t.equal(skewed, 0, 'no bit position far from half set')
})
