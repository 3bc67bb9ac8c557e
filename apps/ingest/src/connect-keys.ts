// The Kafka Connect WebSocket source connector's keys: which native setting
// each stands for, the string values a .properties file gives them, and its
// "name:value,..." header list.
import { isPlainObject } from '@sluice/config'
import { HEADER_NAME } from './config-schema.ts'

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

type Raw = Record<string, unknown>

export function coerceConnectStrings (config: Raw): void {
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
