// A fetch batch framed for one protocol format and value encoding: the frames
// end to end in one buffer, so that a socket gets one write per batch (the
// whole buffer, or a view of it from its own position on). The live dispatch
// builds one per (format, encoding) a subscriber uses; the resume window keeps
// them with the records, so a resume is written the same bytes.
import type { ConsumedRecord } from '@sluice/kafka'
import type { ValueEncoding } from '@sluice/policy/access'
import type { FrameFormat } from './frame.ts'

/** A batch's frames for one protocol and encoding, end to end in one buffer. */
export interface FramedBatch {
  joined: Buffer
  /** record i's frame is joined[starts[i], starts[i + 1]); empty when the format sends nothing for it */
  starts: number[]
  /** how many of records [0, i) have a frame: what a write of [starts[a], starts[b]) delivers is framesBefore[b] - framesBefore[a] */
  framesBefore: number[]
}

const EMPTY = Buffer.alloc(0)

export function frameBatch (records: readonly ConsumedRecord[], format: FrameFormat, encoding: ValueEncoding): FramedBatch {
  const count = records.length
  const frames = new Array<Buffer | undefined>(count)
  const starts = new Array<number>(count + 1)
  const framesBefore = new Array<number>(count + 1)
  let length = 0
  let framed = 0
  for (let i = 0; i < count; i++) {
    starts[i] = length
    framesBefore[i] = framed
    const frame = format.frame(records[i]!, encoding)
    frames[i] = frame
    if (frame !== undefined && frame.length > 0) {
      length += frame.length
      framed++
    }
  }
  starts[count] = length
  framesBefore[count] = framed
  if (count === 1) return { joined: frames[0] ?? EMPTY, starts, framesBefore }
  const joined = Buffer.allocUnsafe(length)
  for (let i = 0; i < count; i++) frames[i]?.copy(joined, starts[i])
  return { joined, starts, framesBefore }
}

// A few formats times three encodings: one shared string per pair, not a concatenation per subscription.
const cacheKeys = new Map<string, string>()

/** The key frames are shared under: one per protocol format and value encoding. */
export function cacheKeyOf (format: string, encoding: string): string {
  const joined = `${format}/${encoding}`
  let key = cacheKeys.get(joined)
  if (key === undefined) {
    key = joined
    cacheKeys.set(joined, key)
  }
  return key
}
