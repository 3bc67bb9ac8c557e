// The ingest app's configuration loader: reads the file and the environment
// (the schema and its env bindings in config-schema.ts), and turns each feed,
// written with native keys or with the Kafka Connect WebSocket source
// connector's keys (connect-keys.ts), into one normalized FeedConfig.
import { ConfigError, deepMerge, isPlainObject, loadConfig, readConfigFile, resolveReferences, resolveReferencesDeep, unresolvedReference, type ConfigProblem, type ReferenceContext } from '@sluice/config'
import type { OverflowPolicy } from './buffer.ts'
import { FEED_DEFAULTS, ingestConfigSchema, ingestEnvBindings, HEADER_VALUE, MAX_SUBSCRIPTION_BYTES, type FeedConfig, type IngestConfig } from './config-schema.ts'
import { CONNECT_KEYS, coerceConnectStrings, parseConnectHeaders } from './connect-keys.ts'

export { FEED_DEFAULTS, ingestConfigSchema, ingestEnvBindings, RECORD_OVERHEAD_BYTES } from './config-schema.ts'
export type { FeedConfig, IngestConfig, ReconnectConfig } from './config-schema.ts'
export { CONNECT_KEYS, parseConnectHeaders } from './connect-keys.ts'

// Set by the WebSocket handshake itself; a feed that overrides them breaks the upgrade.
const HANDSHAKE_HEADERS = new Set(['host', 'upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'])

type Raw = Record<string, unknown>

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

/**
 * kafka.sasl's username and password may be ${env:NAME} in the file, as the gateway's; a value from
 * the environment (KAFKA_SASL_*) is used as it is. Either way a password still shaped like a
 * reference is refused, not sent to Kafka as the password.
 */
function resolveKafkaSasl (checked: CheckedConfig, file: Record<string, unknown>, ctx: Context): void {
  const sasl = checked.kafka.sasl
  if (!sasl) return
  const written = (file.kafka as { sasl?: Record<string, unknown> } | undefined)?.sasl
  for (const field of ['username', 'password'] as const) {
    const path = `/kafka/sasl/${field}`
    const value = sasl[field] === written?.[field] ? resolveReferences(sasl[field], path, ctx) : sasl[field]
    const why = unresolvedReference(value, field === 'password')
    if (why) ctx.problems.push({ path, message: why, source: ctx.locate(path) })
    else sasl[field] = value
  }
}

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
    resolveKafkaSasl(checked, merged, ctx)
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
