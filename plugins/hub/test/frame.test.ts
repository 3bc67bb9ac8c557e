import { test } from 'tap'
import type { ConsumedRecord } from '@sluice/kafka'
import { encodeValue, messageJson, wireFrame } from '../src/frame.ts'

const record = (over: Partial<ConsumedRecord>): ConsumedRecord => ({
  topic: 't', partition: 1, offset: '42', timestamp: '1732500000000', key: Buffer.from('k'), value: Buffer.from('{"a":1}'), headers: {}, ...over
})

test('json values are spliced as sent: big numbers and key order survive', async t => {
  const raw = '{"z":1,"a":12345678901234567890123}'
  const frame = messageJson(record({ value: Buffer.from(raw) }), 'json')
  t.ok(frame.includes(`"value":${raw}`), 'the bytes, not a re-serialization')
  t.same(JSON.parse(frame), { op: 'message', topic: 't', partition: 1, offset: '42', timestamp: 1732500000000, key: 'k', value: JSON.parse(raw), headers: {} })
})

test('what a topic does not declare is base64, flagged, never altered', async t => {
  const notJson = Buffer.from('not json')
  t.same(encodeValue(notJson, 'json'), { json: '"bm90IGpzb24="', base64: true })
  const invalidUtf8 = Buffer.from([0xc3, 0x28])
  t.same(encodeValue(invalidUtf8, 'text'), { json: `"${invalidUtf8.toString('base64')}"`, base64: true })
  t.same(encodeValue(Buffer.from('héllo "q"'), 'text'), { json: '"héllo \\"q\\""', base64: false })
  t.same(encodeValue(Buffer.from('{"a":1}'), 'base64'), { json: `"${Buffer.from('{"a":1}').toString('base64')}"`, base64: true })
  t.same(encodeValue(null, 'json'), { json: 'null', base64: false })
  const frame = JSON.parse(messageJson(record({ key: Buffer.from([0xff]), value: Buffer.from([0, 1, 2]), headers: { h: Buffer.from([0xfe]), g: Buffer.from('ok') } }), 'json'))
  t.match(frame, { keyEncoding: 'base64', valueEncoding: 'base64', headersEncoding: 'base64' })
  t.same(Buffer.from(frame.key, 'base64'), Buffer.from([0xff]))
  t.same(Buffer.from(frame.value, 'base64'), Buffer.from([0, 1, 2]))
  t.same(Buffer.from(frame.headers.h, 'base64'), Buffer.from([0xfe]))
  t.same(Buffer.from(frame.headers.g, 'base64').toString(), 'ok')
})

test('headers with quotes and control characters stay valid JSON', async t => {
  const frame = JSON.parse(messageJson(record({ headers: { 'x-"q"': Buffer.from('line\nbreak "quoted"') } }), 'json'))
  t.same(frame.headers, { 'x-"q"': 'line\nbreak "quoted"' })
})

test('wire frames have RFC 6455 headers for each length class', async t => {
  for (const [length, headerLength, marker] of [[10, 2, 10], [126, 4, 126], [65_535, 4, 126], [65_536, 10, 127]] as const) {
    const frame = wireFrame(Buffer.alloc(length, 0x61))
    t.equal(frame[0], 0x81, 'FIN + text')
    t.equal(frame[1], marker)
    t.equal(frame.length, headerLength + length)
    if (marker === 126) t.equal(frame.readUInt16BE(2), length)
    if (marker === 127) t.equal(frame.readBigUInt64BE(2), BigInt(length))
  }
  t.equal(wireFrame(Buffer.from('x'), true)[0], 0x82, 'FIN + binary')
})
