// A product's MQTT mappings show in the AsyncAPI document: an `mqtt` server
// (GET /mqtt) and a channel per mapping, addressed by its MQTT topic with its
// {name} levels as parameters, with the operations and plans of the Kafka
// topic the mapping writes to; a policy without mappings has neither.
import { test } from 'tap'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import type { PolicyDocument } from '@sluice/policy'
import { asyncapiDocument } from '../src/asyncapi.ts'

const LIMITS = { connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }

function policy (mqtt: boolean): PolicyDocument {
  return {
    plans: { free: { limits: LIMITS }, pro: { limits: LIMITS } },
    products: {
      iot: {
        plans: ['free', 'pro'],
        topics: [
          { pattern: 'sensors.temp', encoding: 'json', slowClient: 'lagging', schema: { type: 'object', properties: { celsius: { type: 'number' } } } },
          { pattern: 'devices.*', encoding: 'text', slowClient: 'lagging' }
        ],
        ...(mqtt
          ? {
              mqtt: [
                { filter: 'sensors/{device}/temp', topic: 'sensors.temp', key: '{device}' },
                { filter: 'devices/{device}/{kind}', topic: 'devices.{device}', key: '{kind}' },
                { filter: 'nowhere/{x}', topic: 'unknown.topic', key: '{x}' }
              ]
            }
          : {})
      }
    },
    rules: [
      { name: 'readers', product: 'iot', plan: 'free', subscribe: ['sensors.temp'] },
      { name: 'devices', product: 'iot', plan: 'pro', subscribe: ['devices.{sub}'], publish: ['devices.{sub}'] }
    ]
  }
}

type Doc = { servers: Record<string, Record<string, unknown>>, channels: Record<string, Record<string, unknown>>, operations: Record<string, Record<string, unknown>>, components: { securitySchemes: Record<string, unknown> } }

test('MQTT mappings give an mqtt server and a channel each, with the Kafka topic\'s operations and plans', async t => {
  const doc = asyncapiDocument(policy(true), { host: 'gw.example:443', protocol: 'wss' }) as unknown as Doc
  t.match(doc.servers.mqtt, { host: 'gw.example:443', protocol: 'wss', pathname: '/mqtt', security: [{ $ref: '#/components/securitySchemes/mqttPassword' }] })
  t.match(doc.components.securitySchemes.mqttPassword, { type: 'userPassword' })

  const temp = doc.channels['iot-mqtt-sensors_device_temp']!
  t.match(temp, { address: 'sensors/{device}/temp', servers: [{ $ref: '#/servers/mqtt' }], 'x-sluice-kafka-topic': 'sensors.temp', 'x-sluice-kafka-key': '{device}' })
  t.same(Object.keys(temp.parameters as object), ['device'])
  t.same((temp.messages as { record: { payload: unknown } }).record.payload, { type: 'object', properties: { celsius: { type: 'number' } } }, 'the Kafka topic\'s schema')
  t.match(doc.operations['iot-mqtt-sensors_device_temp-subscribe'], { action: 'receive', 'x-sluice-plans': ['free'] })
  t.notOk(doc.operations['iot-mqtt-sensors_device_temp-publish'], 'no rule publishes to sensors.temp')

  const devices = doc.channels['iot-mqtt-devices_device_kind']!
  t.same(Object.keys(devices.parameters as object), ['device', 'kind'])
  t.match(doc.operations['iot-mqtt-devices_device_kind-publish'], { action: 'send', 'x-sluice-plans': ['pro'] }, 'devices.{sub} reaches devices.{device}')
  t.notOk(Object.values(doc.channels).some(c => c.address === 'nowhere/{x}'), 'a mapping to a topic no product topic covers has no channel')

  const { diagnostics } = await new Parser().parse(JSON.stringify(doc))
  const errors = diagnostics.filter(d => d.severity === DiagnosticSeverity.Error)
  t.same(errors.map(e => `${e.path.join('.')}: ${e.message}`), [], '@asyncapi/parser finds no error')
})

test('a policy without MQTT mappings has no mqtt server, channel or scheme', async t => {
  const doc = asyncapiDocument(policy(false), { host: 'localhost', protocol: 'ws' }) as unknown as Doc
  t.same(Object.keys(doc.servers), ['gateway'])
  t.notOk(Object.keys(doc.channels).some(id => id.includes('-mqtt-')))
  t.notOk('mqttPassword' in doc.components.securitySchemes)
})
