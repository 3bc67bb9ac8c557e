// Resume from memory (issue 14). Each live feed keeps, per partition, the
// records it dispatched lately, with their frames: a resume or `earliest` whose
// gap starts inside that window is written from memory, with no Kafka request
// (a catch-up reader costs at least a fetch round trip, and a consumer group
// join of 3 s on a broker with Kafka's default group settings).
//
// A partition's window covers [start, end), end being the live feed's
// position: it holds every record the live feed dispatched from start on, in
// offset order. Offsets the live feed never saw (transaction markers,
// compacted records) are not records, so a window is contiguous even where
// offsets skip, exactly as the live feed is. A read from inside the window
// returns exactly the records from there to the live position, or says the
// window does not cover it, never part of it.
//
// Appends are whole fetch batches ("chunks"), kept packed (their bytes in one
// buffer of their own, the rest in typed arrays: PackedRecords) with the
// frames the live dispatch already built for them (copied only when they would
// keep a much larger buffer alive, see PIN_SLACK). A format and encoding no
// live socket used is framed on the first read that needs it, from records
// built again from the packed ones, and kept, so a burst of resumes frames
// each record once per format and encoding, as the live dispatch does.
//
// Bounds, all by whole chunk and oldest first: per topic, bytes (records and
// frames, all partitions) and age (since the live feed dispatched the batch);
// per node, one byte budget shared by every topic's window. Every append goes
// to the end of one node-wide queue in arrival order, so the oldest chunk on the
// node is at its head, and it is also the oldest of its partition: over the
// budget, the node evicts from the head, whichever topic it belongs to. Chunks
// evicted otherwise (a topic's own bounds) are skipped there, and the queue is
// compacted once they are half of it, so it costs O(1) amortized per chunk.
import { gatewayDefaults } from '@sluice/config/gateway'
import type { ConsumedRecord } from '@sluice/kafka'
import type { ValueEncoding } from '@sluice/policy/access'
import type { ResumeWindowDocument } from '@sluice/policy/schema'
import type { FrameFormat } from './frame.ts'
import { cacheKeyOf, frameBatch, type FramedBatch } from './framed-batch.ts'

/** How much of a topic's recent records the node keeps. */
export interface WindowBounds {
  /** bytes of records and their frames, over all partitions of the topic; 0 keeps none */
  maxBytes: number
  /** how long a batch stays after the live feed dispatched it */
  maxAgeMs: number
}

/** stream.resumeWindowBytes and stream.resumeWindowMs: the gateway's schema (packages/config/src/gateway.ts) gives their reasons. */
export const DEFAULT_WINDOW_BOUNDS: Readonly<WindowBounds> = { maxBytes: gatewayDefaults.stream.resumeWindowBytes, maxAgeMs: gatewayDefaults.stream.resumeWindowMs }

/** stream.resumeWindowNodeBytes, as the schema gives it with its reason. */
export const DEFAULT_NODE_WINDOW_BYTES = gatewayDefaults.stream.resumeWindowNodeBytes

// What the window holds beyond the records' bytes and frames, measured with bench/window-memory.ts
// (200,000 records of 66 bytes, V8's heap and array buffers after full GCs): 752, 153 and 126 bytes
// a record in batches of 1, 20 and 200, which fits a chunk costing 630 and a record 57: its index
// entry (INDEX_BYTES, counted with the buffer's length) and 33 more, its BigInt offset with its slot.
// (Before records were packed: 944, 429 and 405, with 440 counted a record and 160 a chunk.)
const RECORD_OVERHEAD = 36
// a chunk: its object, its frames map, its offsets array, its buffer (a Buffer and its ArrayBuffer) and its place in the queues
const CHUNK_OVERHEAD = 630
// a header's name or an odd timestamp kept aside: the string's header and its entries (a three-element
// array, a map's slot). An estimate, not measured: bench/window-memory.ts's records have neither
const ASIDE_OVERHEAD = 64
// per record of a framed batch: its entries in starts and framesBefore
const FRAME_INDEX_BYTES = 16
// per framed batch: its object, its two arrays, its buffer's view and its entry in the chunk's map (measured
// with bench/window-memory.ts: batches of 1 held 1,287 bytes a record with native frames, 752 without; the
// window counted 267 fewer than it held before this was counted, and 2-9 more or fewer in batches of 20 and 200)
const FRAMED_OVERHEAD = 270
// Frames under 32 KiB are views of Node's allocation pool (64 KiB slabs in Node 24). Kept for a
// minute, a few frames of a quiet topic would keep whole slabs alive, far past what the window
// counts: frames that keep alive more than twice their size, and over 4 KiB more, are copied into the
// buffer the batch's records are packed into, after them (one allocation and one copy per batch). A
// batch's frames that are most of their buffer are kept as they came. (Records are always copied: Packed.)
const PIN_SLACK = 4096

/**
 * Where each topic's bounds come from: the products that serve it (a product's
 * `resume` in the policy; `fastify.policy` is one), and when they change.
 */
export interface ProductWindows {
  /** the `resume` of every product whose topics include `topic`, `{}` for one that sets none; empty when no product serves it */
  resumeWindows (topic: string): readonly ResumeWindowDocument[]
  /** called after each change of the products; returns the way to stop listening */
  onChange (listener: () => void): () => void
}

/**
 * A topic's bounds from the products that serve it: the largest bytes and the
 * longest age among them, each product's unset bound being the node's default;
 * the node's defaults when no product serves the topic. The largest, because
 * the window is one per topic and node, shared by every product's sockets: a
 * product that keeps less (or none, 0) gives its own sockets no more than any
 * other's, and never takes from those of a product that keeps more.
 */
export function boundsOf (products: readonly ResumeWindowDocument[], defaults: Readonly<WindowBounds>): WindowBounds {
  if (products.length === 0) return { ...defaults }
  let maxBytes = 0
  let maxAgeMs = 0
  for (const { windowBytes, windowMs } of products) {
    maxBytes = Math.max(maxBytes, windowBytes ?? defaults.maxBytes)
    maxAgeMs = Math.max(maxAgeMs, windowMs ?? defaults.maxAgeMs)
  }
  return { maxBytes, maxAgeMs }
}

/** Records [first, offsets.length) of one batch, framed for one format and encoding: what a read returns, batch by batch. */
export interface WindowSlice {
  framed: FramedBatch
  offsets: readonly bigint[]
  /** index in the batch of the slice's first record */
  first: number
}

export interface WindowRead {
  /** the records from the offset read to the live position, in order; empty when there is none */
  slices: WindowSlice[]
  /** the offset after the last record: the live feed's position on the partition */
  end: bigint
}

/** The bytes of a slice, end to end, and how many frames they hold. */
export function sliceFrames (slice: WindowSlice): { bytes: Buffer, frames: number } {
  const { framed, first } = slice
  const count = slice.offsets.length
  const from = framed.starts[first]!
  const bytes = from === 0 ? framed.joined : framed.joined.subarray(from, framed.starts[count])
  return { bytes, frames: framed.framesBefore[count]! - framed.framesBefore[first]! }
}

/**
 * Records [first, count) of a batch, packed. The records the reader hands over are an object each,
 * with two views of the fetch response, two strings and a BigInt: ~340 bytes of heap beyond the
 * values, and the response they are views of stays alive with them (bench/window-memory.ts). Packed,
 * a batch is one buffer of its own (allocated outside Node's pool: it pins nothing): first an index
 * of INDEX_BYTES a record (its key's start and length, -1 for none, the same for its value, and its
 * timestamp), then the keys, values and header values end to end. Header names, and timestamps that
 * are not an integer of at most 15 digits, are kept aside (`extras`): Kafka's records have few of the
 * first, and none of the second before the year 33658. The topic, partition and offsets are the chunk's.
 */
interface Packed {
  bytes: Buffer
  extras: PackedExtras | undefined
}

interface PackedExtras {
  /** the headers of the records that have any, by index: each name, and its value's start and length in the buffer */
  headers: Map<number, Array<[string, number, number]>>
  /** timestamps that are not an integer of at most 15 digits, as they came */
  odd: Map<number, string>
}

// per record: key start, key length, value start, value length (4 int32s), timestamp (a float64, 8-aligned)
const INDEX_BYTES = 24
const INDEX_INTS = INDEX_BYTES / 4
const INDEX_DOUBLES = INDEX_BYTES / 8
// a decimal that a float64 holds exactly and String() writes back the same: an integer of at most 15 digits,
// no leading zero, no "-0" (a millisecond timestamp has 13)
const EXACT_DECIMAL = /^(?:0|-?[1-9][0-9]{0,14})$/

/** Packs records [first, count) into a buffer that has `room` more bytes after them (for the batch's frames), returned apart. */
function pack (records: readonly ConsumedRecord[], first: number, room: number): { packed: Packed, room: Buffer } {
  const count = records.length - first
  let size = INDEX_BYTES * count
  for (let i = first; i < records.length; i++) {
    const record = records[i]!
    size += (record.key?.length ?? 0) + (record.value?.length ?? 0)
    const headers = record.headers
    for (const name in headers) size += headers[name]!.length
  }
  // a buffer of its own starts its ArrayBuffer: the index is aligned for its typed views
  const whole = Buffer.allocUnsafeSlow(size + room)
  const ints = new Int32Array(whole.buffer, 0, INDEX_INTS * count)
  const doubles = new Float64Array(whole.buffer, 0, INDEX_DOUBLES * count)
  let extras: PackedExtras | undefined
  const aside = (): PackedExtras => (extras ??= { headers: new Map(), odd: new Map() })
  let at = INDEX_BYTES * count
  for (let i = 0; i < count; i++) {
    const record = records[first + i]!
    const { key, value } = record
    const index = INDEX_INTS * i
    ints[index] = at
    if (key === null) ints[index + 1] = -1
    else {
      ints[index + 1] = key.length
      whole.set(key, at)
      at += key.length
    }
    ints[index + 2] = at
    if (value === null) ints[index + 3] = -1
    else {
      ints[index + 3] = value.length
      whole.set(value, at)
      at += value.length
    }
    const timestamp = record.timestamp
    if (EXACT_DECIMAL.test(timestamp)) doubles[INDEX_DOUBLES * i + 2] = Number(timestamp)
    else aside().odd.set(i, timestamp)
    let named: Array<[string, number, number]> | undefined
    for (const name in record.headers) {
      const header = record.headers[name]!
      ;(named ??= []).push([name, at, header.length])
      whole.set(header, at)
      at += header.length
    }
    if (named) aside().headers.set(i, named)
  }
  return { packed: { bytes: room === 0 ? whole : whole.subarray(0, size), extras }, room: whole.subarray(size) }
}

/** The records again, their bytes views of the packed buffer: for framing a format no live socket used. */
function unpack ({ bytes, extras }: Packed, topic: string, partition: number, offsets: readonly bigint[]): ConsumedRecord[] {
  const count = offsets.length
  const ints = new Int32Array(bytes.buffer, bytes.byteOffset, INDEX_INTS * count)
  const doubles = new Float64Array(bytes.buffer, bytes.byteOffset, INDEX_DOUBLES * count)
  const view = (index: number): Buffer | null => ints[index + 1]! < 0 ? null : bytes.subarray(ints[index]!, ints[index]! + ints[index + 1]!)
  const out = new Array<ConsumedRecord>(count)
  for (let i = 0; i < count; i++) {
    const index = INDEX_INTS * i
    const headers: ConsumedRecord['headers'] = {}
    for (const [name, start, length] of extras?.headers.get(i) ?? []) headers[name] = bytes.subarray(start, start + length)
    out[i] = {
      topic,
      partition,
      offset: String(offsets[i]),
      timestamp: extras?.odd.get(i) ?? String(doubles[INDEX_DOUBLES * i + 2]),
      key: view(index),
      value: view(index + 2),
      headers
    }
  }
  return out
}

/** What a chunk's packed records weigh: the buffer, each record's share beyond it, what is kept aside. */
function packedBytes ({ bytes, extras }: Packed, count: number): number {
  let weight = bytes.length + RECORD_OVERHEAD * count
  if (extras) {
    for (const named of extras.headers.values()) for (const [name] of named) weight += name.length + ASIDE_OVERHEAD
    for (const text of extras.odd.values()) weight += text.length + ASIDE_OVERHEAD
  }
  return weight
}

function framedBytes (framed: FramedBatch, records: number): number {
  return FRAMED_OVERHEAD + framed.joined.length + FRAME_INDEX_BYTES * records
}

/** Copies bytes one after another into `buffer` (a batch's own, allocated outside Node's pool): one allocation per batch. */
function store (buffer: Buffer): (bytes: Buffer) => Buffer {
  let at = 0
  return bytes => {
    bytes.copy(buffer, at)
    const view = buffer.subarray(at, at + bytes.length)
    at += bytes.length
    return view
  }
}

/** Whether bytes keep alive much more than themselves. */
function pins (bytes: Buffer): boolean {
  return bytes.buffer.byteLength > 2 * bytes.length + PIN_SLACK
}

/** The frames, in a buffer of their own when theirs keeps much more alive (a pool slab, a larger buffer). */
function ownFrames (framed: FramedBatch, own?: (bytes: Buffer) => Buffer): FramedBatch {
  if (!pins(framed.joined)) return framed
  return { joined: (own ?? store(Buffer.allocUnsafeSlow(framed.joined.length)))(framed.joined), starts: framed.starts, framesBefore: framed.framesBefore }
}

class Chunk {
  readonly ring: Ring
  packed: Packed
  offsets: readonly bigint[]
  /** the offset after the chunk's last record */
  readonly end: bigint
  /** when it was appended, on the budget's clock */
  readonly at: number
  /** the node-wide append order */
  readonly seq: number
  frames: Map<string, FramedBatch>
  bytes = CHUNK_OVERHEAD
  evicted = false

  constructor (ring: Ring, packed: Packed, offsets: readonly bigint[], frames: Map<string, FramedBatch>, at: number, seq: number) {
    this.ring = ring
    this.packed = packed
    this.offsets = offsets
    this.end = offsets[offsets.length - 1]! + 1n
    this.frames = frames
    this.at = at
    this.seq = seq
  }
}

/** One partition's chunks, oldest first. */
class Ring {
  readonly window: TopicWindow
  readonly partition: number
  readonly chunks: Array<Chunk | undefined> = []
  head = 0
  start: bigint
  end: bigint

  constructor (window: TopicWindow, partition: number, at: bigint) {
    this.window = window
    this.partition = partition
    this.start = at
    this.end = at
  }

  get oldest (): Chunk | undefined {
    return this.chunks[this.head]
  }

  get size (): number {
    return this.chunks.length - this.head
  }

  shift (): Chunk {
    const chunk = this.chunks[this.head]!
    this.chunks[this.head++] = undefined
    // the array is cut when its dead front is over half of it: O(1) amortized
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks.splice(0, this.head)
      this.head = 0
    }
    return chunk
  }
}

/** Why chunks left windows, counted in chunks. */
export interface WindowEvictions {
  age: number
  topicBytes: number
  nodeBytes: number
}

export interface WindowBudgetOptions {
  /** bytes all windows of the node may hold together; 0 keeps none */
  maxBytes?: number
  /** milliseconds, monotonic; tests pass their own */
  now?: () => number
}

/** The node-wide memory budget of every topic's window, and the windows' clock. */
export class WindowBudget {
  readonly maxBytes: number
  readonly now: () => number
  readonly evictions: WindowEvictions = { age: 0, topicBytes: 0, nodeBytes: 0 }
  #bytes = 0
  #seq = 0
  /** every chunk held, in append order; evicted ones are skipped when they reach the head */
  #queue: Array<Chunk | undefined> = []
  #head = 0
  #dead = 0
  readonly #windows = new Set<TopicWindow>()
  // The windows that hold records: the age sweep visits only these. Visiting every window each second
  // was 6 % of a node's busy time with 1,000 idle topics and their empty windows (bench/idle-topics.ts --profile)
  readonly #holding = new Set<TopicWindow>()

  constructor (options: WindowBudgetOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_NODE_WINDOW_BYTES
    this.now = options.now ?? (() => performance.now())
  }

  /** Bytes held by every window of the node. */
  get bytes (): number {
    return this.#bytes
  }

  /** Chunks held by every window of the node. */
  get chunks (): number {
    return this.#queue.length - this.#head - this.#dead
  }

  /** The open window of a topic, if its feed runs. */
  of (topic: string): TopicWindow | undefined {
    for (const window of this.#windows) if (window.topic === topic) return window
    return undefined
  }

  /** A window for a topic's live feed; close() it when the feed stops. */
  window (topic: string, bounds: WindowBounds = DEFAULT_WINDOW_BOUNDS): TopicWindow {
    const window = new TopicWindow(this, topic, bounds)
    this.#windows.add(window)
    return window
  }

  /** Drops what is past its age in every window: a topic gone quiet keeps nothing past its maxAgeMs for longer than the sweep period. */
  sweep (): void {
    for (const window of this.#holding) window.expire()
  }

  /** @internal a window began to hold records (true) or holds none any more (false) */
  holds (window: TopicWindow, holding: boolean): void {
    if (holding) this.#holding.add(window)
    else this.#holding.delete(window)
  }

  /** @internal */
  nextSeq (): number {
    return this.#seq++
  }

  /** @internal */
  added (chunk: Chunk): void {
    this.#queue.push(chunk)
  }

  /** @internal */
  grew (bytes: number): void {
    this.#bytes += bytes
  }

  /** @internal a chunk left its window for its own topic's reasons: its queue entry is now dead */
  released (chunk: Chunk): void {
    this.#bytes -= chunk.bytes
    this.#dead++
    if (this.#dead > 64 && this.#dead * 2 > this.#queue.length - this.#head) {
      this.#queue = this.#queue.slice(this.#head).filter(c => c !== undefined && !c.evicted)
      this.#head = 0
      this.#dead = 0
    }
  }

  /** @internal over the budget: the node's oldest chunks go first, whatever their topic */
  trim (): void {
    while (this.#bytes > this.maxBytes && this.#head < this.#queue.length) {
      const chunk = this.#queue[this.#head]!
      this.#queue[this.#head++] = undefined
      if (chunk.evicted) {
        this.#dead--
        continue
      }
      // the node's oldest chunk is its partition's oldest: appends come in order on both
      this.#bytes -= chunk.bytes
      this.evictions.nodeBytes++
      chunk.ring.window.drop(chunk)
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head)
      this.#head = 0
    }
  }

  /** @internal */
  closed (window: TopicWindow): void {
    this.#windows.delete(window)
    this.#holding.delete(window)
  }
}

/** One topic's window: per partition, the records its live feed dispatched lately. */
export class TopicWindow {
  readonly topic: string
  #bounds: Readonly<WindowBounds>
  readonly #budget: WindowBudget
  readonly #rings = new Map<number, Ring>()
  #bytes = 0
  #closed = false

  constructor (budget: WindowBudget, topic: string, bounds: WindowBounds) {
    this.#budget = budget
    this.topic = topic
    this.#bounds = { ...bounds }
  }

  get bounds (): Readonly<WindowBounds> {
    return this.#bounds
  }

  /**
   * New bounds (a policy reload changed the products that serve the topic).
   * Smaller ones evict at once what no longer fits, oldest first; larger ones
   * keep what is there and let the next batches stay longer.
   */
  resize (bounds: WindowBounds): void {
    this.#bounds = { ...bounds }
    if (this.#closed) return
    this.expire()
    this.#trim()
  }

  /** Bytes held by this topic's window. */
  get bytes (): number {
    return this.#bytes
  }

  /** The first offset the window covers on a partition (undefined: it knows nothing of it yet). */
  start (partition: number): bigint | undefined {
    const ring = this.#rings.get(partition)
    if (ring) this.#expire(ring, this.#budget.now())
    return ring?.start
  }

  /** The live position the window reaches on a partition. */
  end (partition: number): bigint | undefined {
    return this.#rings.get(partition)?.end
  }

  /**
   * The live feed is at `at` on a partition and has dispatched nothing yet: a
   * resume from there is covered (with nothing to replay) before the first
   * batch, even one that starts past it. A partition already known keeps its window.
   */
  open (partition: number, at: bigint): void {
    if (this.#closed || this.#rings.has(partition)) return
    this.#rings.set(partition, new Ring(this, partition, at))
  }

  /**
   * A batch the live feed dispatched on a partition, in offset order. Records
   * below the window's end (a consumer that repeated what it had) are not added
   * twice. `offsets`: the records' offsets as BigInts, when the caller has
   * them; `framed`: frames already built for the batch, by cache key, kept.
   */
  append (partition: number, records: readonly ConsumedRecord[], offsets?: readonly bigint[], framed?: Map<string, FramedBatch>): void {
    const count = records.length
    if (this.#closed || count === 0) return
    if (offsets === undefined) {
      const parsed = new Array<bigint>(count)
      for (let i = 0; i < count; i++) parsed[i] = BigInt(records[i]!.offset)
      offsets = parsed
    }
    let ring = this.#rings.get(partition)
    if (!ring) {
      ring = new Ring(this, partition, offsets[0]!)
      this.#rings.set(partition, ring)
    }
    if (this.#bounds.maxBytes === 0 || this.#bounds.maxAgeMs === 0) {
      // a window that keeps none covers the live position alone: as if the batch came and went, without copying or sizing it
      const end = offsets[count - 1]! + 1n
      if (end > ring.end) ring.start = ring.end = end
      return
    }
    let first = 0
    while (first < count && offsets[first]! < ring.end) first++
    if (first === count) return
    let frames = framed ?? new Map<string, FramedBatch>()
    // a batch that repeated records keeps only the new ones, and frames built for all of them no longer line up
    if (first > 0) {
      frames = new Map()
      offsets = offsets.slice(first)
    }
    // frames that would pin a larger buffer are copied into the records' buffer, after them: one allocation a batch
    let room = 0
    for (const built of frames.values()) if (pins(built.joined)) room += built.joined.length
    const { packed, room: rest } = pack(records, first, room)
    if (room > 0) {
      const own = store(rest)
      for (const [key, built] of frames) frames.set(key, ownFrames(built, own))
    }
    const budget = this.#budget
    const now = budget.now()
    const chunk = new Chunk(ring, packed, offsets, frames, now, budget.nextSeq())
    budget.added(chunk)
    let bytes = chunk.bytes + packedBytes(packed, offsets.length)
    for (const built of chunk.frames.values()) bytes += framedBytes(built, offsets.length)
    chunk.bytes = bytes
    ring.chunks.push(chunk)
    ring.end = chunk.end
    if (this.#bytes === 0) budget.holds(this, true)
    this.#bytes += bytes
    budget.grew(bytes)
    this.#expire(ring, now)
    this.#trim()
    budget.trim()
  }

  /** Whether a read from `from` on a partition is served from memory: start <= from <= end. */
  covers (partition: number, from: bigint): boolean {
    const ring = this.#rings.get(partition)
    if (!ring) return false
    this.#expire(ring, this.#budget.now())
    return from >= ring.start && from <= ring.end
  }

  /**
   * The records of a partition from `from` to the live position, framed for
   * `format` and `encoding` (built now for a batch that has no such frames yet,
   * then kept); undefined when the window does not cover `from`.
   */
  read (partition: number, from: bigint, format: FrameFormat, encoding: ValueEncoding): WindowRead | undefined {
    if (!this.covers(partition, from)) return undefined
    const ring = this.#rings.get(partition)!
    const slices: WindowSlice[] = []
    const chunks = ring.chunks
    // the first chunk that ends past `from`
    let lo = ring.head
    let hi = chunks.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (chunks[mid]!.end <= from) lo = mid + 1
      else hi = mid
    }
    const key = cacheKeyOf(format.key, encoding)
    let grew = 0
    for (let c = lo; c < chunks.length; c++) {
      const chunk = chunks[c]!
      const offsets = chunk.offsets
      let first = 0
      if (c === lo && offsets[first]! < from) {
        let a = first
        let b = offsets.length
        while (a < b) {
          const mid = (a + b) >>> 1
          if (offsets[mid]! < from) a = mid + 1
          else b = mid
        }
        first = a
      }
      let framed = chunk.frames.get(key)
      if (!framed) {
        framed = ownFrames(frameBatch(unpack(chunk.packed, this.topic, partition, offsets), format, encoding))
        chunk.frames.set(key, framed)
        const bytes = framedBytes(framed, offsets.length)
        chunk.bytes += bytes
        grew += bytes
      }
      slices.push({ framed, offsets, first })
    }
    const end = ring.end
    if (grew > 0) {
      // the frames built count from now on; what was read stays valid for the caller whatever goes
      this.#bytes += grew
      this.#budget.grew(grew)
      this.#trim()
      this.#budget.trim()
    }
    return { slices, end }
  }

  /** Drops what is past its age on every partition. */
  expire (): void {
    const now = this.#budget.now()
    for (const ring of this.#rings.values()) this.#expire(ring, now)
  }

  /**
   * Starts a partition's window over at `at`, empty: what it held goes. For a backfill that did not
   * reach the live feed's start (hub.ts), before the live feed appends anything to the partition.
   */
  restart (partition: number, at: bigint): void {
    const ring = this.#rings.get(partition)
    if (ring) while (ring.size > 0) this.#evict(ring)
    this.#rings.delete(partition)
    this.open(partition, at)
  }

  /** The feed stopped: everything goes. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    for (const ring of this.#rings.values()) while (ring.size > 0) this.#evict(ring)
    this.#rings.clear()
    this.#budget.closed(this)
  }

  /** @internal the budget evicted the oldest chunk of a partition (and counted its bytes) */
  drop (chunk: Chunk): void {
    const ring = chunk.ring
    if (ring.shift() !== chunk) throw new Error('the node evicted a chunk that is not its partition\'s oldest')
    ring.start = chunk.end
    this.#bytes -= chunk.bytes
    if (this.#bytes === 0) this.#budget.holds(this, false)
    chunk.evicted = true
    release(chunk)
  }

  #expire (ring: Ring, now: number): void {
    const oldest = now - this.#bounds.maxAgeMs
    for (let chunk = ring.oldest; chunk !== undefined && chunk.at <= oldest; chunk = ring.oldest) {
      this.#budget.evictions.age++
      this.#evict(ring)
    }
  }

  /** Over the topic's bytes: its oldest chunk goes, whichever partition holds it. */
  #trim (): void {
    while (this.#bytes > this.#bounds.maxBytes) {
      let oldest: Ring | undefined
      for (const ring of this.#rings.values()) {
        const chunk = ring.oldest
        if (chunk && (!oldest || chunk.seq < oldest.oldest!.seq)) oldest = ring
      }
      if (!oldest) return
      this.#budget.evictions.topicBytes++
      this.#evict(oldest)
    }
  }

  #evict (ring: Ring): void {
    const chunk = ring.shift()
    ring.start = chunk.end
    this.#bytes -= chunk.bytes
    if (this.#bytes === 0) this.#budget.holds(this, false)
    chunk.evicted = true
    this.#budget.released(chunk)
    release(chunk)
  }
}

// an evicted chunk may wait in the node's queue until it reaches the head: it holds nothing meanwhile
const NO_RECORDS: Packed = { bytes: Buffer.alloc(0), extras: undefined }
const NO_OFFSETS: readonly bigint[] = []
const NO_FRAMES = new Map<string, FramedBatch>()
function release (chunk: Chunk): void {
  chunk.packed = NO_RECORDS
  chunk.offsets = NO_OFFSETS
  chunk.frames = NO_FRAMES
}
