// A published value reaches Kafka as the exact bytes the client wrote, or is
// refused with BAD_REQUEST; never something else. The value was parsed and
// re-serialized: 123456789012345678901234567890 was stored as
// 1.2345678901234568e+29, 9007199254740993 as ...992, 1e400 as null, -0 as 0,
// 1.10 as 1.1; duplicate keys collapsed, keys were reordered, and a lone
// surrogate became U+FFFD. On kafka-text, a numeric 1e400 was stored as "Infinity".
import { test, type Test } from 'tap'
import { WebSocket } from 'ws'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { gateway, LegacyClient } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { readRecords, unique } from '../helpers.ts'

const LITERALS = [
  '123456789012345678901234567890',
  '9007199254740993',
  '1e400',
  '-0',
  '1.10',
  '{"b":1,"a":2,"a":3}',
  '{ "spaced" : [ 1 , 2 ] }',
  '"\\u00e9t\\u00e9 \u00e9t\u00e9 \\ud83d\\ude00"',
  '[1.0e+2,-1E-2,true,false,null,{}]'
]

/** The records of `topic` by partition and offset, read back by a plain consumer. */
async function readBack (t: Test, topic: string, count: number): Promise<Map<string, Buffer | null>> {
  return new Map((await readRecords(t, topic, count)).map(r => [`${r.partition}:${r.offset}`, r.value]))
}

test('every literal published over /v1/stream is stored byte for byte', async t => {
  const topic = unique('lossless')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())
  const acks = []
  for (const [i, literal] of LITERALS.entries()) {
    client.send(`{"op":"publish","id":"p${i}","topic":"${topic}","value":${literal}}`)
    acks.push(await client.next(f => f.id === `p${i}`))
  }
  const records = await readBack(t, topic, LITERALS.length)
  for (const [i, literal] of LITERALS.entries()) {
    const ack = acks[i]!
    t.equal(ack.op, 'ack', `${literal} acked`)
    t.equal(records.get(`${ack.partition}:${ack.offset}`)?.toString('utf8'), literal, `${literal} stored as written`)
  }
})

test('a lone surrogate or invalid UTF-8 is refused, not replaced', async t => {
  const topic = unique('lossless-refused')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic }])
  const client = new Client(`${url}/v1/stream`)
  await client.opened
  t.teardown(() => client.close())
  client.send(`{"op":"publish","id":"a","topic":"${topic}","value":"\\ud800"}`)
  t.match(await client.next(f => f.id === 'a'), { op: 'error', code: 'BAD_REQUEST', message: /lone surrogate/ })
  client.send(`{"op":"publish","id":"b","topic":"${topic}","key":"\\udfff","value":1}`)
  t.match(await client.next(f => f.id === 'b'), { op: 'error', code: 'BAD_REQUEST' }, 'in a key too')
  client.send(`{"op":"publish","id":"c","topic":"${topic}","value":1,"headers":{"h":"\\ud800"}}`)
  t.match(await client.next(f => f.id === 'c'), { op: 'error', code: 'BAD_REQUEST' }, 'in a header value too')

  // a text frame that is not UTF-8 never reaches the session: ws closes with 1007
  const raw = new WebSocket(`${url}/v1/stream`, ['sluice.v1'])
  await new Promise(resolve => raw.once('open', resolve))
  const closed = new Promise<number>(resolve => raw.once('close', code => resolve(code)))
  raw.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false })
  t.equal(await closed, 1007, 'invalid UTF-8: 1007')
})

test('kafka-text keeps a numeric message and key as their literal text, as the Java server did', async t => {
  const topic = unique('lossless-compat')
  const gw = await gateway(t, { policy: policyYaml({ p: { topics: '[{ pattern: "lossless-compat.**", encoding: text }]', subscribe: ['lossless-compat.**'], publish: ['lossless-compat.**'] } }) })
  await gw.kafka.ensureTopics([{ topic }])
  const client = new LegacyClient(gw.url, '', 'kafka-text')
  await client.opened
  t.teardown(() => client.ws.close())
  const frames = [
    `{"topic":"${topic}","message":1e400}`,
    `{"topic":"${topic}","message":1.10,"key":9007199254740993}`,
    `{"topic":"${topic}","message":"text \\u00e9"}`,
    `{"topic":"${topic}","message":true}`
  ]
  for (const frame of frames) client.ws.send(frame)
  const records = await readBack(t, topic, frames.length)
  const values = [...records.values()].map(v => v?.toString('utf8')).sort()
  t.same(values, ['1.10', '1e400', 'text \u00e9', 'true'].sort(), 'the literal text of each message')
  t.equal(client.received.length, 0, 'and no error frame')
})
