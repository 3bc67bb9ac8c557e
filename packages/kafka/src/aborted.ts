// Read-committed, done whole. A fetch at READ_COMMITTED returns records only up
// to the partition's last stable offset, and with them the transactions aborted
// in that range (producer id, first offset); the client drops their records.
// Kafka's own consumer walks the batches in offset order: a producer becomes
// "aborted" at the first offset of one of its aborted transactions, each of its
// transactional batches is dropped while it is, and its abort marker ends that.
// @platformatic/kafka 2.12.1 filters by one offset range per producer, so with
// two aborted transactions of one producer in a response, or an abort marker
// left for the next response, the earlier records came through: a node that
// read a partition from `earliest` delivered every aborted transaction's
// records but the last (test/stream/transactions.test.ts). What it drops is
// never a committed record (its ranges end at an abort marker), so this runs
// after it, on what it kept.

/** what the filter reads of a record batch (@platformatic/kafka's RecordsBatch) */
export interface TxnBatch {
  firstOffset: bigint
  lastOffsetDelta: number
  /** -1 for a producer that is neither idempotent nor transactional */
  producerId: bigint
  attributes: number
  records: Array<{ key: Buffer | null }>
}

export interface AbortedTransaction {
  producerId: bigint
  firstOffset: bigint
}

// record batch attributes (Kafka's DefaultRecordBatch): bit 4 transactional, bit 5 control
export const TRANSACTIONAL_BATCH = 0x10
export const CONTROL_BATCH = 0x20
// a control record's key: version (int16), type (int16): 0 abort, 1 commit
const ABORT = 0

function isAbortMarker (batch: TxnBatch): boolean {
  const key = batch.records[0]?.key
  return key != null && key.length >= 4 && key.readInt16BE(2) === ABORT
}

/**
 * The data batches of `batches` (one partition's, in offset order) that belong to
 * an aborted transaction, given the response's aborted transactions; undefined
 * when there are none (the common case costs one check).
 */
export function abortedBatches<B extends TxnBatch> (batches: readonly B[] | null | undefined, aborted: readonly AbortedTransaction[] | null | undefined): Set<B> | undefined {
  if (!batches || batches.length === 0 || !aborted || aborted.length === 0) return undefined
  const pending = [...aborted].sort((a, b) => a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0)
  let next = 0
  const open = new Set<bigint>()
  let out: Set<B> | undefined
  for (const batch of batches) {
    if (batch.producerId < 0n) continue
    const last = batch.firstOffset + BigInt(batch.lastOffsetDelta)
    while (next < pending.length && pending[next]!.firstOffset <= last) open.add(pending[next++]!.producerId)
    if ((batch.attributes & CONTROL_BATCH) !== 0) {
      if (isAbortMarker(batch)) open.delete(batch.producerId)
    } else if ((batch.attributes & TRANSACTIONAL_BATCH) !== 0 && open.has(batch.producerId)) {
      (out ??= new Set()).add(batch)
    }
  }
  return out
}
