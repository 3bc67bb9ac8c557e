// The ingest app's configuration: a JSON Schema for the file (server, log,
// kafka, feeds), the environment variables that override it, and the loader
// that turns each feed, written with native keys or with the Kafka Connect
// WebSocket source connector's keys, into one normalized FeedConfig.
//
// Feed defaults live in FEED_DEFAULTS rather than in the schema: a feed may
// give a setting under either of two names, and a schema default would make
// the native name look given when only the Connect name was.
import { ConfigError, deepMerge, isPlainObject, loadConfig, readConfigFile, resolveReferences, resolveReferencesDeep, type ConfigProblem, type EnvBinding, type ReferenceContext } from '@sluice/config'
import { kafkaSchema, logSchema, serverSchema } from '@sluice/config/schemas'
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

export interface IngestConfig {
  server: { host: string, port: number, shutdownTimeoutMs: number }
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' }
  kafka: { brokers: string[], clientId: string, connectionTimeoutMs: number, requestTimeoutMs: number }
  feeds: FeedConfig[]
}

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
const MAX_SUBSCRIPTION_BYTES = 64 * 1024
// more than 100 subscription messages per connect is a batch job, not a handshake
const MAX_SUBSCRIPTIONS = 100
// the per-record overhead kafkajs writes around key and value in a v2 record batch (varints, attributes, timestamp delta)
export const RECORD_OVERHEAD_BYTES = 70

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
// CR, LF or NUL in a header value would split or truncate the handshake request
const HEADER_VALUE = '^[^\\r\\n\\0]*$'
const TOPIC = '^(?!\\.{1,2}$)[a-zA-Z0-9._-]{1,249}$'
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
  KAFKA_BROKERS: { path: '/kafka/brokers', type: 'list' },
  KAFKA_CLIENT_ID: { path: '/kafka/clientId', type: 'string' }
}

// Connect configs are string maps (.properties files): "5000" and "true" mean what they say
const CONNECT_INTEGER_KEYS = [
  'websocket.reconnect.interval.ms', 'websocket.reconnect.max.attempts', 'websocket.reconnect.backoff.max.ms',
  'websocket.message.queue.size', 'websocket.connection.timeout.ms'
]
const CONNECT_BOOLEAN_KEYS = ['websocket.reconnect.enabled']

/** Which native setting each Connect key stands for (the JSON pointer inside a feed). */
export const CONNECT_KEYS: Record<string, string> = {
  'websocket.url': '/url',
  'kafka.topic': '/topic',
  'websocket.subscription.message': '/subscribe',
  'websocket.reconnect.enabled': '/reconnect/enabled',
  'websocket.reconnect.interval.ms': '/reconnect/baseMs',
  'websocket.reconnect.max.attempts': '/reconnect/attempts',
  'websocket.reconnect.backoff.max.ms': '/reconnect/maxMs',
  'websocket.headers': '/headers',
  'websocket.auth.token': '/token',
  'websocket.message.queue.size': '/buffer/capacity',
  'websocket.connection.timeout.ms': '/connectTimeoutMs'
}

// Set by the WebSocket handshake itself; a feed that overrides them breaks the upgrade.
const HANDSHAKE_HEADERS = new Set(['host', 'upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'])

type Raw = Record<string, unknown>

function coerceConnectStrings (config: Raw): void {
  if (!Array.isArray(config.feeds)) return
  for (const feed of config.feeds) {
    if (!isPlainObject(feed)) continue
    for (const key of CONNECT_INTEGER_KEYS) {
      const value = feed[key]
      if (typeof value === 'string' && /^\s*-?\d{1,15}\s*$/.test(value)) feed[key] = Number(value)
    }
    for (const key of CONNECT_BOOLEAN_KEYS) {
      const value = feed[key]
      // Kafka's ConfigDef reads booleans case-insensitively
      if (typeof value === 'string' && /^\s*(true|false)\s*$/i.test(value)) feed[key] = value.trim().toLowerCase() === 'true'
    }
  }
}

/** Parses the connector's "name1:value1,name2:value2" (split at the first colon of each pair). */
export function parseConnectHeaders (text: string): { headers: Record<string, string>, errors: string[] } {
  const headers: Record<string, string> = {}
  const errors: string[] = []
  if (text.trim() === '') return { headers, errors }
  for (const [i, pair] of text.split(',').entries()) {
    const colon = pair.indexOf(':')
    if (colon === -1) {
      // the connector skips such a pair with a warning; here it is an error, so that a header is never silently missing
      errors.push(`pair ${i + 1} has no ":" between name and value`)
      continue
    }
    const name = pair.slice(0, colon).trim()
    const value = pair.slice(colon + 1).trim()
    if (!new RegExp(HEADER_NAME).test(name)) {
      errors.push(`pair ${i + 1}: the header name is not an HTTP token`)
      continue
    }
    headers[name] = value
  }
  return { headers, errors }
}

// ${env:NAME} references (Kafka Connect's syntax; @sluice/config resolves them for both apps) are read in a feed's URL, subscriptions, headers and token
type Context = ReferenceContext

function pointerGet (feed: Raw, pointer: string): unknown {
  let node: unknown = feed
  for (const segment of pointer.slice(1).split('/')) {
    if (!isPlainObject(node)) return undefined
    node = node[segment]
  }
  return node
}

/**
 * One setting that may be given natively or under its Connect key: returns the
 * given value (or undefined) and names a conflict when both are set.
 */
function pick (feed: Raw, base: string, connectKey: string, ctx: Context): { value: unknown, path: string } {
  const nativePointer = CONNECT_KEYS[connectKey]!
  const nativeValue = pointerGet(feed, nativePointer)
  const connectValue = feed[connectKey]
  if (nativeValue !== undefined && connectValue !== undefined) {
    const path = `${base}/${connectKey}`
    ctx.problems.push({ path, message: `conflicts with ${nativePointer.slice(1).replaceAll('/', '.')}: give one of the two`, source: ctx.locate(path) })
  }
  if (connectValue !== undefined) return { value: connectValue, path: `${base}/${connectKey}` }
  return { value: nativeValue, path: `${base}${nativePointer}` }
}

function normalizeFeed (feed: Raw, index: number, ctx: Context): FeedConfig {
  const base = `/feeds/${index}`
  const problem = (path: string, message: string) => ctx.problems.push({ path, message, source: ctx.locate(path) })
  const number = (connectKey: string, fallback: number): { value: number, path: string } => {
    const got = pick(feed, base, connectKey, ctx)
    return { value: typeof got.value === 'number' ? got.value : fallback, path: got.path }
  }

  const url = pick(feed, base, 'websocket.url', ctx)
  let resolvedUrl = ''
  if (typeof url.value !== 'string') {
    problem(`${base}/url`, 'is required (or websocket.url)')
  } else {
    resolvedUrl = resolveReferences(url.value, url.path, ctx)
    let parsed: URL | undefined
    try {
      parsed = new URL(resolvedUrl)
    } catch {}
    // the message never repeats the URL: its query may carry a key
    if (!parsed || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') || parsed.hostname === '') {
      problem(url.path, 'must be a ws:// or wss:// URL with a host')
    }
  }

  const topic = pick(feed, base, 'kafka.topic', ctx)
  if (typeof topic.value !== 'string') problem(`${base}/topic`, 'is required (or kafka.topic)')

  const sub = pick(feed, base, 'websocket.subscription.message', ctx)
  const subscribe: string[] = []
  const messages = sub.value === undefined || sub.value === '' ? [] : Array.isArray(sub.value) ? sub.value : [sub.value]
  for (const [i, message] of messages.entries()) {
    const path = Array.isArray(sub.value) ? `${sub.path}/${i}` : sub.path
    const resolved = resolveReferencesDeep(message, path, ctx)
    const text = typeof resolved === 'string' ? resolved : JSON.stringify(resolved)
    if (Buffer.byteLength(text) > MAX_SUBSCRIPTION_BYTES) problem(path, `must be at most ${MAX_SUBSCRIPTION_BYTES} bytes`)
    subscribe.push(text)
  }

  const headers: Record<string, string> = {}
  const givenHeaders = pick(feed, base, 'websocket.headers', ctx)
  let headerMap: Record<string, unknown> = {}
  if (typeof givenHeaders.value === 'string') {
    const parsed = parseConnectHeaders(givenHeaders.value)
    for (const error of parsed.errors) problem(givenHeaders.path, error)
    headerMap = parsed.headers
  } else if (isPlainObject(givenHeaders.value)) {
    headerMap = givenHeaders.value
  }
  for (const [name, value] of Object.entries(headerMap)) {
    const path = typeof givenHeaders.value === 'string' ? givenHeaders.path : `${givenHeaders.path}/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`
    if (HANDSHAKE_HEADERS.has(name.toLowerCase())) {
      problem(path, `header ${name} is set by the WebSocket handshake and cannot be configured`)
      continue
    }
    const resolved = resolveReferences(String(value), path, ctx)
    if (!new RegExp(HEADER_VALUE).test(resolved)) problem(path, `header ${name}: the value contains CR, LF or NUL`)
    headers[name] = resolved
  }
  const token = pick(feed, base, 'websocket.auth.token', ctx)
  if (typeof token.value === 'string' && token.value !== '') {
    if (Object.keys(headers).some(h => h.toLowerCase() === 'authorization')) {
      problem(token.path, 'conflicts with an Authorization header: give one of the two')
    }
    const resolved = resolveReferences(token.value, token.path, ctx)
    if (!new RegExp(HEADER_VALUE).test(resolved)) problem(token.path, 'the token contains CR, LF or NUL')
    // as the connector does: the token goes in as a bearer credential
    headers.Authorization = `Bearer ${resolved}`
  }

  const enabled = pick(feed, base, 'websocket.reconnect.enabled', ctx)
  const baseMs = number('websocket.reconnect.interval.ms', FEED_DEFAULTS.reconnect.baseMs)
  const maxMs = number('websocket.reconnect.backoff.max.ms', FEED_DEFAULTS.reconnect.maxMs)
  const attempts = number('websocket.reconnect.max.attempts', FEED_DEFAULTS.reconnect.attempts)
  let attemptsValue = attempts.value
  if (attemptsValue === 0) {
    // the connector limits attempts only when the setting is above 0, so its 0 means unlimited;
    // natively, 0 reads as "never", which reconnect.enabled: false says unambiguously
    if (attempts.path.endsWith('websocket.reconnect.max.attempts')) attemptsValue = -1
    else problem(attempts.path, 'must be -1 (unlimited) or at least 1; to never reconnect, set reconnect.enabled: false')
  }
  if (maxMs.value < baseMs.value) problem(maxMs.path, `must be at least the base delay (${baseMs.value} ms)`)

  const reconnect = isPlainObject(feed.reconnect) ? feed.reconnect : {}
  const buffer = isPlainObject(feed.buffer) ? feed.buffer : {}
  const batch = isPlainObject(feed.batch) ? feed.batch : {}
  const capacity = number('websocket.message.queue.size', FEED_DEFAULTS.buffer.capacity)
  const maxBytes = typeof buffer.maxBytes === 'number' ? buffer.maxBytes : FEED_DEFAULTS.buffer.maxBytes
  const maxMessageBytes = typeof feed.maxMessageBytes === 'number' ? feed.maxMessageBytes : FEED_DEFAULTS.maxMessageBytes
  if (maxMessageBytes > maxBytes) problem(`${base}/maxMessageBytes`, `must not exceed buffer.maxBytes (${maxBytes})`)

  return {
    name: String(feed.name),
    url: resolvedUrl,
    topic: String(topic.value),
    subscribe,
    headers,
    connectTimeoutMs: number('websocket.connection.timeout.ms', FEED_DEFAULTS.connectTimeoutMs).value,
    reconnect: {
      enabled: typeof enabled.value === 'boolean' ? enabled.value : FEED_DEFAULTS.reconnect.enabled,
      baseMs: baseMs.value,
      maxMs: maxMs.value,
      attempts: attemptsValue,
      jitter: typeof reconnect.jitter === 'number' ? reconnect.jitter : FEED_DEFAULTS.reconnect.jitter
    },
    buffer: {
      capacity: capacity.value,
      maxBytes,
      overflow: (buffer.overflow as OverflowPolicy | undefined) ?? FEED_DEFAULTS.buffer.overflow,
      pause: typeof buffer.pause === 'boolean' ? buffer.pause : FEED_DEFAULTS.buffer.pause
    },
    batch: {
      maxRecords: typeof batch.maxRecords === 'number' ? batch.maxRecords : FEED_DEFAULTS.batch.maxRecords,
      maxBytes: typeof batch.maxBytes === 'number' ? batch.maxBytes : FEED_DEFAULTS.batch.maxBytes
    },
    maxMessageBytes,
    key: typeof feed.key === 'string' ? feed.key : undefined,
    sequence: typeof feed.sequence === 'string' ? feed.sequence : undefined
  }
}

/** Every problem under /feeds/N also names feed N, so an admin with thirty feeds finds it by name. */
function nameFeeds (problems: ConfigProblem[], raw: Raw): ConfigProblem[] {
  const feeds = Array.isArray(raw.feeds) ? raw.feeds : []
  return problems.map(p => {
    const m = /^\/feeds\/(\d+)(\/|$)/.exec(p.path)
    if (!m) return p
    const feed = feeds[Number(m[1])]
    const name = isPlainObject(feed) && typeof feed.name === 'string' ? feed.name : `#${m[1]}`
    return { ...p, message: `feed "${name}": ${p.message}` }
  })
}

type CheckedConfig = Omit<IngestConfig, 'feeds'> & { feeds: Raw[] }

export interface LoadIngestConfigOptions {
  file?: string
  env?: Record<string, string | undefined>
  /** parsed already (tests); merged under the file's values */
  base?: Record<string, unknown>
}

/** Throws ConfigError naming every problem, with its path, its feed and where it came from. */
export function loadIngestConfig (options: LoadIngestConfigOptions = {}): IngestConfig {
  const problems: ConfigProblem[] = []
  let merged: Raw = structuredClone(options.base ?? {})
  let locate: (pointer: string) => string | undefined = () => undefined
  if (options.file) {
    const read = readConfigFile(options.file)
    problems.push(...read.problems)
    locate = read.locate
    if (read.value) merged = deepMerge(merged, read.value)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  coerceConnectStrings(merged)

  let checked: CheckedConfig | undefined
  try {
    checked = loadConfig<CheckedConfig>({ schema: ingestConfigSchema, base: merged, env: options.env, envBindings: ingestEnvBindings })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems.map(p => ({ ...p, source: p.source ?? locate(p.path) })))
  }

  // Settings spread over two spellings and ${env:...} references are checked
  // once the shapes are right; every problem of this pass is reported at once.
  let feeds: FeedConfig[] = []
  if (checked) {
    const ctx: Context = { env: options.env ?? {}, problems, locate }
    feeds = checked.feeds.map((feed, i) => normalizeFeed(feed, i, ctx))
    const seen = new Map<string, number>()
    for (const [i, feed] of feeds.entries()) {
      const first = seen.get(feed.name)
      if (first !== undefined) problems.push({ path: `/feeds/${i}/name`, message: `duplicates the name of /feeds/${first}`, source: locate(`/feeds/${i}/name`) })
      else seen.set(feed.name, i)
    }
  }
  if (problems.length > 0 || !checked) throw new ConfigError(nameFeeds(problems, merged))
  return { ...checked, feeds }
}
