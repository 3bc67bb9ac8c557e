// MQTT 5 PUBLISH properties through Kafka (issue 16): the ones a server must
// forward unaltered to every subscriber (5.0 3.3.2.3: Payload Format
// Indicator [MQTT-3.3.2-4], Message Expiry Interval [MQTT-3.3.2-5] and
// [MQTT-3.3.2-6], Content Type [MQTT-3.3.2-20], Response Topic
// [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16], User Properties in order
// [MQTT-3.3.2-17] [MQTT-3.3.2-18]) travel as headers of the Kafka record, so
// that any node, and any other Kafka consumer, reads them:
//
//   mqtt.payload-format    "0" or "1"
//   mqtt.expires-at        when the message expires, ms since the epoch (decimal): any node computes what is left
//   mqtt.content-type      the string's UTF-8 bytes
//   mqtt.response-topic    the topic name's UTF-8 bytes
//   mqtt.correlation-data  the bytes as they came
//   mqtt.user-properties   JSON [[name, value], ...] in the order the PUBLISH carried them (names may repeat)
//   mqtt.publisher         16 hex digits of the SHA-256 of the publisher's client id (No Local, 5.0
//                          [MQTT-3.8.3-3], compares it; the client id itself is not written)
//
// Headers are read back from records any producer may have written: each one
// is checked, and one that does not hold is left out, never thrown on.
import type { IPublishPacket } from 'mqtt-packet'

import { createHash } from 'node:crypto'

export const HEADERS = {
  publisher: 'mqtt.publisher',
  /** '1' when the PUBLISH had RETAIN 1: a Retain As Published subscription gets it with RETAIN 1 [MQTT-3.3.1-13] */
  retain: 'mqtt.retain',
  payloadFormat: 'mqtt.payload-format',
  expiresAt: 'mqtt.expires-at',
  contentType: 'mqtt.content-type',
  responseTopic: 'mqtt.response-topic',
  correlationData: 'mqtt.correlation-data',
  userProperties: 'mqtt.user-properties'
} as const

// MQTT 5 2.2.2.2 property identifiers
const ID = { payloadFormat: 0x01, messageExpiry: 0x02, contentType: 0x03, responseTopic: 0x08, correlationData: 0x09, userProperty: 0x26 } as const
// a UTF-8 string or binary data is at most 65,535 bytes (1.5.4, 1.5.6)
const MAX_FIELD = 65_535

/** A UTF-8 Encoded String as MQTT allows it (1.5.4): well-formed, no U+0000, at most 65,535 bytes. */
function mqttString (bytes: Buffer): string | undefined {
  if (bytes.length > MAX_FIELD) return undefined
  const text = bytes.toString('utf8')
  if (text.includes('\0') || Buffer.byteLength(text) !== bytes.length || !Buffer.from(text, 'utf8').equals(bytes)) return undefined
  return text
}

/** The user properties as ordered pairs: mqtt-packet gives an object, a repeated name's values as an array. */
function pairsOf (user: Record<string, string | string[]> | undefined): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  for (const [name, value] of Object.entries(user ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, String(v)])
  }
  return pairs
}

/**
 * Inbound: a 5.0 PUBLISH's properties as Kafka headers (none for 3.1.1), or the reason it is a protocol
 * error (a Response Topic with a wildcard, [MQTT-3.3.2-14]).
 */
export function headersOf (properties: IPublishPacket['properties'], now: number): Record<string, Buffer> | { error: string } {
  const headers: Record<string, Buffer> = {}
  if (!properties) return headers
  if (properties.payloadFormatIndicator !== undefined) headers[HEADERS.payloadFormat] = Buffer.from(properties.payloadFormatIndicator ? '1' : '0')
  if (properties.messageExpiryInterval !== undefined) headers[HEADERS.expiresAt] = Buffer.from(String(now + properties.messageExpiryInterval * 1000))
  if (properties.contentType !== undefined) headers[HEADERS.contentType] = Buffer.from(properties.contentType, 'utf8')
  if (properties.responseTopic !== undefined) {
    if (/[+#]/.test(properties.responseTopic)) return { error: 'a Response Topic is a topic name: no wildcards' }
    headers[HEADERS.responseTopic] = Buffer.from(properties.responseTopic, 'utf8')
  }
  if (properties.correlationData !== undefined) headers[HEADERS.correlationData] = Buffer.from(properties.correlationData)
  const pairs = pairsOf(properties.userProperties as Record<string, string | string[]> | undefined)
  if (pairs.length > 0) headers[HEADERS.userProperties] = Buffer.from(JSON.stringify(pairs), 'utf8')
  return headers
}

/** What a record's headers make of a 5.0 PUBLISH's properties. */
export interface Outgoing {
  /** the property list's bytes (without its length) */
  bytes: Buffer
  /** when the message expires (ms since the epoch), 0 if never */
  expiresAt: number
  /** where in `bytes` the Message Expiry Interval's 4 bytes are, -1 if none */
  expiryAt: number
}

function stringProperty (id: number, text: Buffer, into: Buffer[]): void {
  const head = Buffer.allocUnsafe(3)
  head[0] = id
  head.writeUInt16BE(text.length, 1)
  into.push(head, text)
}

/**
 * Outbound: the properties a record's headers hold, checked; undefined when there are none (the packet's
 * property list stays empty), 'expired' when its Message Expiry Interval has passed [MQTT-3.3.2-5].
 */
export function propertiesOf (headers: Record<string, Buffer> | undefined, now: number): Outgoing | 'expired' | undefined {
  if (!headers) return undefined
  const parts: Buffer[] = []
  let length = 0
  let expiresAt = 0
  let expiryAt = -1
  const push = (b: Buffer) => { parts.push(b); length += b.length }
  const format = headers[HEADERS.payloadFormat]?.toString('latin1')
  if (format === '0' || format === '1') push(Buffer.from([ID.payloadFormat, Number(format)]))
  const expires = headers[HEADERS.expiresAt]?.toString('latin1')
  if (expires !== undefined && /^\d{1,16}$/.test(expires)) {
    expiresAt = Number(expires)
    if (expiresAt <= now) return 'expired'
    // [MQTT-3.3.2-6]: the interval received less the time the message waited, in whole seconds (rounded up: not expired yet)
    const left = Math.min(0xffffffff, Math.ceil((expiresAt - now) / 1000))
    const bytes = Buffer.allocUnsafe(5)
    bytes[0] = ID.messageExpiry
    bytes.writeUInt32BE(left, 1)
    expiryAt = length + 1
    push(bytes)
  }
  const collected: Buffer[] = []
  const contentType = headers[HEADERS.contentType]
  if (contentType && mqttString(contentType) !== undefined) stringProperty(ID.contentType, contentType, collected)
  const responseTopic = headers[HEADERS.responseTopic]
  const topic = responseTopic ? mqttString(responseTopic) : undefined
  if (responseTopic && topic !== undefined && topic.length > 0 && !/[+#]/.test(topic)) stringProperty(ID.responseTopic, responseTopic, collected)
  const correlation = headers[HEADERS.correlationData]
  if (correlation && correlation.length <= MAX_FIELD) stringProperty(ID.correlationData, correlation, collected)
  const user = headers[HEADERS.userProperties]
  if (user) {
    let pairs: unknown
    try {
      pairs = JSON.parse(user.toString('utf8'))
    } catch {}
    if (Array.isArray(pairs)) {
      for (const pair of pairs) {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') continue
        const name = Buffer.from(pair[0], 'utf8')
        const value = Buffer.from(pair[1], 'utf8')
        if (mqttString(name) === undefined || mqttString(value) === undefined) continue
        const head = Buffer.allocUnsafe(3)
        head[0] = ID.userProperty
        head.writeUInt16BE(name.length, 1)
        const valueLength = Buffer.allocUnsafe(2)
        valueLength.writeUInt16BE(value.length, 0)
        collected.push(head, name, valueLength, value)
      }
    }
  }
  // one at a time: a 1 MiB PUBLISH may carry tens of thousands of user properties (a spread would overflow the stack)
  for (const b of collected) push(b)
  if (length === 0) return undefined
  return { bytes: Buffer.concat(parts, length), expiresAt, expiryAt }
}

/** The publisher tag of a client id: what the mqtt.publisher header holds, as a number (0: none). */
export function publisherTag (clientId: string): bigint {
  return BigInt('0x' + createHash('sha256').update(clientId, 'utf8').digest('hex').slice(0, 16)) || 1n
}

/** Whether a record was published retained: its mqtt.retain header is '1'. */
export function publishedRetained (headers: Record<string, Buffer> | undefined): boolean {
  const value = headers?.[HEADERS.retain]
  return value !== undefined && value.length === 1 && value[0] === 0x31
}

/** The tag a record's mqtt.publisher header holds, 0n when it has none (or one that is not 16 hex digits). */
export function publisherOf (headers: Record<string, Buffer> | undefined): bigint {
  const text = headers?.[HEADERS.publisher]?.toString('latin1')
  return text !== undefined && /^[0-9a-f]{16}$/.test(text) ? BigInt('0x' + text) || 1n : 0n
}
