// What acts on every live socket acts on MQTT ones: a revoked API key, a
// policy change that withdraws a topic, and the node going away each end an
// MQTT 5 connection with a DISCONNECT whose reason code says why.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'tap'
import type { MqttClient } from 'mqtt'
import { eventually } from '../helpers.ts'
import { DEV_TOKEN, TEMP, HUM, POLICY, gateway, connect, granted } from './harness.ts'

/** The reason code of the server's DISCONNECT, once the connection closed. */
async function disconnected (client: MqttClient): Promise<number | undefined> {
  let reason: number | undefined
  client.on('disconnect', packet => { reason = packet.reasonCode })
  await new Promise<void>(resolve => client.once('close', () => resolve()))
  return reason
}

test('a revoked API key ends its MQTT connection with DISCONNECT 0x87', async t => {
  const { app, url } = await gateway(t, { pollIntervalMs: 200 })
  const { key, record } = await app.credentials.apiKeys!.issue({ owner: 'dash', product: 'iot', plan: 'basic', expiresAt: Date.now() + 600_000 })
  const client = await connect(t, url, { protocolVersion: 5, password: key })
  const ended = disconnected(client)
  await app.credentials.revokeApiKey(record.id)
  t.equal(await ended, 0x87)
})

test('a policy change that withdraws its topics ends an MQTT connection with DISCONNECT 0x87', async t => {
  const { app, url, dir } = await gateway(t, { pollIntervalMs: 200 })
  const client = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  t.same(await granted(client, 'sensors/+/temp'), [0])
  await eventually(() => app.sessions.list().some(s => s.topics().includes(TEMP)), 20_000, 'subscribed')
  const ended = disconnected(client)
  writeFileSync(join(dir, 'policy.yaml'), POLICY.replace(`subscribe: ['${TEMP}', '${HUM}']`, `subscribe: ['${HUM}']`))
  t.equal(await ended, 0x87)
})

test('the node going away ends an MQTT connection with DISCONNECT 0x8B (server shutting down)', async t => {
  const { app, url } = await gateway(t, { pollIntervalMs: 200 })
  const client = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  const ended = disconnected(client)
  await app.close()
  t.equal(await ended, 0x8B)
})
