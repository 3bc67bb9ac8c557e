// Frames are built once per record and written as the same bytes to every
// socket that gets them: the JSON text of the native protocol, already wrapped
// in its WebSocket frame header (server frames are unmasked, so the wire bytes
// are identical for every recipient).
import { isUtf8 } from 'node:buffer'
import type { ConsumedRecord } from '@sluice/kafka'
import type { ValueEncoding } from '@sluice/policy/access'

const OPCODE_TEXT = 0x1
const OPCODE_BINARY = 0x2
const FIN = 0x80

/** A complete unmasked WebSocket data frame (RFC 6455 §5.2) around `payload`. */
export function wireFrame (payload: Buffer, binary = false): Buffer {
  const length = payload.length
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = FIN | (binary ? OPCODE_BINARY : OPCODE_TEXT)
  if (length < 126) {
    frame[1] = length
  } else if (length < 65_536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  payload.copy(frame, headerLength)
  return frame
}

export function wireText (text: string): Buffer {
  return wireFrame(Buffer.from(text, 'utf8'))
}

/** The JSON of a value as the topic's encoding says, and whether it fell back to base64. */
export function encodeValue (value: Buffer | null, encoding: ValueEncoding): { json: string, base64: boolean } {
  if (value === null) return { json: 'null', base64: false }
  if (encoding !== 'base64' && isUtf8(value)) {
    const text = value.toString('utf8')
    if (encoding === 'text') return { json: JSON.stringify(text), base64: false }
    try {
      // validated, then spliced as is: re-serializing would alter numbers beyond 2^53 and key order
      JSON.parse(text)
      return { json: text, base64: false }
    } catch {}
  }
  // binary, or not what the topic declares: base64 and say so; never altered, never lost
  return { json: `"${value.toString('base64')}"`, base64: true }
}

function utf8OrBase64 (bytes: Buffer): { json: string, base64: boolean } {
  return isUtf8(bytes) ? { json: JSON.stringify(bytes.toString('utf8')), base64: false } : { json: `"${bytes.toString('base64')}"`, base64: true }
}

/**
 * The native protocol's message frame:
 * {"op":"message","topic":"t","partition":0,"offset":"42","timestamp":1732500000000,"key":"k","value":...,"headers":{}}
 * Keys and header values are UTF-8 strings; when one is not valid UTF-8 the
 * frame carries `"keyEncoding":"base64"` / `"headersEncoding":"base64"` (then
 * every header value is base64) and the bytes in base64.
 */
export function messageJson (record: ConsumedRecord, encoding: ValueEncoding): string {
  let extra = ''
  let key = 'null'
  if (record.key !== null) {
    const k = utf8OrBase64(record.key)
    key = k.json
    if (k.base64) extra += ',"keyEncoding":"base64"'
  }
  const value = encodeValue(record.value, encoding)
  if (value.base64) extra += ',"valueEncoding":"base64"'
  let headers = '{}'
  const names = Object.keys(record.headers)
  if (names.length > 0) {
    const binary = names.some(n => !isUtf8(record.headers[n]!))
    headers = '{' + names.map(n => `${JSON.stringify(n)}:"${binary ? record.headers[n]!.toString('base64') : JSON.stringify(record.headers[n]!.toString('utf8')).slice(1, -1)}"`).join(',') + '}'
    if (binary) extra += ',"headersEncoding":"base64"'
  }
  return `{"op":"message","topic":"${record.topic}","partition":${record.partition},"offset":"${record.offset}","timestamp":${Number(record.timestamp)},"key":${key},"value":${value.json},"headers":${headers}${extra}}`
}

/** How one protocol turns a record into the bytes written to its sockets. */
export interface FrameFormat {
  /** records are framed once per distinct key per batch */
  readonly key: string
  frame (record: ConsumedRecord, encoding: ValueEncoding): Buffer | undefined
}

export const nativeFormat: FrameFormat = {
  key: 'sluice.v1',
  frame: (record, encoding) => wireText(messageJson(record, encoding))
}
