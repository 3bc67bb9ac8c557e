// The ingest config file's JSON Schema (server, log, kafka, feeds), its types,
// the feed defaults and the environment variables that override the file.
//
// Feed defaults live in FEED_DEFAULTS rather than in the schema: a feed may
// give a setting under either of two names, and a schema default would make
// the native name look given when only the Connect name was.
import type { FromSchema } from '@sluice/config/defaults'
import type { EnvBinding } from '@sluice/config'
import { kafkaEnvBindings, kafkaSchema, logSchema, serverSchema } from '@sluice/config/schemas'
import { TOPIC_NAME_PATTERN } from '@sluice/protocol/topics'
import { JSON_POINTER_PATTERN } from './json-pointer.ts'
import type { OverflowPolicy } from './buffer.ts'

export interface ReconnectConfig {
  enabled: boolean
  baseMs: number
  maxMs: number
  /** attempts per outage before the feed gives up; -1: never gives up */
  attempts: number
  jitter: number
}

export interface FeedConfig {
  name: string
  /** with secrets resolved: never logged (its query may hold an API key) */
  url: string
  topic: string
  /** text frames sent, in order, after every (re)connect; secrets resolved */
  subscribe: string[]
  /** handshake headers, `Authorization: Bearer <token>` included; never logged */
  headers: Record<string, string>
  connectTimeoutMs: number
  reconnect: ReconnectConfig
  buffer: { capacity: number, maxBytes: number, overflow: OverflowPolicy, pause: boolean }
  batch: { maxRecords: number, maxBytes: number }
  maxMessageBytes: number
  /** JSON pointer to the record key in a text frame */
  key?: string
  /** JSON pointer to the feed's sequence number in a text frame */
  sequence?: string
}

// server, log and kafka as the schema gives them (derived, json-schema-to-ts); feeds normalized by config.ts, each
// setting under one name whichever of its two the file used
export type IngestConfig = Omit<FromSchema<typeof ingestConfigSchema>, 'feeds'> & { feeds: FeedConfig[] }

export const FEED_DEFAULTS = {
  // Kafka Connect WebSocket source connector (conduktor/kafka-connect-websocket,
  // WebSocketSourceConnectorConfig): websocket.connection.timeout.ms = 30000
  connectTimeoutMs: 30_000,
  reconnect: {
    // connector: websocket.reconnect.enabled = true
    enabled: true,
    // connector: websocket.reconnect.interval.ms = 5000, the first delay, doubled per attempt
    baseMs: 5000,
    // connector: websocket.reconnect.backoff.max.ms = 60000
    maxMs: 60_000,
    // connector: websocket.reconnect.max.attempts = -1, "infinite"
    attempts: -1,
    // connector: WebSocketClient adds up to 25 % of the delay at random
    jitter: 0.25
  },
  buffer: {
    // connector: websocket.message.queue.size = 10000
    capacity: 10_000,
    // ours (the connector bounds only the count): 10 000 records of the 1–6 KiB
    // that trade and sensor messages weigh fit; a feed of huge frames cannot
    // take more than this per feed
    maxBytes: 64 * 1024 * 1024,
    // connector: a full LinkedBlockingDeque refuses offer(), so the newest is dropped
    overflow: 'drop-newest' as OverflowPolicy,
    // ours: lossless while the feed tolerates a reader that stops reading; a feed
    // that disconnects slow readers is reconnected (and its sequence shows the gap)
    pause: true
  },
  batch: {
    // 1000 records per produce request: at 50 000 messages/s and a few ms per
    // acks=all round trip that keeps up, and encoding it blocks the loop ~1 ms
    maxRecords: 1000,
    // under the broker's default message.max.bytes (1 048 588), which bounds a
    // whole record batch, leaving room for the per-record overhead counted below
    maxBytes: 900_000
  },
  // a frame must fit one Kafka record under the broker's default message.max.bytes
  maxMessageBytes: 1_000_000
} as const

// Limits of the schema, each with its reason.
// a connect or backoff delay past an hour is a misconfiguration, not a policy
const MAX_DELAY_MS = 3_600_000
// a million records is ~1 GiB of 1 KiB messages: past that, Kafka is the buffer, not this process
const MAX_CAPACITY = 1_000_000
// one feed may not hold more than 1 GiB of the process's memory
const MAX_BUFFER_BYTES = 1024 ** 3
// a frame of 64 MiB is past what any Kafka cluster accepts as one record
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024
// each feed is a socket, a buffer and a produce loop; hundreds belong in several processes
const MAX_FEEDS = 256
// subscription messages are small JSON requests; 64 KiB is a mistake, not a subscription
export const MAX_SUBSCRIPTION_BYTES = 64 * 1024
// more than 100 subscription messages per connect is a batch job, not a handshake
const MAX_SUBSCRIPTIONS = 100
// the per-record overhead kafkajs writes around key and value in a v2 record batch (varints, attributes, timestamp delta)
export const RECORD_OVERHEAD_BYTES = 70

export const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
// CR, LF or NUL in a header value would split or truncate the handshake request
export const HEADER_VALUE = '^[^\\r\\n\\0]*$'
// Kafka's topic-name rule (@sluice/protocol/topics), and not "." or "..", which
// Kafka also refuses: isTopicName checks those two in code, a schema has only its pattern
const TOPIC = '^(?!\\.{1,2}$)' + TOPIC_NAME_PATTERN.slice(1)
const FEED_NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'

const headersMap = {
  type: 'object',
  maxProperties: 64,
  propertyNames: { pattern: HEADER_NAME },
  additionalProperties: { type: 'string', pattern: HEADER_VALUE, maxLength: 8192 }
} as const

const delay = (minimum: number) => ({ type: 'integer', minimum, maximum: MAX_DELAY_MS }) as const

const feedSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: FEED_NAME },
    url: { type: 'string', minLength: 1, maxLength: 8192 },
    topic: { type: 'string', pattern: TOPIC },
    subscribe: {
      type: ['string', 'object', 'array'],
      maxItems: MAX_SUBSCRIPTIONS,
      items: { type: ['string', 'object'] }
    },
    headers: headersMap,
    token: { type: 'string', minLength: 1, maxLength: 8192 },
    // 100 ms: below that a handshake over any real network times out on a good day
    connectTimeoutMs: delay(100),
    reconnect: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        baseMs: delay(1),
        maxMs: delay(1),
        attempts: { type: 'integer', minimum: -1, maximum: 1_000_000_000 },
        jitter: { type: 'number', minimum: 0, maximum: 1 }
      }
    },
    buffer: {
      type: 'object',
      additionalProperties: false,
      properties: {
        capacity: { type: 'integer', minimum: 1, maximum: MAX_CAPACITY },
        // 1 KiB: the smallest buffer that still holds a typical message
        maxBytes: { type: 'integer', minimum: 1024, maximum: MAX_BUFFER_BYTES },
        overflow: { enum: ['drop-newest', 'drop-oldest'] },
        pause: { type: 'boolean' }
      }
    },
    batch: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // 10 000: a bigger request blocks the event loop for tens of ms while kafkajs encodes it
        maxRecords: { type: 'integer', minimum: 1, maximum: 10_000 },
        maxBytes: { type: 'integer', minimum: 1024, maximum: MAX_MESSAGE_BYTES }
      }
    },
    maxMessageBytes: { type: 'integer', minimum: 1, maximum: MAX_MESSAGE_BYTES },
    key: { type: 'string', pattern: JSON_POINTER_PATTERN },
    sequence: { type: 'string', pattern: JSON_POINTER_PATTERN },

    // The Kafka Connect WebSocket source connector's keys, same meanings.
    'websocket.url': { type: 'string', minLength: 1, maxLength: 8192 },
    'kafka.topic': { type: 'string', pattern: TOPIC },
    'websocket.subscription.message': { type: 'string', maxLength: MAX_SUBSCRIPTION_BYTES },
    'websocket.reconnect.enabled': { type: 'boolean' },
    'websocket.reconnect.interval.ms': delay(1),
    'websocket.reconnect.max.attempts': { type: 'integer', minimum: -1, maximum: 1_000_000_000 },
    'websocket.reconnect.backoff.max.ms': delay(1),
    // the connector's format is "name1:value1,name2:value2"; a mapping is accepted too
    'websocket.headers': { type: ['string', 'object'], maxLength: 65_536, ...omitType(headersMap) },
    'websocket.auth.token': { type: 'string', maxLength: 8192 },
    'websocket.message.queue.size': { type: 'integer', minimum: 1, maximum: MAX_CAPACITY },
    'websocket.connection.timeout.ms': delay(100)
  }
} as const

function omitType<T extends { type: string }> (schema: T): Omit<T, 'type'> {
  const { type: _type, ...rest } = schema
  return rest
}

export const ingestConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['feeds'],
  properties: {
    // 8081: beside the gateway's 8080 when both run on one host
    server: serverSchema(8081),
    log: logSchema,
    kafka: kafkaSchema('sluice-ingest'),
    feeds: { type: 'array', minItems: 1, maxItems: MAX_FEEDS, items: feedSchema }
  }
} as const

export const ingestEnvBindings: Record<string, EnvBinding> = {
  SLUICE_HOST: { path: '/server/host', type: 'string' },
  SLUICE_PORT: { path: '/server/port', type: 'integer' },
  SLUICE_SHUTDOWN_TIMEOUT_MS: { path: '/server/shutdownTimeoutMs', type: 'integer' },
  SLUICE_LOG_LEVEL: { path: '/log/level', type: 'string' },
  ...kafkaEnvBindings
}
