// MQTT 5 topic aliases, client to server (5.0 3.3.2.3.4), with mqtt.topicAliasMaximum set: the number CONNACK
// announces (3.2.2.3.8) is the config's, and the server holds the client to it [MQTT-3.3.2-9]. The default (16)
// and the rest of the alias rules are in test/mqtt/conformance/publish.test.ts.
import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import { gateway } from './harness.ts'
import { closedBy, rawSession } from './conformance/conformance.ts'

const device = () => `d${randomBytes(4).toString('hex')}`

test('5.0 3.2.2.3.8 [MQTT-3.3.2-9] mqtt.topicAliasMaximum 2: CONNACK announces 2, alias 2 is served, alias 3 is DISCONNECT 0x94', async t => {
  const gw = await gateway(t, { tcp: true, topicAliasMaximum: 2 })
  const c = await rawSession(t, gw.tcpPort!, 5)
  t.equal((c.packets[0] as { properties?: { topicAliasMaximum?: number } }).properties?.topicAliasMaximum, 2, 'Topic Alias Maximum 2')
  const name = `sensors/${device()}/temp`
  c.send({ cmd: 'publish', topic: name, payload: Buffer.from('1'), qos: 1, messageId: 1, dup: false, retain: false, properties: { topicAlias: 2 } })
  c.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 1, messageId: 2, dup: false, retain: false, properties: { topicAlias: 2 } })
  await c.next('puback')
  await c.next('puback')
  t.match(c.packets.filter(p => p.cmd === 'puback'), [{ messageId: 1, reasonCode: 0 }, { messageId: 2, reasonCode: 0 }], 'alias 2 set and used')
  c.send({ cmd: 'publish', topic: name, payload: Buffer.from('3'), qos: 0, dup: false, retain: false, properties: { topicAlias: 3 } })
  await closedBy(c)
  t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x94 }, 'alias 3 is above the maximum')
})

test('5.0 3.2.2.3.8 [MQTT-3.3.2-9] mqtt.topicAliasMaximum 0: CONNACK announces 0 and any alias is DISCONNECT 0x94', async t => {
  const gw = await gateway(t, { tcp: true, topicAliasMaximum: 0 })
  const c = await rawSession(t, gw.tcpPort!, 5)
  t.equal((c.packets[0] as { properties?: { topicAliasMaximum?: number } }).properties?.topicAliasMaximum ?? 0, 0, 'Topic Alias Maximum 0 (absent means 0)')
  c.send({ cmd: 'publish', topic: `sensors/${device()}/temp`, payload: Buffer.from('1'), qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } })
  await closedBy(c)
  t.match(c.packets.at(-1), { cmd: 'disconnect', reasonCode: 0x94 }, 'alias 1')
})
