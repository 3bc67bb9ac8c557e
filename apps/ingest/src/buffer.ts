// A feed's bounded in-memory buffer: records wait here between the feed socket
// and Kafka. Bounded by a record count and by bytes, so that neither many tiny
// frames nor a few huge ones can exhaust memory; when full, the overflow policy
// decides which record goes, and every dropped record is counted.

export type OverflowPolicy = 'drop-newest' | 'drop-oldest'

export interface Sized {
  /** what the record costs in memory and on the wire */
  readonly bytes: number
}

export interface BufferOptions {
  capacity: number
  maxBytes: number
  overflow: OverflowPolicy
}

// the ring starts small and doubles up to the capacity: a feed configured for a
// million records does not hold an 8 MB array while it carries ten a second
const INITIAL_SLOTS = 1024

export class FeedBuffer<T extends Sized> {
  readonly capacity: number
  readonly maxBytes: number
  readonly overflow: OverflowPolicy
  /** records this buffer discarded, ever: exact, never sampled */
  dropped = 0
  #ring: Array<T | undefined>
  #head = 0
  #size = 0
  #bytes = 0

  constructor (options: BufferOptions) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) throw new RangeError('capacity must be a positive integer')
    if (!(options.maxBytes > 0)) throw new RangeError('maxBytes must be positive')
    this.capacity = options.capacity
    this.maxBytes = options.maxBytes
    this.overflow = options.overflow
    this.#ring = new Array(Math.min(this.capacity, INITIAL_SLOTS))
  }

  get size (): number {
    return this.#size
  }

  get bytes (): number {
    return this.#bytes
  }

  /** Adds a record; returns how many records this call dropped (the new one, or the oldest ones). */
  push (item: T): number {
    if (item.bytes > this.maxBytes) {
      // fits under no policy: evicting everything would still not make room
      this.dropped++
      return 1
    }
    let dropped = 0
    while (this.#size + 1 > this.capacity || this.#bytes + item.bytes > this.maxBytes) {
      if (this.overflow === 'drop-newest') {
        this.dropped++
        return 1
      }
      this.#shift()
      this.dropped++
      dropped++
    }
    if (this.#size === this.#ring.length) this.#grow()
    this.#ring[(this.#head + this.#size) % this.#ring.length] = item
    this.#size++
    this.#bytes += item.bytes
    return dropped
  }

  /** Removes and returns the oldest records, at most `maxRecords` and `maxBytes` (but always one, if any). */
  take (maxRecords: number, maxBytes: number): T[] {
    const out: T[] = []
    let bytes = 0
    while (this.#size > 0 && out.length < maxRecords) {
      const next = this.#ring[this.#head]!
      if (out.length > 0 && bytes + next.bytes > maxBytes) break
      bytes += next.bytes
      out.push(this.#shift())
    }
    return out
  }

  #shift (): T {
    const item = this.#ring[this.#head]!
    this.#ring[this.#head] = undefined
    this.#head = (this.#head + 1) % this.#ring.length
    this.#size--
    this.#bytes -= item.bytes
    return item
  }

  #grow (): void {
    const next: Array<T | undefined> = new Array(Math.max(1, this.#ring.length * 2))
    for (let i = 0; i < this.#size; i++) next[i] = this.#ring[(this.#head + i) % this.#ring.length]
    this.#ring = next
    this.#head = 0
  }
}
