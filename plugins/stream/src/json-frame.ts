// Fastify-free: reads a client's JSON text frame without trusting it. One pass,
// no recursion: the text is checked against JSON's grammar and against bounds
// (nesting, entries, number literals, surrogates) before anything is built
// from it, and the frame's top-level members come back as spans of the text.
// A route parses the members it reads (small, already bounded) and keeps the
// one it forwards (a published value) as its exact text, never re-serialized:
// JSON.parse + JSON.stringify would turn 9007199254740993 into ...992, 1e400
// into null, 1.10 into 1.1, and collapse duplicate keys.

export interface JsonBounds {
  /** containers inside containers, the frame's own object counted as 1 */
  maxDepth: number
  /** members of one object or elements of one array */
  maxEntries: number
  /** characters of one number literal */
  maxNumberLength: number
}

export const FRAME_BOUNDS: JsonBounds = {
  // Real payloads nest 10-20 levels; 64 keeps every later walk of a parsed member
  // (String(), a transform, a schema check) a few KB of stack, where V8 overflows
  // JSON.stringify at about 4,400 levels and a recursive String() at about 6,000.
  maxDepth: 64,
  // A 1 MiB frame holds up to ~350,000 one-character entries; 100,000 still takes an
  // array of 100,000 readings, and a published value is never parsed into objects.
  maxEntries: 100_000,
  // 256 characters is 7x the longest exact decimal a double (17 digits + exponent) or a
  // decimal128 (34 digits + exponent) needs; the text is kept as sent either way.
  maxNumberLength: 256
}

/** Where a member's value lies in the frame's text: text.slice(start, end). */
export interface Span { start: number, end: number }

export type FrameScan =
  | { ok: true, members: Map<string, Span> }
  /** `members`: those read whole before the fault (a route may still find the frame's id there) */
  | { ok: false, reason: string, members?: Map<string, Span> }

const OBJECT = 1
const ARRAY = 2

function isWhitespace (c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

function isDigit (c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

function isHex (c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

function hex4 (text: string, i: number): number {
  for (let k = i; k < i + 4; k++) if (!isHex(text.charCodeAt(k))) return -1
  return Number.parseInt(text.slice(i, i + 4), 16)
}

const isHigh = (u: number) => u >= 0xd800 && u <= 0xdbff
const isLow = (u: number) => u >= 0xdc00 && u <= 0xdfff

/** Where a scan found a frame outside its bounds: the first reason, the scan going on to find the frame's members. */
interface Faults { first?: string }

/**
 * The end of the string starting at `i` (a '"'), or why it is not JSON. A lone
 * surrogate, raw or escaped, is a fault (no UTF-8 can hold it) noted in `faults`.
 */
function scanString (text: string, i: number, faults: Faults): number | string {
  const n = text.length
  let j = i + 1
  while (j < n) {
    const c = text.charCodeAt(j)
    if (c === 0x22) return j + 1
    if (c < 0x20) return 'a control character inside a string (write it escaped)'
    if (c === 0x5c) {
      const e = text.charCodeAt(j + 1)
      if (e === 0x75) {
        const u = hex4(text, j + 2)
        if (u < 0) return 'a \\u escape needs 4 hex digits'
        const lone = () => { faults.first ??= `a lone surrogate (\\u${text.slice(j + 2, j + 6)}) cannot be stored as UTF-8 (at character ${j})` }
        if (isHigh(u)) {
          const low = text.charCodeAt(j + 6) === 0x5c && text.charCodeAt(j + 7) === 0x75 ? hex4(text, j + 8) : -1
          if (isLow(low)) {
            j += 12
            continue
          }
        }
        if (isHigh(u) || isLow(u)) lone()
        j += 6
        continue
      }
      // " \ / b f n r t
      if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        j += 2
        continue
      }
      return 'an unknown escape in a string'
    }
    if (isHigh(c) && isLow(text.charCodeAt(j + 1))) {
      j += 2
      continue
    }
    if (isHigh(c) || isLow(c)) faults.first ??= `a lone surrogate cannot be stored as UTF-8 (at character ${j})`
    j++
  }
  return 'a string is not closed'
}

/** The end of the number starting at `i`, or a reason (JSON's grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?). */
function scanNumber (text: string, i: number): number | string {
  let j = i
  if (text.charCodeAt(j) === 0x2d) j++
  const first = text.charCodeAt(j)
  if (first === 0x30) j++
  else if (first >= 0x31 && first <= 0x39) while (isDigit(text.charCodeAt(j))) j++
  else return 'not a JSON value'
  if (text.charCodeAt(j) === 0x2e) {
    j++
    if (!isDigit(text.charCodeAt(j))) return 'a number needs digits after its "."'
    while (isDigit(text.charCodeAt(j))) j++
  }
  const e = text.charCodeAt(j)
  if (e === 0x65 || e === 0x45) {
    j++
    const sign = text.charCodeAt(j)
    if (sign === 0x2b || sign === 0x2d) j++
    if (!isDigit(text.charCodeAt(j))) return 'a number needs digits in its exponent'
    while (isDigit(text.charCodeAt(j))) j++
  }
  return j
}

/**
 * Checks that `text` is one JSON object within `bounds`, and returns where
 * each of its top-level members' values lies. Duplicate top-level members are
 * refused (which one a route would read is a guess); duplicates deeper down
 * are the client's data and are kept. Linear in the text, constant stack.
 */
export function scanFrame (text: string, bounds: JsonBounds = FRAME_BOUNDS): FrameScan {
  const members = new Map<string, Span>()
  const fail = (reason: string, at: number): FrameScan => ({ ok: false, reason: `${reason} (at character ${at})`, members })
  // A frame outside a bound (too deep, too many entries, a long number, a lone surrogate, a field
  // twice) is refused too, but the scan reads on to the end: a route can then still find the
  // frame's id, wherever it is, and name it in its error. Only what breaks JSON's grammar stops it.
  const faults: Faults = {}
  const twice = new Set<string>()
  const fault = (reason: string, at: number) => { faults.first ??= `${reason} (at character ${at})` }
  const n = text.length
  const kinds: number[] = []
  const entries: number[] = []
  let member: string | undefined
  let memberStart = 0
  let i = 0
  while (i < n && isWhitespace(text.charCodeAt(i))) i++
  if (text.charCodeAt(i) !== 0x7b) return { ok: false, reason: 'the frame must be a JSON object' }

  // Each turn reads one value (a container's opening counts as its value starting)
  // and then whatever closes or separates; `expectKey` says an object wants a member name.
  let expectKey = false
  for (;;) {
    while (i < n && isWhitespace(text.charCodeAt(i))) i++
    if (i >= n) return fail('the frame ends too early', i)
    const depth = kinds.length
    if (expectKey) {
      if (text.charCodeAt(i) !== 0x22) return fail('a member name must be a string', i)
      const end = scanString(text, i, faults)
      if (typeof end === 'string') return fail(end, i)
      if (depth === 1) {
        const raw = text.slice(i + 1, end - 1)
        // a name with a lone surrogate escape is a fault already: read it raw, never decode it
        member = raw.includes('\\') && faults.first === undefined ? JSON.parse(text.slice(i, end)) as string : raw
        if (members.has(member) || twice.has(member)) {
          // which of the two a route would read is a guess: neither is reported
          fault(`the field "${member.slice(0, 64)}" appears twice`, i)
          members.delete(member)
          twice.add(member)
          member = undefined
        }
      }
      i = end
      while (i < n && isWhitespace(text.charCodeAt(i))) i++
      if (text.charCodeAt(i) !== 0x3a) return fail('a ":" must follow a member name', i)
      i++
      while (i < n && isWhitespace(text.charCodeAt(i))) i++
      if (depth === 1) memberStart = i
      expectKey = false
      continue
    }
    // a value starts at i
    const c = text.charCodeAt(i)
    if (c === 0x7b || c === 0x5b) {
      if (depth >= bounds.maxDepth) fault(`nesting deeper than ${bounds.maxDepth} levels`, i)
      kinds.push(c === 0x7b ? OBJECT : ARRAY)
      entries.push(0)
      i++
      while (i < n && isWhitespace(text.charCodeAt(i))) i++
      const close = text.charCodeAt(i)
      if ((c === 0x7b && close === 0x7d) || (c === 0x5b && close === 0x5d)) {
        kinds.pop()
        entries.pop()
        i++
      } else {
        entries[entries.length - 1] = 1
        expectKey = c === 0x7b
        continue
      }
    } else if (c === 0x22) {
      const end = scanString(text, i, faults)
      if (typeof end === 'string') return fail(end, i)
      i = end
    } else if (c === 0x2d || isDigit(c)) {
      const end = scanNumber(text, i)
      if (typeof end === 'string') return fail(end, i)
      if (end - i > bounds.maxNumberLength) fault(`a number literal longer than ${bounds.maxNumberLength} characters`, i)
      i = end
    } else if (text.startsWith('true', i)) {
      i += 4
    } else if (text.startsWith('false', i)) {
      i += 5
    } else if (text.startsWith('null', i)) {
      i += 4
    } else {
      return fail('not a JSON value', i)
    }
    // the value ended: close containers and find what comes next
    for (;;) {
      if (kinds.length === 1 && member !== undefined) {
        members.set(member, { start: memberStart, end: i })
        member = undefined
      }
      if (kinds.length === 0) {
        while (i < n && isWhitespace(text.charCodeAt(i))) i++
        if (i < n) return fail('more after the frame\'s object', i)
        if (faults.first !== undefined) return { ok: false, reason: faults.first, members }
        return { ok: true, members }
      }
      while (i < n && isWhitespace(text.charCodeAt(i))) i++
      const d = text.charCodeAt(i)
      const kind = kinds[kinds.length - 1]
      if (d === 0x2c) {
        const count = ++entries[entries.length - 1]!
        if (count === bounds.maxEntries + 1) fault(`more than ${bounds.maxEntries} entries in one ${kind === OBJECT ? 'object' : 'array'}`, i)
        i++
        expectKey = kind === OBJECT
        break
      }
      if ((d === 0x7d && kind === OBJECT) || (d === 0x5d && kind === ARRAY)) {
        kinds.pop()
        entries.pop()
        i++
        continue
      }
      return fail(i >= n ? 'the frame ends too early' : `"${text[i]}" where a "," or a closing bracket was expected`, i)
    }
  }
}

/** A member's value parsed: only for members a route reads, whose nesting the scan has bounded. */
export function memberValue (text: string, span: Span | undefined): unknown {
  return span === undefined ? undefined : JSON.parse(text.slice(span.start, span.end))
}

// The fast path's own limits, far inside FRAME_BOUNDS: what passes them passes the full scan
// alike, and anything deeper or longer simply takes the full scan
const PLAIN_DEPTH = 16
const PLAIN_ENTRIES = 1024

/**
 * Whether text[start, end) is exactly one JSON value (whitespace around it allowed) that
 * scanFrame would accept inside a frame without a fault: nesting within PLAIN_DEPTH,
 * containers within PLAIN_ENTRIES, numbers within FRAME_BOUNDS, no lone surrogate. False
 * says "not sure", never "invalid": the caller then runs the full scan, which says why.
 * It exists for publish frames (protocol.ts fastPublish): their value is most of the frame,
 * and checking it alone skips the member map, the spans and a JSON.parse per member.
 */
export function isPlainValue (text: string, start: number, end: number): boolean {
  const closers: number[] = []
  const counts: number[] = []
  const faults: Faults = {}
  let i = start
  // each turn reads one value; `key`: an object wants a member name first
  let key = false
  for (;;) {
    while (i < end && isWhitespace(text.charCodeAt(i))) i++
    if (i >= end) return false
    const c = text.charCodeAt(i)
    if (key) {
      if (c !== 0x22) return false
      const after = scanString(text, i, faults)
      if (typeof after === 'string' || faults.first !== undefined || after > end) return false
      i = after
      while (i < end && isWhitespace(text.charCodeAt(i))) i++
      if (text.charCodeAt(i) !== 0x3a) return false
      i++
      key = false
      continue
    }
    if (c === 0x7b || c === 0x5b) {
      if (closers.length >= PLAIN_DEPTH) return false
      i++
      while (i < end && isWhitespace(text.charCodeAt(i))) i++
      const close = c === 0x7b ? 0x7d : 0x5d
      if (text.charCodeAt(i) === close && i < end) i++
      else {
        closers.push(close)
        counts.push(1)
        key = c === 0x7b
        continue
      }
    } else if (c === 0x22) {
      const after = scanString(text, i, faults)
      if (typeof after === 'string' || faults.first !== undefined || after > end) return false
      i = after
    } else if (c === 0x2d || isDigit(c)) {
      const after = scanNumber(text, i)
      if (typeof after === 'string' || after - i > FRAME_BOUNDS.maxNumberLength || after > end) return false
      i = after
    } else if (text.startsWith('true', i)) i += 4
    else if (text.startsWith('false', i)) i += 5
    else if (text.startsWith('null', i)) i += 4
    else return false
    if (i > end) return false
    // the value ended: close containers, or find the next entry
    for (;;) {
      while (i < end && isWhitespace(text.charCodeAt(i))) i++
      if (closers.length === 0) return i === end
      if (i >= end) return false
      const d = text.charCodeAt(i)
      if (d === 0x2c) {
        if (++counts[counts.length - 1]! > PLAIN_ENTRIES) return false
        i++
        key = closers[closers.length - 1] === 0x7d
        break
      }
      if (d !== closers[closers.length - 1]) return false
      closers.pop()
      counts.pop()
      i++
    }
  }
}
