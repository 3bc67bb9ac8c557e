// Fastify-free: the AsyncAPI 3.0.0 document of the WebSocket API, a pure
// function of the policy. Per product topic (an exact name or a pattern) one
// channel whose message is the record value the product declares (its schema
// and an example); per channel the operations the access rules allow, from
// the client's side: `receive` (subscribe) and `send` (publish), naming the
// plans. The native protocol's frames on /v1/stream are the messages of one
// more channel, with the two operations that carry them. Security schemes are
// the credentials /v1/stream accepts; the server is the gateway's /v1/stream.
// A product's MQTT mappings (policy `mqtt:`) add an `mqtt` server (GET /mqtt,
// MQTT 3.1.1 and 5.0 over WebSocket) and one channel per mapping, addressed by
// its MQTT topic with the mapping's {name} levels as parameters, whose
// operations are the Kafka topic's: the same rules reach both.
import type { PolicyDocument } from '@sluice/policy'
import { compilePattern, type TopicPattern } from '@sluice/policy/topics'
import { topicExample } from './catalogue.ts'
import { FRAMES, CLIENT_FRAMES, SERVER_FRAMES } from './frames.ts'

export interface AsyncApiOptions {
  /** host[:port] clients connect to */
  host: string
  protocol: 'ws' | 'wss'
  /** the policy version in force, shown as x-sluice-policy-version (left out of the committed file) */
  policyVersion?: string
}

export type AsyncApiDocument = Record<string, unknown> & { channels: Record<string, unknown>, operations: Record<string, unknown> }

type Schema = Record<string, unknown>
type Encoding = 'json' | 'text' | 'base64'

// the version of the protocol (subprotocol sluice.v1), not of the policy
const API_VERSION = '1.0.0'
const STREAM_PATH = '/v1/stream'
const STREAM_CHANNEL = 'stream'
const MQTT_PATH = '/mqtt'
const SECURITY = ['bearerJwt', 'apiKey', 'accessTokenQuery', 'apiKeyQuery'] as const

const CONTENT_TYPES: Record<Encoding, string> = { json: 'application/json', text: 'text/plain', base64: 'application/octet-stream' }
const PLAIN_PAYLOADS: Record<Encoding, Schema> = {
  json: { description: 'Any JSON value: the product declares no schema for this topic' },
  text: { type: 'string', description: 'UTF-8 text, sent as a JSON string in the frame\'s value' },
  base64: { type: 'string', contentEncoding: 'base64', description: 'Bytes, sent base64-encoded in the frame\'s value' }
}

/** 65536 -> "64 KiB", 60000 -> "60 s": a product's resume window as a client developer reads it */
function bytesText (bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} bytes`
}
const msText = (ms: number) => ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`

/** What a product's `resume` promises a client, or nothing when it sets none (the gateway's own window then). */
function resumeText (resume: { windowBytes?: number, windowMs?: number } | undefined): string {
  if (!resume || (resume.windowBytes === undefined && resume.windowMs === undefined)) return ''
  if (resume.windowBytes === 0 || resume.windowMs === 0) return ' This product keeps none of its recent records in memory for resumes: a resume (`from=<cursor>`) is read from Kafka.'
  const kept = [resume.windowBytes === undefined ? undefined : bytesText(resume.windowBytes), resume.windowMs === undefined ? undefined : msText(resume.windowMs)]
  // another product serving the same topic may keep more: the node keeps the largest
  return ` Each node keeps this topic's recent records in memory, up to ${kept.filter(Boolean).join(' and ')} (or more when another product serves the topic too): a resume (\`from=<cursor>\`) inside them is written from there, with no Kafka read.`
}

export const securitySchemes = {
  bearerJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: '`Authorization: Bearer <jwt>`. Browsers, which cannot set headers, offer the subprotocols `sluice.v1` and `bearer.<jwt>` instead (the server selects `sluice.v1` and never echoes the token).'
  },
  apiKey: {
    type: 'httpApiKey',
    name: 'X-API-Key',
    in: 'header',
    description: 'An API key issued by the admin API for one product and plan.'
  },
  accessTokenQuery: {
    type: 'httpApiKey',
    name: 'access_token',
    in: 'query',
    description: 'A JWT in the query string, for browsers (redacted from the gateway\'s logs).'
  },
  apiKeyQuery: {
    type: 'httpApiKey',
    name: 'api_key',
    in: 'query',
    description: 'An API key in the query string, for browsers (redacted from the gateway\'s logs).'
  }
}

/** A channel or operation id: AsyncAPI ids are [A-Za-z0-9_-] (and `.`, which would read as a topic). */
function slug (text: string): string {
  return text.replace(/\*\*/g, 'all').replace(/\*/g, 'any').replace(/[^A-Za-z0-9_-]+/g, '_')
}

// a claim in a rule pattern stands for one plain segment: any sample will do to see which topics it reaches
function sampleMatcher (pattern: TopicPattern): RegExp | undefined {
  return pattern.resolve(Object.fromEntries(pattern.claims.map(c => [c, 'x'])))
}

function compiled (source: string, templates: boolean): TopicPattern | undefined {
  try {
    return compilePattern(source, { templates })
  } catch {
    return undefined // the policy was validated: this cannot happen with a loaded one
  }
}

interface Access {
  plans: Set<string>
  grants: string[]
}

function describeAccess (words: string, pattern: string, access: Access): string {
  const plans = [...access.plans].join(', ')
  return `${words} ${pattern}: plan${access.plans.size > 1 ? 's' : ''} ${plans}. Granted by:\n\n${access.grants.map(g => `- ${g}`).join('\n')}`
}

function channelsOfProduct (document: PolicyDocument, productName: string, channels: Record<string, unknown>, operations: Record<string, unknown>): void {
  const product = document.products[productName]!
  const topics = product.topics.map((topic, i) => {
    let id = `${productName}-${slug(topic.pattern)}`
    while (Object.hasOwn(channels, id)) id = `${id}-${i}`
    const encoding: Encoding = topic.encoding ?? 'json'
    const payload = topic.schema && encoding === 'json' ? topic.schema : PLAIN_PAYLOADS[encoding]
    channels[id] = {
      address: topic.pattern,
      title: topic.pattern,
      ...(topic.description ? { summary: topic.description } : {}),
      description: [
        topic.description,
        `Product **${product.title ?? productName}** (\`${productName}\`). ${topic.pattern.includes('*') ? 'A pattern: `*` is one or more characters within a dot-separated segment, `**` any characters, dots included. ' : ''}` +
          `Values are \`${encoding}\` in the \`value\` of a \`message\` frame. A slow client ${(topic.slowClient ?? 'lagging') === 'evict' ? 'is closed with 4008' : 'gets a `lagging` frame with a resume cursor'}.${resumeText(product.resume)}`
      ].filter(Boolean).join('\n\n'),
      messages: {
        record: {
          name: 'record',
          title: `A record of ${topic.pattern}`,
          contentType: CONTENT_TYPES[encoding],
          payload,
          examples: [{ name: 'example', payload: topicExample(topic) }]
        }
      },
      tags: [{ name: productName }],
      'x-sluice-product': productName,
      'x-sluice-encoding': encoding,
      'x-sluice-slow-client': topic.slowClient ?? 'lagging',
      // the product's resume window as the policy says it (windowBytes, windowMs); absent: the gateway's
      ...(product.resume ? { 'x-sluice-resume-window': { ...product.resume } } : {})
    }
    const matcher = compiled(topic.pattern, false)
    return { id, topic, matcher: matcher?.resolve({}), sample: matcher?.sample, access: { receive: undefined as Access | undefined, send: undefined as Access | undefined } }
  })

  for (const rule of document.rules) {
    if (rule.product !== productName) continue
    for (const [action, verb] of [['subscribe', 'receive'], ['publish', 'send']] as const) {
      for (const source of rule[action] ?? []) {
        const pattern = compiled(source, true)
        if (!pattern) continue
        const ruleMatcher = sampleMatcher(pattern)
        for (const t of topics) {
          // the rule reaches this topic when either pattern's sample fits the other
          const reaches = (t.matcher?.test(pattern.sample) ?? false) || (t.sample !== undefined && (ruleMatcher?.test(t.sample) ?? false))
          if (!reaches) continue
          const access = t.access[verb] ??= { plans: new Set(), grants: [] }
          access.plans.add(rule.plan)
          const template = pattern.claims.length > 0 ? ` (\`{${pattern.claims.join('}`, `{')}}\` from the credential's claims)` : ''
          access.grants.push(`\`${source}\`${template}, plan ${rule.plan}${rule.description ? `: ${rule.description}` : ''}`)
        }
      }
    }
  }

  for (const t of topics) {
    for (const [verb, op, words] of [['receive', 'subscribe', 'Subscribe to'], ['send', 'publish', 'Publish to']] as const) {
      const access = t.access[verb]
      if (!access) continue
      operations[`${t.id}-${op}`] = {
        action: verb,
        channel: { $ref: `#/channels/${t.id}` },
        title: `${words} ${t.topic.pattern}`,
        summary: verb === 'receive'
          ? `Records of ${t.topic.pattern}, in \`message\` frames after a \`subscribe\` frame (or ?topics= at open).`
          : `A \`publish\` frame to ${t.topic.pattern}, acked once Kafka has the record.`,
        description: describeAccess(words, t.topic.pattern, access),
        messages: [{ $ref: `#/channels/${t.id}/messages/record` }],
        tags: [{ name: productName }],
        'x-sluice-plans': [...access.plans]
      }
    }
  }

  for (const [i, mapping] of (product.mqtt ?? []).entries()) {
    // the Kafka topic's channel: its {name} parts filled with a sample, as a rule's are
    const kafka = compiled(mapping.topic, true)
    const t = kafka && topics.find(topic => topic.matcher?.test(kafka.sample))
    if (!t) continue
    let id = `${productName}-mqtt-${slug(mapping.filter.replace(/[{}]/g, ''))}`
    while (Object.hasOwn(channels, id)) id = `${id}-${i}`
    const names = [...mapping.filter.matchAll(/\{([a-z][a-z0-9_]*)\}/g)].map(m => m[1]!)
    const record = (channels[t.id] as { messages: { record: Record<string, unknown> } }).messages.record
    channels[id] = {
      address: mapping.filter,
      title: `MQTT ${mapping.filter}`,
      description: `Product **${product.title ?? productName}** (\`${productName}\`) over MQTT (\`${MQTT_PATH}\`): a message to \`${mapping.filter}\` is a record of Kafka topic \`${mapping.topic}\` with key \`${mapping.key}\`, and its records come back under this name. ` +
        'Subscribe with `+` or `#` in place of any level (shared subscriptions: `$share/{ShareName}/{filter}`). The payload is the record value\'s bytes.',
      ...(names.length > 0 ? { parameters: Object.fromEntries(names.map(n => [n, { description: `One topic level; part of the Kafka record's key (\`${mapping.key}\`) or topic (\`${mapping.topic}\`).` }])) } : {}),
      servers: [{ $ref: '#/servers/mqtt' }],
      messages: { record: { ...record, name: 'record', title: `A message of ${mapping.filter}` } },
      tags: [{ name: productName }],
      'x-sluice-product': productName,
      'x-sluice-kafka-topic': mapping.topic,
      'x-sluice-kafka-key': mapping.key
    }
    for (const [verb, op, words] of [['receive', 'subscribe', 'Subscribe to'], ['send', 'publish', 'Publish to']] as const) {
      const access = t.access[verb]
      if (!access) continue
      operations[`${id}-${op}`] = {
        action: verb,
        channel: { $ref: `#/channels/${id}` },
        title: `${words} ${mapping.filter} (MQTT)`,
        summary: verb === 'receive'
          ? `PUBLISH packets of ${mapping.filter} after a SUBSCRIBE (QoS 0 or 1).`
          : `A PUBLISH to ${mapping.filter}, PUBACKed (QoS 1) once Kafka has the record.`,
        description: describeAccess(words, mapping.topic, access),
        messages: [{ $ref: `#/channels/${id}/messages/record` }],
        tags: [{ name: productName }],
        'x-sluice-plans': [...access.plans]
      }
    }
  }
}

function streamChannel (): Record<string, unknown> {
  const refs = (names: readonly string[]) => Object.fromEntries(names.map(n => [n, { $ref: `#/components/messages/${n}` }]))
  return {
    // the socket itself: topic channels are addressed by topic names inside its frames
    address: null,
    title: 'The /v1/stream socket',
    description: 'One JSON object per text frame, in both directions. `id` (1 to 128 characters) is optional and echoed in the reply. Offsets are decimal strings (Kafka offsets are 64-bit).',
    messages: refs([...CLIENT_FRAMES, ...SERVER_FRAMES]),
    bindings: {
      ws: {
        method: 'GET',
        query: {
          type: 'object',
          properties: {
            topics: { type: 'string', description: 'Comma-separated topics, or patterns (`*` within a dot-separated segment, `**` across dots), to subscribe to at open (at most 100; group mode takes names only).' },
            from: { type: 'string', description: '`latest` (default), `earliest`, or a resume cursor. With `group`: `latest` or `earliest`, where the group starts on a partition it has no committed offset for; a cursor is refused (400).' },
            group: { type: 'string', description: 'Consumer-group mode: each record goes to one socket of the group, which resumes from the group\'s committed offsets.' },
            access_token: { type: 'string', description: 'A JWT, for browsers.' },
            api_key: { type: 'string', description: 'An API key, for browsers.' }
          }
        },
        bindingVersion: '0.1.0'
      }
    }
  }
}

function streamOperations (): Record<string, unknown> {
  const refs = (names: readonly string[]) => names.map(n => ({ $ref: `#/channels/${STREAM_CHANNEL}/messages/${n}` }))
  return {
    'stream-send-frames': {
      action: 'send',
      channel: { $ref: `#/channels/${STREAM_CHANNEL}` },
      title: 'Client frames',
      summary: 'What a client sends on the socket: subscribe, unsubscribe, publish, ping, auth.',
      messages: refs(CLIENT_FRAMES)
    },
    'stream-receive-frames': {
      action: 'receive',
      channel: { $ref: `#/channels/${STREAM_CHANNEL}` },
      title: 'Server frames',
      summary: 'What the gateway sends: subscribed, unsubscribed, message, ack, lagging, gap, error, pong, authenticated.',
      messages: refs(SERVER_FRAMES)
    }
  }
}

const MQTT_PASSWORD = {
  type: 'userPassword',
  description: 'MQTT CONNECT: the password is an issued API key or a JWT; the username is any string.'
}

/**
 * The AsyncAPI document of every product of the policy, or of `only` that one
 * (undefined when the policy has no such product).
 */
export function asyncapiDocument (document: PolicyDocument | undefined, options: AsyncApiOptions, only?: string): AsyncApiDocument | undefined {
  const products = document ? Object.keys(document.products) : []
  if (only !== undefined && !products.includes(only)) return undefined
  const channels: Record<string, unknown> = {}
  const operations: Record<string, unknown> = {}
  for (const name of only !== undefined ? [only] : products) channelsOfProduct(document!, name, channels, operations)
  channels[STREAM_CHANNEL] = streamChannel()
  Object.assign(operations, streamOperations())

  const product = only !== undefined ? document!.products[only]! : undefined
  const mqtt = Object.values(channels).some(c => (c as { servers?: unknown }).servers !== undefined)
  // a copy: the document shares nothing with the policy or the next document (callers may serialize or mutate it)
  return structuredClone({
    asyncapi: '3.0.0',
    info: {
      title: product ? `${product.title ?? only} (Sluice)` : 'Sluice WebSocket API',
      version: API_VERSION,
      description: [
        product?.description,
        'Kafka topics served over one WebSocket (`/v1/stream`, subprotocol `sluice.v1`). ' +
          'Generated from the gateway\'s policy: one channel per product topic (an exact topic name or a pattern), ' +
          'with the operations its access rules allow, from the client\'s side: `receive` is a subscription, `send` a publish. ' +
          'The frames of the protocol are the messages of the `stream` channel.'
      ].filter(Boolean).join('\n\n'),
      tags: (only !== undefined ? [only] : products).map(name => ({ name, description: document!.products[name]!.title ?? name }))
    },
    ...(options.policyVersion ? { 'x-sluice-policy-version': options.policyVersion } : {}),
    defaultContentType: 'application/json',
    servers: {
      gateway: {
        host: options.host,
        protocol: options.protocol,
        pathname: STREAM_PATH,
        title: 'The gateway\'s native stream API',
        description: 'Credentials are checked before the upgrade (401/403/429 with a JSON error); afterwards every frame is checked again.',
        security: SECURITY.map(name => ({ $ref: `#/components/securitySchemes/${name}` }))
      },
      ...(mqtt
        ? {
            mqtt: {
              host: options.host,
              protocol: options.protocol,
              pathname: MQTT_PATH,
              title: 'MQTT 3.1.1 and 5.0 over WebSocket',
              description: 'Subprotocol `mqtt` (MQTT.js: `mqtt.connect(\'' + options.protocol + '://' + options.host + MQTT_PATH + '\', { password })`). ' +
                'The CONNECT\'s password is an API key or a JWT (the username is not checked); the same rules and plans as /v1/stream apply. ' +
                'A plain TCP listener serves the same when the operator enables it (mqtt.tcpPort).',
              security: [{ $ref: '#/components/securitySchemes/mqttPassword' }]
            }
          }
        : {})
    },
    channels,
    operations,
    components: {
      messages: FRAMES,
      securitySchemes: mqtt ? { ...securitySchemes, mqttPassword: MQTT_PASSWORD } : securitySchemes
    }
  })
}
