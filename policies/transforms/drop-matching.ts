// A transform (plugins/compat/README.md): discards the messages whose JSON
// value has, at a JSON pointer (RFC 6901), one of the given values; every
// other message (no match, not JSON, no value) goes through unchanged.
//
// In a product:
//   transforms:
//     output:
//       module: transforms/drop-matching.ts
//       options: { pointer: /level, equals: debug }           # or in: [debug, trace]
//
// Values are compared as JSON scalars: "1" does not match 1. Without options
// (the default export) it drops messages with {"drop": true}.

export interface Message {
  topic: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, Buffer>
  timestamp: number
}

type Scalar = string | number | boolean | null

export interface DropOptions {
  pointer: string
  equals?: Scalar
  in?: Scalar[]
}

// a pointer addresses a field in a message, not a path through a document of thousands of levels
const MAX_POINTER_SEGMENTS = 32
const MAX_VALUES = 1000

function isScalar (value: unknown): value is Scalar {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value)
}

function segments (pointer: string): string[] {
  if (pointer === '') return []
  if (!pointer.startsWith('/')) throw new Error('`pointer` must be a JSON pointer: "" or starting with "/"')
  const parts = pointer.slice(1).split('/').map(s => s.replaceAll('~1', '/').replaceAll('~0', '~'))
  if (parts.length > MAX_POINTER_SEGMENTS) throw new Error(`\`pointer\` has more than ${MAX_POINTER_SEGMENTS} segments`)
  return parts
}

function at (document: unknown, path: string[]): unknown {
  let node = document
  for (const segment of path) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(segment)) return undefined
      node = node[Number(segment)]
    } else if (typeof node === 'object' && node !== null && Object.hasOwn(node, segment)) {
      node = (node as Record<string, unknown>)[segment]
    } else {
      return undefined
    }
  }
  return node
}

export function dropMatching (options: DropOptions): (message: Message) => Message | null {
  const path = segments(options.pointer)
  const values = new Set<Scalar>(options.in ?? [options.equals as Scalar])
  return message => {
    if (message.value === null) return message
    let document: unknown
    try {
      document = JSON.parse(message.value.toString('utf8'))
    } catch {
      return message
    }
    const found = at(document, path)
    return found !== undefined && isScalar(found) && values.has(found) ? null : message
  }
}

export function configure (options: Record<string, unknown>): (message: Message) => Message | null {
  if (typeof options.pointer !== 'string') throw new Error('`pointer` is required: a JSON pointer such as /level')
  if (('equals' in options) === ('in' in options)) throw new Error('give one of `equals` (a value) or `in` (a list of values)')
  if ('equals' in options && !isScalar(options.equals)) throw new Error('`equals` must be a string, a number, a boolean or null')
  if ('in' in options && (!Array.isArray(options.in) || options.in.length === 0 || options.in.length > MAX_VALUES || !options.in.every(isScalar))) {
    throw new Error(`\`in\` must be a list of 1 to ${MAX_VALUES} strings, numbers, booleans or nulls`)
  }
  return dropMatching(options as unknown as DropOptions)
}

export default dropMatching({ pointer: '/drop', equals: true })
