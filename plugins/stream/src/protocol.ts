// The client half of the native protocol: one JSON object per text frame,
// checked field by field. Everything here is hostile until it passes.
import { isTopicName } from '@sluice/hub'
import { MAX_TOPICS_PER_FRAME } from '@sluice/sessions'
import { compilePattern } from '@sluice/policy/topics'
import { BadRequestError } from './errors.ts'
import { isPlainValue, memberValue, scanFrame, type Span } from './json-frame.ts'

export interface SubscribeOp { op: 'subscribe', id?: string, topics: string[], from?: string }
export interface UnsubscribeOp { op: 'unsubscribe', id?: string, topics: string[] }
/** `value`: the JSON text of the frame's value exactly as the client wrote it (never re-serialized) */
export interface PublishOp { op: 'publish', id?: string, topic: string, key?: string, value: string, headers?: Record<string, string> }
export interface PingOp { op: 'ping', id?: string }
export interface AuthOp { op: 'auth', id?: string, token: string }
export type ClientOp = SubscribeOp | UnsubscribeOp | PublishOp | PingOp | AuthOp

// ids are echoed back in every reply: 128 characters covers a UUID with room for a prefix
const MAX_ID_LENGTH = 128
// Kafka headers are metadata: 64 entries of 8 KiB is far more than any client sends
const MAX_HEADERS = 64
const MAX_HEADER_NAME = 256
const MAX_HEADER_VALUE = 8 * 1024
const MAX_KEY_LENGTH = 16 * 1024
// a client reuses a cursor it was given; 64 KiB is what parseCursor accepts
const MAX_FROM_LENGTH = 64 * 1024

const OPS = new Set(['subscribe', 'unsubscribe', 'publish', 'ping', 'auth'])

export type Parsed = { ok: true, op: ClientOp } | { ok: false, id?: string, error: Error }

function fail (message: string, id?: string): Parsed {
  return { ok: false, id, error: new BadRequestError(message) }
}

/** A topic pattern a client may subscribe with: `*` within a dot-separated segment, `**` across dots. */
export function isTopicPattern (value: string): boolean {
  return value.includes('*')
}

/** The matcher of a client's pattern, or why it is not one (the policy's own pattern syntax, without claim templates). */
export function compileClientPattern (source: string): RegExp | string {
  if (source.length > 249) return `"${source.slice(0, 64)}" is longer than a topic name may be (249 characters)`
  try {
    return compilePattern(source, { templates: false }).resolve({})!
  } catch (err) {
    return `"${source.slice(0, 64)}" is not a topic pattern: ${(err as Error).message}`
  }
}

function topicList (value: unknown, field: string, patterns: boolean): string[] | string {
  if (!Array.isArray(value)) return `"${field}" must be an array of topic names`
  if (value.length === 0 || value.length > MAX_TOPICS_PER_FRAME) return `"${field}" must name 1 to ${MAX_TOPICS_PER_FRAME} topics`
  for (const t of value) {
    if (patterns && typeof t === 'string' && isTopicPattern(t)) {
      const compiled = compileClientPattern(t)
      if (typeof compiled === 'string') return compiled
    } else if (!isTopicName(t)) {
      return `"${String(t).slice(0, 64)}" is not a topic name ([a-zA-Z0-9._-], at most 249 characters)${patterns ? ' or pattern (`*`, `**`)' : ''}`
    }
  }
  return [...new Set(value as string[])]
}

/** The id of a frame refused as a whole, when it was read whole before the fault: the client can still match the error to its request. */
function readableId (text: string, members: Map<string, Span> | undefined): string | undefined {
  const span = members?.get('id')
  if (span === undefined || span.end - span.start > MAX_ID_LENGTH * 6 + 2) return undefined
  const id = memberValue(text, span)
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH ? id : undefined
}

const PUBLISH = '{"op":"publish",'
const ID = '"id":"'
const TOPIC = '"topic":"'
const VALUE = '"value":'

function isTopicChar (c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d
}

/**
 * A publish frame in the shape clients write it (`{"op":"publish","id":"…","topic":"…","value":…}`,
 * members in that order, no whitespace outside the value, an id of printable ASCII without
 * escapes) read without the general scan; undefined for anything else, which the general
 * path reads (and refuses, if it must, with its reasons). It answers exactly what the general
 * path would (plugins/stream/test/protocol-fast.test.ts compares them): at the maximum of
 * bench/publish.ts the general path (scanFrame, a member map, a JSON.parse per member,
 * the topic's RegExp) was ~5 s of a ~34 s busy CPU profile.
 */
export function fastPublish (text: string): PublishOp | undefined {
  if (!text.startsWith(PUBLISH)) return undefined
  let i = PUBLISH.length
  let id: string | undefined
  if (text.startsWith(ID, i)) {
    const from = i + ID.length
    let j = from
    for (;;) {
      const c = text.charCodeAt(j)
      if (c === 0x22) break
      // controls, escapes, non-ASCII (and the end of the text: NaN) go the general way
      if (!(c >= 0x20 && c < 0x7f) || c === 0x5c) return undefined
      j++
    }
    if (j === from || j - from > MAX_ID_LENGTH) return undefined
    id = text.slice(from, j)
    i = j + 1
    if (text.charCodeAt(i) !== 0x2c) return undefined
    i++
  }
  if (!text.startsWith(TOPIC, i)) return undefined
  const from = i + TOPIC.length
  let j = from
  while (isTopicChar(text.charCodeAt(j))) j++
  if (text.charCodeAt(j) !== 0x22 || j === from || j - from > 249) return undefined
  const topic = text.slice(from, j)
  if (topic === '.' || topic === '..') return undefined
  i = j + 1
  if (text.charCodeAt(i) !== 0x2c || !text.startsWith(VALUE, i + 1)) return undefined
  i += 1 + VALUE.length
  const end = text.length - 1
  if (text.charCodeAt(end) !== 0x7d || !isPlainValue(text, i, end)) return undefined
  // the value's text without the whitespace around it, as the general scan's span has it
  let a = i
  let b = end
  while (a < b && isSpace(text.charCodeAt(a))) a++
  while (b > a && isSpace(text.charCodeAt(b - 1))) b--
  return { op: 'publish', id, topic, key: undefined, value: text.slice(a, b), headers: undefined }
}

function isSpace (c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

export function parseClientFrame (text: string): Parsed {
  const publish = fastPublish(text)
  if (publish !== undefined) return { ok: true, op: publish }
  return parseScanned(text)
}

/** Any client frame, through the general scan (parseClientFrame tries fastPublish first). */
export function parseScanned (text: string): Parsed {
  // bounded and checked in one pass before anything is parsed (json-frame.ts): no client
  // frame reaches JSON.parse, String() or a recursive walk deeper than FRAME_BOUNDS allows
  const scan = scanFrame(text)
  if (!scan.ok) return fail(scan.reason === 'the frame must be a JSON object' ? scan.reason : `the frame is not JSON within bounds: ${scan.reason}`, readableId(text, scan.members))
  const members = scan.members
  // every member but a published value is parsed; the value stays as its text
  const f: Record<string, unknown> = {}
  for (const [name, span] of members) if (name !== 'value') f[name] = memberValue(text, span)
  let id: string | undefined
  if (f.id !== undefined) {
    if (typeof f.id !== 'string' || f.id.length === 0 || f.id.length > MAX_ID_LENGTH) return fail(`"id" must be a string of 1 to ${MAX_ID_LENGTH} characters`)
    id = f.id
  }
  if (typeof f.op !== 'string' || !OPS.has(f.op)) return fail(`"op" must be one of ${[...OPS].join(', ')}`, id)

  switch (f.op) {
    case 'ping':
      return { ok: true, op: { op: 'ping', id } }
    case 'subscribe':
    case 'unsubscribe': {
      // patterns are for frames; the query's topics are checked before the upgrade (upgrade-checks.ts)
      const topics = topicList(f.topics, 'topics', true)
      if (typeof topics === 'string') return fail(topics, id)
      if (f.op === 'unsubscribe') return { ok: true, op: { op: 'unsubscribe', id, topics } }
      if (f.from !== undefined && (typeof f.from !== 'string' || f.from.length === 0 || f.from.length > MAX_FROM_LENGTH)) {
        return fail('"from" must be "latest", "earliest" or a cursor', id)
      }
      return { ok: true, op: { op: 'subscribe', id, topics, from: f.from as string | undefined } }
    }
    case 'publish': {
      if (!isTopicName(f.topic)) return fail('"topic" must be a topic name', id)
      const valueSpan = members.get('value')
      if (valueSpan === undefined) return fail('"value" is required', id)
      if (f.key !== undefined && f.key !== null && (typeof f.key !== 'string' || f.key.length > MAX_KEY_LENGTH)) {
        return fail(`"key" must be a string of at most ${MAX_KEY_LENGTH} characters`, id)
      }
      let headers: Record<string, string> | undefined
      if (f.headers !== undefined) {
        if (typeof f.headers !== 'object' || f.headers === null || Array.isArray(f.headers)) return fail('"headers" must be an object of strings', id)
        const entries = Object.entries(f.headers)
        if (entries.length > MAX_HEADERS) return fail(`at most ${MAX_HEADERS} headers`, id)
        for (const [name, value] of entries) {
          if (name.length === 0 || name.length > MAX_HEADER_NAME) return fail(`header names are 1 to ${MAX_HEADER_NAME} characters`, id)
          if (typeof value !== 'string' || value.length > MAX_HEADER_VALUE) return fail(`header "${name.slice(0, 64)}" must be a string of at most ${MAX_HEADER_VALUE} characters`, id)
        }
        headers = f.headers as Record<string, string>
      }
      return { ok: true, op: { op: 'publish', id, topic: f.topic as string, key: (f.key ?? undefined) as string | undefined, value: text.slice(valueSpan.start, valueSpan.end), headers } }
    }
    default: {
      if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > 16 * 1024) return fail('"token" must be a non-empty string', id)
      return { ok: true, op: { op: 'auth', id, token: f.token } }
    }
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * A publish frame's value as the bytes Kafka stores, per the topic's encoding.
 * `json` is the value's text as the client sent it, byte for byte (its UTF-8 is
 * the frame's own, checked by ws; lone surrogates were refused by the scan).
 * JSON null is a tombstone (no value) on every encoding.
 */
export function valueBytes (json: string, encoding: 'json' | 'text' | 'base64'): Buffer | null | Error {
  if (json === 'null') return null
  if (encoding === 'json') return Buffer.from(json, 'utf8')
  if (json.charCodeAt(0) !== 0x22) return new BadRequestError(`this topic takes ${encoding === 'text' ? 'a UTF-8 string' : 'a base64 string'} as "value"`)
  const value = JSON.parse(json) as string
  if (encoding === 'text') return Buffer.from(value, 'utf8')
  if (!BASE64.test(value)) return new BadRequestError('"value" is not valid base64')
  return Buffer.from(value, 'base64')
}
