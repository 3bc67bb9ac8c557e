// The frames of the native protocol on /v1/stream (plugins/stream/README.md,
// plugins/stream/src/protocol.ts) as AsyncAPI messages: one JSON object per
// text frame, `op` saying which. The limits repeat the parser's.

import { TOPIC_NAME_PATTERN } from '@sluice/protocol/topics'
import { WIRE_CODES } from '@sluice/protocol/codes'

type Schema = Record<string, unknown>

const id = { type: 'string', minLength: 1, maxLength: 128, description: 'Chosen by the client, echoed in the reply' }
const topic = { type: 'string', pattern: TOPIC_NAME_PATTERN }
const topics = { type: 'array', minItems: 1, maxItems: 100, items: topic }
// subscribe and unsubscribe also take patterns: `*` within a dot-separated segment, `**` across dots
const topicOrPattern = { type: 'string', minLength: 1, maxLength: 249, pattern: '^[A-Za-z0-9._*-]+$' }
const topicsOrPatterns = { type: 'array', minItems: 1, maxItems: 100, items: topicOrPattern }
const offset = { type: 'string', pattern: '^[0-9]+$', description: 'A decimal string: Kafka offsets are 64-bit' }
const cursor = { type: 'string', description: 'A resume cursor: topic@partition:offset[,partition:offset][;topic@…], the next offset per partition' }
const code = { type: 'string', enum: [...WIRE_CODES] }

function frame (op: string, required: string[], properties: Schema): Schema {
  return {
    type: 'object',
    required: ['op', ...required],
    properties: { op: { const: op }, ...properties }
  }
}

function message (name: string, summary: string, payload: Schema, example: Record<string, unknown>): Schema {
  return { name, title: name, summary, contentType: 'application/json', payload, examples: [{ name, payload: example }] }
}

export const CLIENT_FRAMES = ['subscribe', 'unsubscribe', 'publish', 'ping', 'auth'] as const
export const SERVER_FRAMES = ['subscribed', 'unsubscribed', 'message', 'ack', 'lagging', 'gap', 'error', 'pong', 'authenticated'] as const

export const FRAMES: Record<(typeof CLIENT_FRAMES)[number] | (typeof SERVER_FRAMES)[number], Schema> = {
  subscribe: message('subscribe', 'Subscribe to topics, from the live end, the earliest record Kafka holds, or a cursor',
    frame('subscribe', ['topics'], { id, topics: topicsOrPatterns, from: { type: 'string', minLength: 1, maxLength: 65536, description: '`latest` (default), `earliest` or a cursor' } }),
    { op: 'subscribe', id: 'c1', topics: ['prices.btc'], from: 'latest' }),
  unsubscribe: message('unsubscribe', 'End subscriptions',
    frame('unsubscribe', ['topics'], { id, topics: topicsOrPatterns }),
    { op: 'unsubscribe', id: 'c2', topics: ['prices.btc'] }),
  publish: message('publish', 'Write a record; acked once Kafka has it',
    frame('publish', ['topic', 'value'], {
      id,
      topic,
      key: { type: ['string', 'null'], maxLength: 16384 },
      value: { description: 'As the topic\'s encoding says: any JSON value (json), a string (text), base64 (base64)' },
      headers: { type: 'object', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 8192 } }
    }),
    { op: 'publish', id: 'p1', topic: 'orders.alice', key: 'k', value: { qty: 1 }, headers: { h: 'v' } }),
  ping: message('ping', 'Ask for a pong', frame('ping', [], { id }), { op: 'ping', id: 'x' }),
  auth: message('auth', 'Renew the credential in-band before it expires (same subject, no wider access)',
    frame('auth', ['token'], { id, token: { type: 'string', minLength: 1, maxLength: 16384 } }),
    { op: 'auth', id: 'a1', token: '<fresh jwt>' }),
  subscribed: message('subscribed', 'The subscription is live', frame('subscribed', ['topics'], {
    id,
    topics: topicsOrPatterns,
    group: { const: true, description: 'Present in consumer-group mode' },
    matched: { type: 'array', items: topic, description: 'In the reply to a subscribe with patterns: the topics they reached' },
    pattern: { type: 'string', description: 'A topic created later that a pattern reached: `topics` names it' },
    cursor: { ...cursor, description: 'Where the subscription starts on every partition of its topics (not in group mode). Keep it, advance each partition past every message received, and reconnect with from=<cursor>: the gap is replayed exactly, even on partitions no message came from yet' }
  }),
  { op: 'subscribed', id: 'c1', topics: ['prices.btc'], cursor: 'prices.btc@0:42,1:17' }),
  unsubscribed: message('unsubscribed', 'Subscriptions ended', frame('unsubscribed', ['topics'], { id, topics: topicsOrPatterns }),
    { op: 'unsubscribed', id: 'c2', topics: ['prices.btc'] }),
  message: message('message', 'A record of a subscribed topic',
    frame('message', ['topic', 'partition', 'offset', 'timestamp', 'value'], {
      topic,
      partition: { type: 'integer', minimum: 0 },
      offset,
      timestamp: { type: 'integer', description: 'ms since the epoch' },
      key: { type: ['string', 'null'] },
      value: { description: 'Encoded as the topic\'s product declares (see the topic\'s channel)' },
      headers: { type: 'object', additionalProperties: { type: 'string' } },
      valueEncoding: { const: 'base64', description: 'Present when the record is not what its topic declares: sent in base64, never altered' },
      keyEncoding: { const: 'base64' },
      headersEncoding: { const: 'base64' }
    }),
    { op: 'message', topic: 'prices.btc', partition: 0, offset: '42', timestamp: 1732500000000, key: 'k', value: {}, headers: {} }),
  ack: message('ack', 'Kafka has the published record, at this partition and offset',
    frame('ack', ['topic', 'partition', 'offset'], { id, topic, partition: { type: 'integer', minimum: 0 }, offset }),
    { op: 'ack', id: 'p1', topic: 'orders.alice', partition: 1, offset: '7' }),
  lagging: message('lagging', 'The socket was too slow: records were dropped and the subscription ended; subscribe again from `resume`',
    frame('lagging', ['topic', 'dropped', 'resume'], { topic, dropped: { type: 'integer', minimum: 1 }, resume: cursor }),
    { op: 'lagging', topic: 'prices.btc', dropped: 120, resume: 'prices.btc@0:42,1:17' }),
  gap: message('gap', 'A replay (a cursor, earliest) found records of its gap gone from Kafka (retention, DeleteRecords): offsets from `from` up to `to` (not included) of this partition will not come; the replay goes on at `to`. Sent before any record from `to`',
    frame('gap', ['topic', 'partition', 'from', 'to'], { topic, partition: { type: 'integer', minimum: 0 }, from: offset, to: offset }),
    { op: 'gap', topic: 'prices.btc', partition: 0, from: '42', to: '1042' }),
  error: message('error', 'A frame was refused (naming its id), or a policy change ended subscriptions (naming the topics)',
    frame('error', ['code', 'message'], { id, code, message: { type: 'string' }, retryAfterMs: { type: 'integer', minimum: 0 }, topics }),
    { op: 'error', id: 'p1', code: 'FORBIDDEN', message: 'no access rule grants publish on this topic' }),
  pong: message('pong', 'The answer to a ping', frame('pong', [], { id }), { op: 'pong', id: 'x' }),
  authenticated: message('authenticated', 'The renewed credential is in force until expiresAt',
    frame('authenticated', [], { id, expiresAt: { type: 'integer', description: 'ms since the epoch; absent for a credential without expiry' } }),
    { op: 'authenticated', id: 'a1', expiresAt: 1732503600000 })
}
