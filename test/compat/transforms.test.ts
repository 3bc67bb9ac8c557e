// The shipped transforms on real traffic through /v2/broker/: add-timestamp
// on the way in and on the way out, drop-matching on both sides; and what a
// transform may do to a topic: reroute a publish (within the client's own
// access), rename a topic for clients (a name kafka-binary cannot frame gets
// an error in its place, not a corrupt frame).
import { test } from 'tap'
import { join } from 'node:path'
import type { ConsumedRecord } from '@sluice/kafka'
import { gateway, LegacyClient, SHIPPED_TRANSFORMS, subscribed, type Gateway } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { unique } from '../helpers.ts'

const ADD_TIMESTAMP = join(SHIPPED_TRANSFORMS, 'add-timestamp.ts')
const DROP_MATCHING = join(SHIPPED_TRANSFORMS, 'drop-matching.ts')

async function stored (gw: Gateway, topic: string, count: number): Promise<ConsumedRecord[]> {
  const seen: ConsumedRecord[] = []
  await new Promise<void>((resolve, reject) => {
    const consumer = gw.kafka.consumer({
      groupId: unique('compat-reader'),
      topics: [topic],
      fromBeginning: true,
      async onBatch (batch) {
        seen.push(...batch.records)
        if (seen.length >= count) {
          resolve()
          setImmediate(() => { consumer.stop().catch(() => {}) })
        }
      }
    })
    consumer.start().catch(reject)
  })
  return seen
}

async function metric (gw: Gateway, name: string, labels = ''): Promise<number> {
  const text = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find(l => l.startsWith(labels ? `${name}{${labels}}` : `${name} `))
  return line ? Number(line.split(' ').at(-1)) : 0
}

test('add-timestamp: a server-side field on the way in, another on the way out', async t => {
  const topic = unique('stamped')
  const gw = await gateway(t, {
    policy: policyYaml({
      stamped: {
        topics: '[{ pattern: "stamped.**", encoding: json }]',
        transforms: `{ input: "${ADD_TIMESTAMP}", output: { module: "${ADD_TIMESTAMP}", options: { field: deliveredAt } } }`,
        subscribe: ['stamped.**'],
        publish: ['stamped.**']
      }
    })
  })
  await gw.kafka.ensureTopics([{ topic }])
  const reader = new LegacyClient(gw.url, `topics=${topic}`)
  const binaryReader = new LegacyClient(gw.url, `topics=${topic}`, 'kafka-binary')
  const writer = new LegacyClient(gw.url, '')
  t.teardown(() => { reader.close(); binaryReader.close(); writer.close() })
  await Promise.all([reader.opened, binaryReader.opened, writer.opened])
  await subscribed(gw, topic, 2)

  const before = Date.now()
  writer.sendText(topic, '{"price":12345678901234567890}')
  const [text] = await reader.waitMessages(1)
  const received = String(text?.text?.message)
  t.match(received, /^\{"price":12345678901234567890,"serverTimestamp":\d+,"deliveredAt":\d+\}$/, 'both fields, the rest as sent')
  const { serverTimestamp, deliveredAt } = JSON.parse(received)
  t.ok(serverTimestamp >= before && deliveredAt >= serverTimestamp, 'the gateway\'s clock when it received, then when it delivered')
  const [binary] = await binaryReader.waitMessages(1)
  t.equal(binary?.binary?.payload.toString(), received, 'one output transform run serves every subprotocol: the same bytes')

  const [record] = await stored(gw, topic, 1)
  t.match(record?.value?.toString(), /^\{"price":12345678901234567890,"serverTimestamp":\d+\}$/, 'Kafka holds the input transform\'s result; the output field is for clients only')
  const at = Number(record?.timestamp)
  t.ok(at >= before && at <= JSON.parse(record!.value!.toString()).serverTimestamp, 'the record\'s timestamp: when the gateway received the frame')

  writer.sendText(topic, 'plain text')
  const [, second] = await reader.waitMessages(2)
  t.equal(second?.text?.message, 'plain text', 'what is not a JSON object goes through unchanged')
})

test('drop-matching: records that match are discarded, on the way out and on the way in', async t => {
  const topic = unique('filtered')
  const gw = await gateway(t, {
    policy: policyYaml({
      filtered: {
        topics: '[{ pattern: "filtered.**", encoding: json }]',
        transforms: `{ input: { module: "${DROP_MATCHING}", options: { pointer: /spam, equals: true } }, output: { module: "${DROP_MATCHING}", options: { pointer: /level, in: [debug, trace] } } }`,
        subscribe: ['filtered.**'],
        publish: ['filtered.**']
      }
    })
  })
  await gw.kafka.ensureTopics([{ topic }])
  const reader = new LegacyClient(gw.url, `topics=${topic}`)
  const binaryReader = new LegacyClient(gw.url, `topics=${topic}`, 'kafka-binary')
  t.teardown(() => { reader.close(); binaryReader.close() })
  await Promise.all([reader.opened, binaryReader.opened])
  await subscribed(gw, topic, 2)

  const levels = ['info', 'debug', 'warn', 'trace', 'debug', 'error']
  await gw.kafka.produceBatch(topic, levels.map((level, i) => ({ value: JSON.stringify({ level, i }) })))
  await gw.kafka.produce(topic, { value: '{"end":true}' })
  const got = (await reader.waitFor(() => reader.messages().some(r => r.text?.message === '{"end":true}') ? reader.messages() : undefined, 30_000, 'the end marker'))
  t.same(got.map(r => JSON.parse(String(r.text!.message)).level ?? 'end'), ['info', 'warn', 'error', 'end'], 'debug and trace records never reach the client')
  const binary = await binaryReader.waitMessages(4)
  t.same(binary.map(r => r.binary!.payload.toString()), got.map(r => r.text!.message), 'nor a kafka-binary one')
  t.equal(await metric(gw, 'sluice_compat_transform_discards_total', 'direction="output"'), 3, 'once per record, however many sockets: counted')

  reader.sendText(topic, '{"spam":true,"n":1}')
  reader.sendText(topic, '{"spam":false,"n":2}')
  const after = await reader.waitFor(() => reader.messages().find(r => String(r.text?.message).includes('"n":2')), 30_000, 'the message that is not spam')
  t.equal(after.text?.message, '{"spam":false,"n":2}')
  t.notOk(reader.messages().some(r => String(r.text?.message).includes('"n":1')), 'spam never reached Kafka, so no one received it')
  t.same(reader.errors(), [], 'a discard is not an error: the client is not told, as in the Java server')
  const records = await stored(gw, topic, levels.length + 2)
  t.notOk(records.some(r => r.value?.toString().includes('"spam":true')), 'and Kafka does not hold it')
})

test('a transform may reroute a publish within the client\'s access, and rename topics for clients; kafka-binary refuses a name it cannot frame', async t => {
  const source = unique('routed.src')
  const target = unique('routed.dst')
  const reroute = `
export default function (m) {
  const v = m.value.toString()
  if (v === 'reroute') return { ...m, topic: '${target}' }
  if (v === 'escape') return { ...m, topic: 'elsewhere.secret' }
  if (v === 'invalid') return { ...m, topic: 'not/a/topic' }
  return m
}
`
  const rename = `
export default function (m) {
  const v = m.value.toString()
  return { ...m, topic: v === 'long' ? 'x'.repeat(300) : m.topic + '.seen' }
}
`
  const gw = await gateway(t, {
    files: { 'transforms/reroute.mjs': reroute, 'transforms/rename.mjs': rename },
    policy: policyYaml({
      routed: {
        topics: '[{ pattern: "routed.**", encoding: text }]',
        transforms: '{ input: transforms/reroute.mjs, output: transforms/rename.mjs }',
        subscribe: ['routed.**'],
        publish: ['routed.**']
      }
    })
  })
  await gw.kafka.ensureTopics([{ topic: source }, { topic: target }])
  const reader = new LegacyClient(gw.url, `topics=${target}`)
  const binaryReader = new LegacyClient(gw.url, `topics=${target}`, 'kafka-binary')
  const writer = new LegacyClient(gw.url, '')
  t.teardown(() => { reader.close(); binaryReader.close(); writer.close() })
  await Promise.all([reader.opened, binaryReader.opened, writer.opened])
  await subscribed(gw, target, 2)

  writer.sendText(source, 'reroute')
  t.same((await reader.waitMessages(1))[0]?.text, { topic: `${target}.seen`, message: 'reroute' }, 'published to the source, stored in the target, renamed for clients')
  writer.sendText(source, 'escape')
  t.match(await writer.nextError(0), { code: 'SLUICE_COMPAT_FORBIDDEN', topic: source }, 'a transform does not widen access')
  writer.sendText(source, 'invalid')
  t.match(await writer.nextError(1), { code: 'SLUICE_COMPAT_TRANSFORM_FAILED', topic: source })

  await gw.kafka.produce(target, { value: 'long' })
  await gw.kafka.produce(target, { value: 'after' })
  const texts = await reader.waitMessages(3)
  t.equal(texts[1]?.text?.topic, 'x'.repeat(300), 'kafka-text has no limit on topic names')
  const error = await binaryReader.nextError(0)
  t.match(error, { code: 'SLUICE_COMPAT_TOPIC_TOO_LONG', topic: target, offset: String }, 'kafka-binary: an error in the record\'s place, not a corrupt frame')
  const binary = await binaryReader.waitMessages(2)
  t.same(binary.map(r => [r.binary!.topic, r.binary!.payload.toString()]), [[`${target}.seen`, 'reroute'], [`${target}.seen`, 'after']], 'and the next record as usual')
  t.equal(await metric(gw, 'sluice_compat_unframeable_total'), 1, 'counted once: the record is framed once for every kafka-binary socket')
})
