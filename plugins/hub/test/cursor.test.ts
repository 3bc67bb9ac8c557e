import { test } from 'tap'
import { formatCursor, formatPositions, parseCursor } from '../src/cursor.ts'

test('a cursor round-trips, offsets beyond 2^53 included', async t => {
  const text = 'prices.btc@0:42,1:17;prices.eth@0:9223372036854775807'
  const cursor = parseCursor(text)
  t.equal(cursor.get('prices.btc')?.get(1), 17n)
  t.equal(cursor.get('prices.eth')?.get(0), 9223372036854775807n)
  t.equal(formatCursor(cursor), text)
  t.equal(formatPositions('t', new Map([[2, 5n], [0, 1n]])), 't@0:1,2:5', 'partitions in order')
})

test('a bad cursor is refused with SLUICE_HUB_BAD_CURSOR, never half-read', async t => {
  for (const bad of [
    '', 'prices', 'prices@', 'prices@0', 'prices@0:', 'prices@x:1', 'prices@0:-1', 'prices@0:1:2',
    'bad topic@0:1', 'a@0:1;a@0:2', 'a@0:1,0:2', 'a@0:99999999999999999999', 'a@99999999999:1',
    '..@0:1', 'x'.repeat(70_000)
  ]) {
    t.throws(() => parseCursor(bad), { code: 'SLUICE_HUB_BAD_CURSOR' }, JSON.stringify(bad.slice(0, 40)))
  }
})
