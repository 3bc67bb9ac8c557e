// What MQTT keeps on a node shows on /metrics: the retained set (messages and
// bytes, against mqtt.retainedMaxBytes), the persistent sessions the node
// follows, and the wills waiting out a delay.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import mqtt from 'mqtt'
import { connect, DEV_TOKEN, deviceToken, gateway } from './harness.ts'
import { eventually } from '../helpers.ts'

async function gauge (app: Awaited<ReturnType<typeof gateway>>['app'], name: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find(l => l.startsWith(name + ' '))
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1))
}

test('/metrics counts the retained messages and their bytes, the stored sessions and the pending wills', async t => {
  const { app, url } = await gateway(t)
  t.equal(await gauge(app, 'sluice_mqtt_wills_pending'), 0)

  const device = `d${randomBytes(4).toString('hex')}`
  const dash = await connect(t, url, { protocolVersion: 5, password: DEV_TOKEN })
  await dash.publishAsync(`sensors/${device}/temp`, '21.5', { qos: 1, retain: true })
  await eventually(async () => await gauge(app, 'sluice_mqtt_retained_messages') >= 1, 10_000, 'the retained message counted')
  t.ok(await gauge(app, 'sluice_mqtt_retained_bytes') >= 4, 'its bytes too')

  const storedBefore = await gauge(app, 'sluice_mqtt_sessions_stored')
  t.ok(Number.isFinite(storedBefore), 'the stored sessions gauge is there')
  // a persistent session (5.0 session expiry > 0) with a delayed will, whose connection then drops
  const clientId = `metrics-${randomBytes(4).toString('hex')}`
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    username: 'x',
    password: deviceToken('d1'),
    clientId,
    clean: false,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 600 },
    will: { topic: 'devices/d1/status', payload: Buffer.from('gone'), qos: 0, retain: false, properties: { willDelayInterval: 60 } }
  })
  t.teardown(() => client.endAsync(true))
  await eventually(async () => await gauge(app, 'sluice_mqtt_sessions_stored') > storedBefore, 10_000, 'the persistent session stored')
  client.stream.destroy()
  await eventually(async () => await gauge(app, 'sluice_mqtt_wills_pending') === 1, 10_000, 'its will waits out its delay')
})
