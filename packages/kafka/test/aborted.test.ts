// Read-committed filtering (src/aborted.ts) against a model of a partition's log: transactional
// producers interleave, commit and abort; an idempotent and a plain producer write between them.
// A fetch response is any run of whole batches, starting at any offset inside its first batch, with
// the aborted transactions the broker lists for that range, in any order. Exactly the records of
// aborted transactions are dropped. The seed is printed.
import { test } from 'tap'
import fc from 'fast-check'
import { abortedBatches, CONTROL_BATCH, TRANSACTIONAL_BATCH, type AbortedTransaction, type TxnBatch } from '../src/aborted.ts'

const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)

interface Batch extends TxnBatch {
  /** the model's truth: this data batch's transaction was aborted */
  aborted: boolean
}

interface Txn { producerId: bigint, firstOffset: bigint, batches: Batch[] }

const marker = (type: 0 | 1): Array<{ key: Buffer }> => [{ key: Buffer.from([0, 0, 0, type]) }]
const data = (count: number): Array<{ key: null }> => Array.from({ length: count }, () => ({ key: null }))

/** producers 0-2 transactional (ids 100-102), 3 idempotent (id 200), 4 plain (id -1) */
const op = fc.record({ producer: fc.integer({ min: 0, max: 4 }), kind: fc.constantFrom('append', 'append', 'commit', 'abort'), count: fc.integer({ min: 1, max: 3 }) })

function build (ops: Array<{ producer: number, kind: string, count: number }>, endings: boolean[]): { batches: Batch[], aborted: Array<AbortedTransaction & { lastOffset: bigint }> } {
  const batches: Batch[] = []
  const aborted: Array<AbortedTransaction & { lastOffset: bigint }> = []
  const open = new Map<number, Txn>()
  let offset = 0n
  const end = (producer: number, abort: boolean): void => {
    const txn = open.get(producer)
    if (!txn) return
    open.delete(producer)
    for (const b of txn.batches) b.aborted = abort
    batches.push({ firstOffset: offset, lastOffsetDelta: 0, producerId: txn.producerId, attributes: TRANSACTIONAL_BATCH | CONTROL_BATCH, records: marker(abort ? 0 : 1), aborted: false })
    if (abort) aborted.push({ producerId: txn.producerId, firstOffset: txn.firstOffset, lastOffset: offset })
    offset++
  }
  for (const { producer, kind, count } of ops) {
    if (producer <= 2) {
      if (kind === 'append') {
        let txn = open.get(producer)
        if (!txn) open.set(producer, txn = { producerId: BigInt(100 + producer), firstOffset: offset, batches: [] })
        const batch: Batch = { firstOffset: offset, lastOffsetDelta: count - 1, producerId: txn.producerId, attributes: TRANSACTIONAL_BATCH, records: data(count), aborted: false }
        txn.batches.push(batch)
        batches.push(batch)
        offset += BigInt(count)
      } else {
        end(producer, kind === 'abort')
      }
    } else {
      batches.push({ firstOffset: offset, lastOffsetDelta: count - 1, producerId: producer === 3 ? 200n : -1n, attributes: 0, records: data(count), aborted: false })
      offset += BigInt(count)
    }
  }
  // a read-committed fetch never goes past an open transaction: the log's are all ended
  for (let p = 0; p <= 2; p++) end(p, endings[p]!)
  return { batches, aborted }
}

test('exactly the aborted transactions\' batches are dropped, from any fetch offset, in any response', async t => {
  t.comment(`seed ${seed}`)
  let withAborts = 0
  fc.assert(fc.property(
    fc.array(op, { minLength: 1, maxLength: 40 }), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    fc.nat(), fc.nat(), fc.nat(), fc.nat(), fc.boolean(),
    (ops, endings, a, b, into, shuffle, extra) => {
      const { batches, aborted } = build(ops, endings)
      if (batches.length === 0) return true
      const first = a % batches.length
      const last = first + (b % (batches.length - first))
      const response = batches.slice(first, last + 1)
      const head = response[0]!
      const fetchOffset = head.firstOffset + BigInt(into % (head.lastOffsetDelta + 1))
      const responseEnd = response.at(-1)!.firstOffset + BigInt(response.at(-1)!.lastOffsetDelta)
      // the broker lists the aborted transactions that overlap the range it read; one reading
      // further than it returned lists some that start past the response's end, never one that
      // ended before the fetch offset
      let listed = aborted.filter(x => x.lastOffset >= fetchOffset && (x.firstOffset <= responseEnd || extra))
      listed = shuffle % 2 === 0 ? listed : [...listed].reverse()
      if (listed.length > 0) withAborts++
      const dropped = abortedBatches(response, listed.map(({ producerId, firstOffset }) => ({ producerId, firstOffset }))) ?? new Set()
      const expected = new Set(response.filter(x => x.aborted))
      return dropped.size === expected.size && [...expected].every(x => dropped.has(x))
    }), { seed, numRuns: 3_000 })
  t.ok(withAborts > 500, `${withAborts} responses listed aborted transactions`)
})

test('one producer: committed, aborted, committed, aborted in one response', async t => {
  const batches: TxnBatch[] = [
    { firstOffset: 0n, lastOffsetDelta: 1, producerId: 7n, attributes: TRANSACTIONAL_BATCH, records: data(2) },
    { firstOffset: 2n, lastOffsetDelta: 0, producerId: 7n, attributes: TRANSACTIONAL_BATCH | CONTROL_BATCH, records: marker(1) },
    { firstOffset: 3n, lastOffsetDelta: 0, producerId: 7n, attributes: TRANSACTIONAL_BATCH, records: data(1) },
    { firstOffset: 4n, lastOffsetDelta: 0, producerId: 7n, attributes: TRANSACTIONAL_BATCH | CONTROL_BATCH, records: marker(0) },
    { firstOffset: 5n, lastOffsetDelta: 0, producerId: 7n, attributes: TRANSACTIONAL_BATCH, records: data(1) },
    { firstOffset: 6n, lastOffsetDelta: 0, producerId: 7n, attributes: TRANSACTIONAL_BATCH | CONTROL_BATCH, records: marker(1) },
    { firstOffset: 7n, lastOffsetDelta: 2, producerId: 7n, attributes: TRANSACTIONAL_BATCH, records: data(3) },
    { firstOffset: 10n, lastOffsetDelta: 0, producerId: 7n, attributes: TRANSACTIONAL_BATCH | CONTROL_BATCH, records: marker(0) }
  ]
  const dropped = abortedBatches(batches, [{ producerId: 7n, firstOffset: 3n }, { producerId: 7n, firstOffset: 7n }])
  t.same([...dropped ?? []].map(b => b.firstOffset), [3n, 7n], 'both aborted transactions, neither committed one')
  t.equal(abortedBatches(batches, []), undefined, 'no aborted transaction listed: nothing to walk')
  t.equal(abortedBatches(batches, null), undefined)
  // the abort marker comes in the next response: the records are dropped all the same
  t.same([...abortedBatches(batches.slice(0, 3), [{ producerId: 7n, firstOffset: 3n }]) ?? []].map(b => b.firstOffset), [3n])
})
