// Malformed input on /v2/broker/: each gets an error frame naming its code
// (the Java server logged it and sent nothing), the connection stays and the
// next valid frame works; a flood of them closes the socket (1008), and a
// frame over the size limit closes it (1009). The process never minds.
import { test } from 'tap'
import { gateway, LegacyClient, subscribed } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { unique } from '../helpers.ts'

const POLICY = policyYaml({ legacy: { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] } })

test('every malformed frame gets its error, and the next valid frame still works', async t => {
  const topic = unique('legacy.bad')
  const gw = await gateway(t, { policy: POLICY })
  await gw.kafka.ensureTopics([{ topic }])
  const reader = new LegacyClient(gw.url, `topics=${topic}`)
  const text = new LegacyClient(gw.url, '')
  const binary = new LegacyClient(gw.url, '', 'kafka-binary')
  t.teardown(() => { reader.close(); text.close(); binary.close() })
  await Promise.all([reader.opened, text.opened, binary.opened])
  await subscribed(gw, topic, 1)

  const name = Buffer.from(topic)
  const cases: Array<[string, LegacyClient, string | Buffer, string]> = [
    ['text that is not JSON', text, 'hello, kafka', 'SLUICE_COMPAT_NOT_JSON'],
    ['JSON that is not an object', text, '["topic","message"]', 'SLUICE_COMPAT_NOT_JSON'],
    ['no topic', text, JSON.stringify({ message: 'm' }), 'SLUICE_COMPAT_MISSING_FIELD'],
    ['no message', text, JSON.stringify({ topic }), 'SLUICE_COMPAT_MISSING_FIELD'],
    ['a message that is an object', text, JSON.stringify({ topic, message: { a: 1 } }), 'SLUICE_COMPAT_BAD_FIELD'],
    ['a topic that is not a name', text, JSON.stringify({ topic: 'a topic', message: 'm' }), 'SLUICE_COMPAT_BAD_TOPIC'],
    ['a binary frame shorter than its header', binary, Buffer.alloc(0), 'SLUICE_COMPAT_SHORT_FRAME'],
    ['a length byte beyond the frame', binary, Buffer.concat([Buffer.from([name.length + 10]), name]), 'SLUICE_COMPAT_LENGTH_BEYOND_FRAME'],
    ['a zero length byte', binary, Buffer.from([0, 1, 2, 3]), 'SLUICE_COMPAT_BAD_TOPIC'],
    ['a topic that is not UTF-8', binary, Buffer.from([2, 0xc3, 0x28, 0x41]), 'SLUICE_COMPAT_BAD_TOPIC'],
    ['a binary frame on a kafka-text socket, malformed', text, Buffer.from([200, 1]), 'SLUICE_COMPAT_LENGTH_BEYOND_FRAME']
  ]
  let delivered = 0
  const errorsSeen = new Map<LegacyClient, number>([[text, 0], [binary, 0]])
  for (const [what, client, frame, code] of cases) {
    client.sendRaw(frame)
    const n = errorsSeen.get(client)!
    const error = await client.nextError(n)
    errorsSeen.set(client, n + 1)
    t.equal(error.code, code, what)
    t.type(error.message, 'string')
    // the next valid frame, from the same socket
    if (client === text) client.sendText(topic, `valid after: ${what}`)
    else client.sendBinary(topic, Buffer.from(`valid after: ${what}`))
    delivered++
    const got = await reader.waitMessages(delivered)
    t.equal(got.at(-1)?.text?.message, `valid after: ${what}`, `the connection stays and the next frame works (${what})`)
  }
  t.equal(text.ws.readyState, text.ws.OPEN)
  t.equal(binary.ws.readyState, binary.ws.OPEN)
  const metrics = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /sluice_compat_invalid_frames_total\{code="SLUICE_COMPAT_NOT_JSON"\} 2/, 'counted by code')
})

test('a flood of malformed frames closes the socket with 1008; an oversized frame with 1009', async t => {
  const gw = await gateway(t, { policy: POLICY, config: { stream: { consumerGraceMs: 200, invalidFrameBurst: 20 } } })
  const flooder = new LegacyClient(gw.url, '')
  t.teardown(() => flooder.close())
  await flooder.opened
  // the burst /v1/stream allows (20, refilled at 1 a second): a buggy client gets 20 errors to notice
  for (let i = 0; i < 25; i++) flooder.sendRaw('not json')
  t.match(await flooder.closed, { code: 1008 })
  t.ok(flooder.errors().length >= 20, `errors before the close (${flooder.errors().length})`)

  const big = new LegacyClient(gw.url, '', 'kafka-binary')
  t.teardown(() => big.close())
  await big.opened
  // the gateway's frame limit, 1 MiB by default (stream.maxFrameBytes)
  big.sendBinary('legacy.x', Buffer.alloc(1024 * 1024))
  t.match(await big.closed, { code: 1009 })
  t.equal((await gw.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the gateway is fine')
})
