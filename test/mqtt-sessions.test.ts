// What acts on every live socket acts on MQTT ones: a revoked API key, a
// policy change that withdraws a topic, and the node going away each end an
// MQTT 5 connection with a DISCONNECT whose reason code says why.
import { randomBytes } from 'node:crypto'
import { test, type Test } from 'tap'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../apps/gateway/src/app.ts'
import { loadGatewayConfig } from '../apps/gateway/src/config.ts'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { policyDir } from '../plugins/auth/test/live-route.ts'
import { eventually, kafkaBrokers, redisUrl, unique } from './helpers.ts'

const DEV_TOKEN = 'mqtt-suite-dev-token-0123456789abcdef'
const SECRET = 'mqtt-suite-hs256-secret-0123456789abcdef'
const TEMP = unique('mqtt-temp')
const HUM = unique('mqtt-hum')
const READINGS = unique('mqtt-readings')
const DEVICES = `mqtt-dev-${randomBytes(4).toString('hex')}`

const POLICY = `
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

async function gateway (t: Test): Promise<{ app: FastifyInstance, url: string, dir: string }> {
  const dir = policyDir(POLICY)
  const config = loadGatewayConfig({
    base: {
      kafka: { brokers: kafkaBrokers() },
      redis: { url: redisUrl() },
      // limits of its own: the default prefix's per-address upgrade budget is every suite's on 127.0.0.1
      rateLimit: { prefix: unique('mqtt-rl') + ':' },
      log: { level: 'silent' },
      dev: { token: DEV_TOKEN },
      policy: { dir, pollIntervalMs: 200 },
      auth: {
        apiKeys: { prefix: unique('sluice-mqtt') + ':' },
        jwt: { audience: ['sluice'], issuers: [{ issuer: 'internal', algorithms: ['HS256'], secret: SECRET }] }
      }
    }
  })
  const app = await buildApp(config)
  t.teardown(() => app.close())
  await app.kafka.ensureTopics([{ topic: TEMP, partitions: 1 }, { topic: HUM, partitions: 1 }, { topic: READINGS, partitions: 1 }, { topic: `${DEVICES}.d1`, partitions: 1 }, { topic: `${DEVICES}.d2`, partitions: 1 }])
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `ws://127.0.0.1:${port}/mqtt`, dir }
}

async function connect (t: Test, url: string, options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 20_000, username: 'any', ...options })
  t.teardown(() => client.endAsync(true))
  return client
}

/** The granted QoS or reason code of each filter (MQTT.js rejects a SUBACK holding a refusal, with the packet). */
async function granted (client: MqttClient, filters: string | string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters)).map(g => g.qos)
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet
    if (!packet?.granted) throw err
    return packet.granted
  }
}

/** The reason code of the server's DISCONNECT, once the connection closed. */
async function disconnected (client: MqttClient): Promise<number | undefined> {
  let reason: number | undefined
  client.on('disconnect', packet => { reason = packet.reasonCode })
  await new Promise<void>(resolve => client.once('close', () => resolve()))
  return reason
}

test('a revoked API key ends its MQTT connection with DISCONNECT 0x87', async t => {
  const { app, url } = await gateway(t)
  const { key, record } = await app.credentials.apiKeys!.issue({ owner: 'dash', product: 'iot', plan: 'basic', expiresAt: Date.now() + 600_000 })
  const client = await connect(t, url, { protocolVersion: 5, password: key })
  const ended = disconnected(client)
  await app.credentials.revokeApiKey(record.id)
  t.equal(await ended, 0x87)
})

test('a policy change that withdraws its topics ends an MQTT connection with DISCONNECT 0x87', async t => {
  const { app, url, dir } = await gateway(t)
  const client = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  t.same(await granted(client, 'sensors/+/temp'), [0])
  await eventually(() => app.sessions.list().some(s => s.topics().includes(TEMP)), 20_000, 'subscribed')
  const ended = disconnected(client)
  writeFileSync(join(dir, 'policy.yaml'), POLICY.replace(`subscribe: ['${TEMP}', '${HUM}']`, `subscribe: ['${HUM}']`))
  t.equal(await ended, 0x87)
})

test('the node going away ends an MQTT connection with DISCONNECT 0x8B (server shutting down)', async t => {
  const { app, url } = await gateway(t)
  const client = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const ended = disconnected(client)
  await app.close()
  t.equal(await ended, 0x8B)
})
