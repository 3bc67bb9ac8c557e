// Fastify-free: the kafka-websocket wire formats, both directions.
//
// kafka-text   client → server  {"topic":"t","message":"..."} or {"topic":"t","key":"k","message":"..."}
//              server → client  {"topic":"t","message":"..."}
// kafka-binary both directions  [1 byte: topic length in bytes][topic UTF-8][payload]
//
// As in the Java server, either kind of frame may be sent on either
// subprotocol (the subprotocol decides what the server sends), fields other
// than topic, key and message are ignored, and an empty key means no key.
// Unlike it, a frame that cannot be read is answered with an error instead of
// being dropped in silence, the length byte is read unsigned (the Java server
// read it signed: topics of 128 to 255 bytes broke), and a topic that does not
// fit the length byte is refused instead of written as a corrupt frame.
import { isUtf8 } from 'node:buffer'
import type { RawData } from 'ws'
import { isTopicName } from '@sluice/hub'
import type { ValueEncoding } from '@sluice/policy/access'
import { memberValue, scanFrame, type Span } from '@sluice/stream/json-frame'
import { BadBase64Error, BadFieldError, BadTopicError, LengthBeyondFrameError, MissingFieldError, NotJsonError, ShortFrameError, TopicTooLongError } from './errors.ts'

export type Subprotocol = 'kafka-text' | 'kafka-binary'

// the length byte: a topic of more bytes than this cannot be named in a kafka-binary frame
export const MAX_BINARY_TOPIC_BYTES = 255
// a Kafka key is an id to partition and compact by, as on /v1/stream (16 KiB there too); a
// key of a whole frame's length only costs the partitioner's hash (the fuzz suite stalled a
// node for seconds with a 300,000-character key, before murmur2.ts)
export const MAX_KEY_LENGTH = 16 * 1024

/** A client's produce request as read from its frame; the value's bytes depend on the topic's encoding (valueBytes). */
export type ProduceRequest =
  | { kind: 'text', topic: string, key: string | null, message: string }
  | { kind: 'binary', topic: string, key: null, payload: Buffer }

export function asBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

/**
 * gson's getAsString, which the Java server used: strings as they are, numbers
 * and booleans as their text. A number is its literal as the client wrote it
 * (gson keeps it so: 1e400 stays "1e400", 1.10 stays "1.10"), never the text
 * of a JavaScript number (which would be "Infinity" and "1.1").
 */
function primitive (text: string, span: Span): string | undefined {
  const raw = text.slice(span.start, span.end)
  const c = raw.charCodeAt(0)
  if (c === 0x22) return JSON.parse(raw) as string
  if (c === 0x2d || (c >= 0x30 && c <= 0x39) || raw === 'true' || raw === 'false') return raw
  return undefined
}

export function parseTextFrame (text: string): ProduceRequest | Error {
  // one bounded pass over the whole frame before anything is parsed (@sluice/stream/json-frame)
  const scan = scanFrame(text)
  if (!scan.ok) return new NotJsonError(scan.reason === 'the frame must be a JSON object' ? 'this one is JSON but not an object' : `this one is not JSON within bounds: ${scan.reason}`)
  const members = scan.members
  const topicSpan = members.get('topic')
  const messageSpan = members.get('message')
  if (topicSpan === undefined) return new MissingFieldError('topic')
  if (messageSpan === undefined) return new MissingFieldError('message')
  const topic = memberValue(text, topicSpan)
  if (typeof topic !== 'string') return new BadFieldError('topic', 'a string')
  if (!isTopicName(topic)) return new BadTopicError(topic.slice(0, 64))
  const message = primitive(text, messageSpan)
  if (message === undefined) return new BadFieldError('message', 'a string')
  let key: string | null = null
  const keySpan = members.get('key')
  if (keySpan !== undefined && text.slice(keySpan.start, keySpan.end) !== 'null') {
    const k = primitive(text, keySpan)
    if (k === undefined || k.length > MAX_KEY_LENGTH) return new BadFieldError('key', `a string of at most ${MAX_KEY_LENGTH} characters`)
    key = k === '' ? null : k
  }
  return { kind: 'text', topic, key, message }
}

export function parseBinaryFrame (frame: Buffer): ProduceRequest | Error {
  if (frame.length < 1) return new ShortFrameError(frame.length)
  const length = frame[0]!
  if (1 + length > frame.length) return new LengthBeyondFrameError(length, frame.length - 1)
  const bytes = frame.subarray(1, 1 + length)
  const topic = isUtf8(bytes) ? bytes.toString('utf8') : undefined
  if (topic === undefined || !isTopicName(topic)) return new BadTopicError((topic ?? bytes.toString('latin1')).slice(0, 64))
  return { kind: 'binary', topic, key: null, payload: frame.subarray(1 + length) }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * The bytes Kafka stores for a request. A binary frame's payload as is; a
 * text frame's message in UTF-8 (as the Java server did), except on a topic
 * the product declares binary (base64), whose text frames carry base64.
 */
export function valueBytes (request: ProduceRequest, encoding: ValueEncoding): Buffer | Error {
  if (request.kind === 'binary') return request.payload
  if (encoding !== 'base64') return Buffer.from(request.message, 'utf8')
  if (!BASE64.test(request.message)) return new BadBase64Error(request.topic)
  return Buffer.from(request.message, 'base64')
}

/**
 * A record for a kafka-text client: {"topic":"t","message":"..."}, the fields
 * in the Java server's order. The message is the value's UTF-8 text; a value
 * that is not UTF-8, or a topic the product declares binary, is sent in
 * base64 with "messageEncoding":"base64" (the Java server replaced what it
 * could not decode, silently altering the record). A null value (a Kafka
 * tombstone) is "message":null.
 */
export function textMessage (topic: string, value: Buffer | null, encoding: ValueEncoding): string {
  let message: string
  if (value === null) message = 'null'
  else if (encoding !== 'base64' && isUtf8(value)) message = JSON.stringify(value.toString('utf8'))
  else return `{"topic":${JSON.stringify(topic)},"message":"${value.toString('base64')}","messageEncoding":"base64"}`
  return `{"topic":${JSON.stringify(topic)},"message":${message}}`
}

/** A record for a kafka-binary client; a null value is an empty payload. Throws SLUICE_COMPAT_TOPIC_TOO_LONG. */
export function binaryMessage (topic: string, value: Buffer | null): Buffer {
  const length = Buffer.byteLength(topic, 'utf8')
  if (length > MAX_BINARY_TOPIC_BYTES) throw new TopicTooLongError(topic.slice(0, 64), length)
  const payload = value ?? Buffer.alloc(0)
  const out = Buffer.allocUnsafe(1 + length + payload.length)
  out[0] = length
  out.write(topic, 1, 'utf8')
  payload.copy(out, 1 + length)
  return out
}

/** The error frame's JSON: {"error":{"code":"...","message":"...",...}}. */
export function errorMessage (code: string, message: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ error: { code, message, ...extra } })
}
