// What the MQTT suites share (test/mqtt-websocket, mqtt-tcp, mqtt-sessions):
// a policy with MQTT mappings over topics of the file's own, a gateway as
// shipped (buildApp, JWT and API-key auth, Redis-backed limits under a prefix
// of its own) with MQTT over WebSocket and optionally over TCP, and the
// MQTT.js helpers the suites read answers with. Each test file is a process of
// its own, so the topic names below are the file's.
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { FastifyInstance } from 'fastify'
import { KafkaClient, type ConsumedRecord } from '@sluice/kafka'
import { freePort } from '@sluice/stack'
import { startGateway } from '../harness/gateway.ts'
import { policyDir } from '../harness/policy.ts'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { kafkaBrokers, redisUrl, unique } from '../helpers.ts'

export const DEV_TOKEN = 'mqtt-suite-dev-token-0123456789abcdef'
const SECRET = 'mqtt-suite-hs256-secret-0123456789abcdef'
export const TEMP = unique('mqtt-temp')
export const HUM = unique('mqtt-hum')
export const READINGS = unique('mqtt-readings')
export const DEVICES = `mqtt-dev-${randomBytes(4).toString('hex')}`
// the file's own retained messages (plugins/mqtt/src/retained.ts), not every suite's in sluice.mqtt.retained
export const RETAINED = unique('mqtt-retained')
// and its own persistent sessions (plugins/mqtt/src/persistence.ts): a fixed client id of one run is not resumed by the next
export const SESSIONS = unique('mqtt-sessions')

// devices (JWTs) reach only their own devices/{sub}/ topics; API keys read temperatures; the dev token is a dashboard
export const POLICY = `
version: 1
plans:
  basic:
    limits: { connections: 50, connectsPerMinute: 600, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 }
products:
  iot:
    plans: [basic]
    topics:
      - pattern: ${TEMP}
      - pattern: ${HUM}
      - pattern: ${READINGS}
      - pattern: ${DEVICES}.*
    mqtt:
      - { filter: 'sensors/{device}/temp', topic: '${TEMP}', key: '{device}' }
      - { filter: 'sensors/{device}/hum', topic: '${HUM}', key: '{device}' }
      - { filter: 'readings/{device}', topic: '${READINGS}', key: '{device}' }
      - { filter: 'devices/{device}/{kind}', topic: '${DEVICES}.{device}', key: '{kind}' }
rules:
  - name: devices
    product: iot
    plan: basic
    match: { kinds: [jwt] }
    subscribe: ['${DEVICES}.{sub}']
    publish: ['${DEVICES}.{sub}']
  - name: keys
    product: iot
    plan: basic
    match: { kinds: [api-key] }
    subscribe: ['${TEMP}']
  - name: dashboards
    product: iot
    plan: basic
    match: { kinds: [dev] }
    subscribe: ['${TEMP}', '${HUM}']
    publish: ['${TEMP}', '${READINGS}']
`

// the topics exist before any gateway starts: nothing it lists or caches at boot can miss them
const topicsReady = (async () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'mqtt-suite-topics' })
  try {
    await kafka.ensureTopics([TEMP, HUM, READINGS, `${DEVICES}.d1`, `${DEVICES}.d2`].map(topic => ({ topic, partitions: 1 })))
  } finally {
    await kafka.close()
  }
})()

export interface MqttGateway {
  app: FastifyInstance
  /** ws://…/mqtt */
  url: string
  /** the policy directory, for suites that rewrite it */
  dir: string
  /** the MQTT TCP listener's port, when asked for (a number, not 0, as operators give it) */
  tcpPort?: number
}

export async function gateway (t: Test, options: { tcp?: boolean, pollIntervalMs?: number, retainedTopic?: string, retainedMaxBytes?: number, topicAliasMaximum?: number } = {}): Promise<MqttGateway> {
  const dir = policyDir(POLICY)
  const tcpPort = options.tcp ? await freePort() : undefined
  await topicsReady
  const { app, url } = await startGateway({
    t,
    policyDir: dir,
    config: {
      server: { host: '127.0.0.1' },
      mqtt: {
        ...(tcpPort === undefined ? {} : { tcpPort }),
        retainedTopic: options.retainedTopic ?? RETAINED,
        sessionsTopic: SESSIONS,
        ...(options.retainedMaxBytes === undefined ? {} : { retainedMaxBytes: options.retainedMaxBytes }),
        ...(options.topicAliasMaximum === undefined ? {} : { topicAliasMaximum: options.topicAliasMaximum })
      },
      redis: { url: redisUrl() },
      // limits of its own: the default prefix's per-address upgrade budget is every suite's on 127.0.0.1
      rateLimit: { prefix: unique('mqtt-rl') + ':' },
      dev: { token: DEV_TOKEN },
      ...(options.pollIntervalMs === undefined ? {} : { policy: { pollIntervalMs: options.pollIntervalMs } }),
      auth: {
        apiKeys: { prefix: unique('sluice-mqtt') + ':' },
        jwt: { audience: ['sluice'], issuers: [{ issuer: 'internal', algorithms: ['HS256'], secret: SECRET }] }
      }
    }
  })
  return { app, url: `${url.replace('http', 'ws')}/mqtt`, dir, tcpPort }
}

/** A device's JWT: its `sub` is the {sub} of its rules. */
export function deviceToken (sub: string): string {
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'internal', aud: 'sluice', sub, exp: nowSeconds() + 600 }, SECRET)
}

/** An MQTT.js client that does not reconnect, ended with the test. */
export async function connect (t: Test, url: string, options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 20_000, username: 'any', ...options })
  t.teardown(() => client.endAsync(true))
  return client
}

/** The messages a client receives, as `topic payload` lines. */
export function inbox (client: MqttClient): string[] {
  const seen: string[] = []
  client.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`))
  return seen
}

/** The granted QoS or reason code of each filter (MQTT.js rejects a SUBACK holding a refusal, with the packet). */
export async function granted (client: MqttClient, filters: string | string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters)).map(g => g.qos)
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet
    if (!packet?.granted) throw err
    return packet.granted
  }
}

/** The reason code a refused operation of MQTT.js carries. */
export async function refusalCode (work: Promise<unknown>): Promise<number | undefined> {
  try {
    await work
    return undefined
  } catch (err) {
    return (err as { code?: number }).code
  }
}

/** Every record of `topic` up to its end now, read group-less from its first offset. */
export async function readAll (topic: string): Promise<ConsumedRecord[]> {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'mqtt-suite-read' })
  const records: ConsumedRecord[] = []
  let reader: ReturnType<KafkaClient['reader']> | undefined
  try {
    const offsets = await kafka.topicOffsets(topic)
    const ends = new Map(offsets.filter(o => BigInt(o.high) > BigInt(o.low)).map(o => [o.partition, BigInt(o.high)]))
    let done: () => void
    const all = new Promise<void>(resolve => { done = resolve })
    reader = kafka.reader({
      topic,
      onBatch: batch => {
        records.push(...batch.records)
        const last = batch.records.at(-1)
        if (last && BigInt(last.offset) + 1n >= (ends.get(batch.partition) ?? 0n)) ends.delete(batch.partition)
        if (ends.size === 0) done()
      }
    })
    await reader.start(new Map(offsets.map(o => [o.partition, BigInt(o.low)])))
    if (ends.size > 0) {
      // the bound's timer is cleared once read: left running, it held the file's exit 30 s after its last test
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([all, new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${topic} not read to its end`)), 30_000) })])
      } finally {
        clearTimeout(timer)
      }
    }
    return records
  } finally {
    // stopped and closed here, not at the test's end: a reader left parked in its long poll held the file's exit ~30 s
    await reader?.stop()
    await kafka.close()
  }
}
