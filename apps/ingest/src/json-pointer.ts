// RFC 6901 JSON pointers, compiled once per feed: the record key and the
// sequence field are read from each text frame with them.

/** A pointer such as `/data/symbol` or `/a~1b/0`; the empty pointer (the whole document) is not useful for a key. */
export const JSON_POINTER_PATTERN = '^(/([^~/]|~[01])*)+$'

export type CompiledPointer = (document: unknown) => unknown

export function compilePointer (pointer: string): CompiledPointer {
  if (!new RegExp(JSON_POINTER_PATTERN).test(pointer)) throw new TypeError(`not a JSON pointer: ${pointer}`)
  const segments = pointer.slice(1).split('/').map(s => s.replaceAll('~1', '/').replaceAll('~0', '~'))
  return (document: unknown): unknown => {
    let node = document
    for (const segment of segments) {
      if (Array.isArray(node)) {
        // RFC 6901: an array index is a decimal number without leading zeros
        if (!/^(0|[1-9]\d*)$/.test(segment)) return undefined
        node = node[Number(segment)]
      } else if (typeof node === 'object' && node !== null && Object.hasOwn(node, segment)) {
        node = (node as Record<string, unknown>)[segment]
      } else {
        return undefined
      }
    }
    return node
  }
}

/** A value found by the key pointer as a Kafka key: strings as they are, scalars as JSON text, absent as null. */
export function keyOf (value: unknown): string | null {
  if (value === undefined || value === null) return null
  if (typeof value === 'string') return value
  return JSON.stringify(value)
}
