// A transform (plugins/compat/README.md): adds the gateway's clock, in ms
// since the epoch, to every message whose value is a JSON object:
//   {"price":1}  ->  {"price":1,"serverTimestamp":1732500000000}
// Anything else (not JSON, not an object, no value) goes through unchanged.
// The field is appended to the JSON text as it is: the other fields keep
// their exact text (numbers beyond 2^53, spacing, order). A field of the same
// name already there is overridden (JSON readers keep the last of two).
//
// In a product:
//   transforms:
//     input: transforms/add-timestamp.ts                                   # field "serverTimestamp"
//     output: { module: transforms/add-timestamp.ts, options: { field: receivedAt } }

export interface Message {
  topic: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, Buffer>
  timestamp: number
}

export const DEFAULT_FIELD = 'serverTimestamp'

export function addTimestamp (field: string): (message: Message) => Message {
  const name = JSON.stringify(field)
  return message => {
    if (message.value === null) return message
    const text = message.value.toString('utf8')
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return message
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return message
    const end = text.lastIndexOf('}')
    const body = text.slice(0, end).trimEnd()
    const separator = Object.keys(parsed).length === 0 ? '' : ','
    return { ...message, value: Buffer.from(`${body}${separator}${name}:${Date.now()}${text.slice(end)}`, 'utf8') }
  }
}

export function configure (options: { field?: unknown }): (message: Message) => Message {
  const field = options.field ?? DEFAULT_FIELD
  if (typeof field !== 'string' || field.length === 0 || field.length > 128) throw new Error('`field` must be a name of 1 to 128 characters')
  return addTimestamp(field)
}

export default addTimestamp(DEFAULT_FIELD)
