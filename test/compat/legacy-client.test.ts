// A kafka-websocket client written only from the protocol's description
// produces and consumes through /v2/broker/ as it did against the Java
// server: kafka-text by default and on request, kafka-binary, keys, either
// kind of frame on either subprotocol, produce-only sockets; and Kafka holds
// exactly what was sent.
import { test } from 'tap'
import { WebSocket } from 'ws'
import type { ConsumedRecord } from '@sluice/kafka'
import { DEV_TOKEN, gateway, LegacyClient, subscribed } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { unique } from '../helpers.ts'

async function readAll (gw: Awaited<ReturnType<typeof gateway>>, topic: string, count: number): Promise<ConsumedRecord[]> {
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

test('text and binary clients produce and consume as against the Java server', async t => {
  const a = unique('legacy.a')
  const b = unique('legacy.b')
  const gw = await gateway(t, { policy: policyYaml({ legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] } }) })
  await gw.kafka.ensureTopics([{ topic: a }, { topic: b }])

  const textReader = new LegacyClient(gw.url, `topics=${a},${b}`)
  const textAsked = new LegacyClient(gw.url, `topics=${a}`, 'kafka-text')
  const binaryReader = new LegacyClient(gw.url, `topics=${a}`, 'kafka-binary')
  const textWriter = new LegacyClient(gw.url, '')
  const binaryWriter = new LegacyClient(gw.url, '', 'kafka-binary')
  const clients = [textReader, textAsked, binaryReader, textWriter, binaryWriter]
  t.teardown(() => { for (const c of clients) c.close() })
  await Promise.all(clients.map(c => c.opened))
  t.equal(textReader.ws.protocol, '', 'no subprotocol asked, none echoed: kafka-text, as in the Java server')
  t.equal(textAsked.ws.protocol, 'kafka-text')
  t.equal(binaryReader.ws.protocol, 'kafka-binary')
  await subscribed(gw, a, 3)
  await subscribed(gw, b, 1)

  textWriter.sendText(a, 'hello')
  textWriter.sendText(b, 'keyed', 'k1')
  binaryWriter.sendBinary(a, Buffer.from('from binary: ü', 'utf8'))
  binaryWriter.sendText(a, 'a text frame on a kafka-binary socket')
  textWriter.sendBinary(a, Buffer.from('a binary frame on a kafka-text socket'))

  const expectedA = ['hello', 'from binary: ü', 'a text frame on a kafka-binary socket', 'a binary frame on a kafka-text socket']
  // the writers produce one after another (order across two sockets is not defined): compare as sets, then per writer
  const got = await textReader.waitMessages(5)
  t.same(got.map(r => r.text!.topic === b ? 'b' : 'a').filter(x => x === 'b'), ['b'])
  t.same(new Set(got.filter(r => r.text!.topic === a).map(r => r.text!.message)), new Set(expectedA), 'every message of topic a, as text')
  t.same(got.find(r => r.text!.topic === b)?.text, { topic: b, message: 'keyed' }, 'exactly {"topic","message"}: the key is not sent, as in the Java server')
  for (const r of got) t.same(Object.keys(r.text!), ['topic', 'message'], 'nothing else in a data frame')
  const textOrder = got.filter(r => r.text!.topic === a).map(r => r.text!.message).filter(m => m === 'hello' || m === 'a binary frame on a kafka-text socket')
  t.same(textOrder, ['hello', 'a binary frame on a kafka-text socket'], 'one writer\'s messages in the order it sent them')

  const textAskedGot = await textAsked.waitMessages(4)
  t.same(new Set(textAskedGot.map(r => r.text!.message)), new Set(expectedA))

  const binary = await binaryReader.waitMessages(4)
  t.ok(binary.every(r => r.binary?.topic === a), 'binary frames named with their topic')
  t.same(new Set(binary.map(r => r.binary!.payload.toString('utf8'))), new Set(expectedA), 'payloads byte for byte')
  t.equal(textWriter.messages().length + binaryWriter.messages().length, 0, 'produce-only sockets receive nothing')
  t.same([...textReader.errors(), ...binaryReader.errors(), ...textWriter.errors(), ...binaryWriter.errors()], [], 'no error frame anywhere')

  const stored = await readAll(gw, b, 1)
  t.equal(stored[0]?.key?.toString(), 'k1', 'the key reaches Kafka')
  t.equal(stored[0]?.value?.toString(), 'keyed')
  const storedA = await readAll(gw, a, 4)
  t.ok(storedA.every(r => r.key === null), 'no key: a null key, as in the Java server')
  t.same(storedA.map(r => r.value?.toString()).sort(), [...expectedA].sort())
})

test('bytes that are not text reach a kafka-text client in base64, and a binary client as they are', async t => {
  const topic = unique('legacy.bin')
  const gw = await gateway(t, { policy: policyYaml({ legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] } }) })
  await gw.kafka.ensureTopics([{ topic }])
  const textReader = new LegacyClient(gw.url, `topics=${topic}`)
  const binaryReader = new LegacyClient(gw.url, `topics=${topic}`, 'kafka-binary')
  t.teardown(() => { textReader.close(); binaryReader.close() })
  await Promise.all([textReader.opened, binaryReader.opened])
  await subscribed(gw, topic, 2)
  const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80])
  await gw.kafka.produce(topic, { value: bytes })
  await gw.kafka.produce(topic, { value: null })
  const [text, tombstone] = await textReader.waitMessages(2)
  t.same(text?.text, { topic, message: bytes.toString('base64'), messageEncoding: 'base64' }, 'never altered: base64, and said so')
  t.same(tombstone?.text, { topic, message: null }, 'a tombstone')
  const [binary, empty] = await binaryReader.waitMessages(2)
  t.same(binary?.binary?.payload, bytes)
  t.equal(empty?.binary?.payload.length, 0)
})

test('the query string: URL-decoded, parameters without = tolerated', async t => {
  const a = unique('legacy.q')
  const b = unique('legacy.q')
  const gw = await gateway(t, { policy: policyYaml({ legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] } }) })
  await gw.kafka.ensureTopics([{ topic: a }, { topic: b }])
  // the Java server split on & and = without decoding: %2C stayed in the name, and `debug` alone failed the open
  const client = new LegacyClient(gw.url, `debug&topics=${a}%2C${b}&nothing=`)
  t.teardown(() => client.close())
  await client.opened
  await subscribed(gw, a, 1)
  await subscribed(gw, b, 1)
  t.pass('subscribed to both topics')
})

test('refused before the upgrade, as /v1/stream refuses: credentials, ACL, unknown topic, a bad query', async t => {
  const allowed = unique('legacy.ok')
  const other = unique('other')
  const gw = await gateway(t, {
    policy: policyYaml({
      legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] },
      // a product the dev identity may read but not write
      readonly: { topics: '[{ pattern: "other.**" }]', subscribe: ['other.**'], publish: [] }
    })
  })
  await gw.kafka.ensureTopics([{ topic: allowed }, { topic: other }])
  const status = async (query: string) => {
    const client = new LegacyClient(gw.url, query)
    try {
      await client.opened
      client.close()
      return { statusCode: 101 }
    } catch (err) {
      return err as { statusCode: number, body: { error: { code: string } } }
    }
  }
  const anonymous = new WebSocket(`${gw.url}/v2/broker/?topics=${allowed}`)
  const refused = await new Promise<number>(resolve => anonymous.once('unexpected-response', (req, res) => {
    req.destroy()
    resolve(res.statusCode ?? 0)
  }))
  t.equal(refused, 401, 'no credential: 401 from the auth plugin, before the upgrade')
  t.match(await status(`topics=${unique('legacy.missing')}`), { statusCode: 404, body: { error: { code: 'SLUICE_KAFKA_UNKNOWN_TOPIC' } } })
  t.match(await status(`topics=${unique('secret')}`), { statusCode: 403, body: { error: { code: 'SLUICE_COMPAT_FORBIDDEN' } } }, 'no rule grants it')
  t.match(await status(`topics=${allowed}&group.id=a&group.id=b`), { statusCode: 400, body: { error: { code: 'SLUICE_COMPAT_BAD_QUERY' } } })
  t.match(await status(`topics=${allowed},bad/name`), { statusCode: 400, body: { error: { code: 'SLUICE_COMPAT_BAD_QUERY' } } })
  const plain = await gw.app.inject({ method: 'GET', url: `/v2/broker/?access_token=${encodeURIComponent(DEV_TOKEN)}` })
  t.equal(plain.statusCode, 426)
  t.equal(plain.json().error.code, 'SLUICE_COMPAT_WEBSOCKET_ONLY')
  t.equal(gw.app.hub.subscribers(allowed), 0, 'no refused client holds a subscription')

  // after the upgrade, every publish is checked: a refused one is answered and the socket stays
  const writer = new LegacyClient(gw.url, `topics=${other}`)
  t.teardown(() => writer.close())
  await writer.opened
  await subscribed(gw, other, 1)
  writer.sendText(other, 'not mine to write')
  t.match(await writer.nextError(0), { code: 'SLUICE_COMPAT_FORBIDDEN', topic: other })
  await gw.kafka.produce(other, { value: 'still subscribed' })
  t.match((await writer.waitMessages(1))[0]?.text, { topic: other, message: 'still subscribed' }, 'the socket works on')
})

test('a client\'s messages land in the order it sent them, however fast it writes', async t => {
  const topic = unique('legacy.order')
  const gw = await gateway(t, { policy: policyYaml({ legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] } }) })
  await gw.kafka.ensureTopics([{ topic }])
  const reader = new LegacyClient(gw.url, `topics=${topic}`)
  const writer = new LegacyClient(gw.url, '', 'kafka-binary')
  t.teardown(() => { reader.close(); writer.close() })
  await Promise.all([reader.opened, writer.opened])
  await subscribed(gw, topic, 1)
  // no acknowledgements in this protocol: an old client writes without waiting, and the Java server's producer kept the order
  const COUNT = 2000
  for (let i = 0; i < COUNT; i++) {
    if (i % 2 === 0) writer.sendBinary(topic, Buffer.from(`m${i}`))
    else writer.sendText(topic, `m${i}`)
  }
  const got = (await reader.waitMessages(COUNT, 60_000)).map(r => r.text!.message)
  t.same(got, Array.from({ length: COUNT }, (_v, i) => `m${i}`), 'every message once, in order')
  t.same(writer.errors(), [])
})
