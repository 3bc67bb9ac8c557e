// A plan's connection limits reach MQTT clients: the upgrade to /mqtt carries
// no credential, so the gateway takes the plan's slot and connect token once
// the CONNECT's password is known. Past the plan's connections a CONNECT gets
// CONNACK 0x97 (quota exceeded) on 5.0 and 0x03 (server unavailable) on 3.1.1;
// a closed connection frees its slot, over WebSocket and over TCP.
import { test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { connect, deviceToken, gateway, POLICY, refusalCode } from './harness.ts'
import { eventually } from '../helpers.ts'

test('past the plan\'s connections a CONNECT is refused, over WebSocket and TCP; a closed connection frees its slot', async t => {
  const gw = await gateway(t, { tcp: true, pollIntervalMs: 100 })
  // the suites' plan with 2 connections instead of 50
  writeFileSync(join(gw.dir, 'policy.yaml'), POLICY.replace('connections: 50,', 'connections: 2,'))
  await eventually(() => (gw.app.policy.plan('basic')?.connections ?? 0) === 2, 10_000, 'the policy with 2 connections is in force')
  // one device: its JWT's subject holds the slots, whichever transport
  const password = deviceToken(`limits-${process.pid}`)
  const tcpUrl = `mqtt://127.0.0.1:${gw.tcpPort!}`

  const first = await connect(t, gw.url, { protocolVersion: 5, password })
  await connect(t, tcpUrl, { protocolVersion: 4, password })
  t.equal(await refusalCode(mqtt.connectAsync(gw.url, { protocolVersion: 5, username: 'x', password, reconnectPeriod: 0 })), 0x97, '5.0: quota exceeded')
  t.equal(await refusalCode(mqtt.connectAsync(tcpUrl, { protocolVersion: 4, username: 'x', password, reconnectPeriod: 0 })), 3, '3.1.1: server unavailable')

  await first.endAsync()
  // the slot goes back to Redis when the socket's close is seen
  await eventually(async () => {
    const code = await refusalCode((async () => {
      const again = await mqtt.connectAsync(tcpUrl, { protocolVersion: 5, username: 'x', password, reconnectPeriod: 0 })
      t.teardown(() => again.endAsync(true))
    })())
    return code === undefined
  }, 10_000, 'a third connection once the first closed')
})
