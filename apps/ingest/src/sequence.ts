// Gap detection on a feed's own sequence numbers (exchange trade ids, sensor
// counters). A gap is what the feed never delivered to us; our own overflow
// drops are counted apart, so the two are never confused.

export interface SequenceStats {
  /** jumps forward by more than one */
  gaps: number
  /** how many numbers those jumps skipped */
  missing: number
  /** a number not above the last one: a replay, a duplicate or a feed restart */
  regressions: number
  /** frames whose field was absent or not an integer */
  invalid: number
}

/** A sequence value as a safe integer: a JSON number or a string of digits (feeds that send 64-bit ids as strings). */
export function sequenceOf (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) {
    const n = Number(value)
    return Number.isSafeInteger(n) ? n : undefined
  }
  return undefined
}

export class SequenceTracker {
  readonly stats: SequenceStats = { gaps: 0, missing: 0, regressions: 0, invalid: 0 }
  #last: number | undefined

  get last (): number | undefined {
    return this.#last
  }

  /** Records one frame's sequence field (the raw value the pointer found). */
  observe (raw: unknown): void {
    const n = sequenceOf(raw)
    if (n === undefined) {
      this.stats.invalid++
      return
    }
    const last = this.#last
    this.#last = n
    if (last === undefined || n === last + 1) return
    if (n > last + 1) {
      this.stats.gaps++
      this.stats.missing += n - last - 1
    } else {
      // rebase on the new number: a feed that restarts its count after a
      // reconnect would otherwise show every later frame as a gap
      this.stats.regressions++
    }
  }
}
