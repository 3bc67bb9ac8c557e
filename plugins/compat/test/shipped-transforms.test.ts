// The two transforms shipped in policies/transforms, as functions: what they
// change, what they leave alone, and the options they refuse.
import { test } from 'tap'
import addTimestampDefault, { configure as configureTimestamp } from '../../../policies/transforms/add-timestamp.ts'
import dropDefault, { configure as configureDrop } from '../../../policies/transforms/drop-matching.ts'

const message = (value: string | null) => ({ topic: 't', key: null, value: value === null ? null : Buffer.from(value), headers: {}, timestamp: 0 })
const text = (m: { value: Buffer | null } | null) => m?.value?.toString() ?? null

test('add-timestamp: a field on JSON objects, the rest of the text untouched', async t => {
  const before = Date.now()
  const out = JSON.parse(text(addTimestampDefault(message('{"price":12345678901234567890, "a" : [1]}')))!)
  t.ok(out.serverTimestamp >= before && out.serverTimestamp <= Date.now(), 'the gateway\'s clock, in ms')
  t.match(text(addTimestampDefault(message('{"price":12345678901234567890, "a" : [1]}'))), /^\{"price":12345678901234567890, "a" : \[1\],"serverTimestamp":\d+\}$/, 'numbers beyond 2^53 and spacing kept')
  t.match(text(addTimestampDefault(message(' { } \n'))), /^ \{"serverTimestamp":\d+\} \n$/, 'an empty object')
  const named = configureTimestamp({ field: 'receivedAt' })
  t.match(text(named(message('{"receivedAt":1}'))), /^\{"receivedAt":1,"receivedAt":\d+\}$/, 'the configured field; the last of two wins for JSON readers')
  t.equal(JSON.parse(text(named(message('{"receivedAt":1}')))!).receivedAt > 1, true)
  for (const other of ['plain text', '[1,2]', '"s"', '42', null]) t.equal(text(addTimestampDefault(message(other))), other, `unchanged: ${other}`)
  t.throws(() => configureTimestamp({ field: '' }), /field/)
  t.throws(() => configureTimestamp({ field: 5 }), /field/)
})

test('drop-matching: drops what the pointer finds equal, keeps everything else', async t => {
  const drop = configureDrop({ pointer: '/level', equals: 'debug' })
  t.equal(drop(message('{"level":"debug","m":1}')), null)
  t.equal(text(drop(message('{"level":"info"}'))), '{"level":"info"}')
  t.equal(text(drop(message('{"other":"debug"}'))), '{"other":"debug"}')
  t.equal(text(drop(message('not json'))), 'not json')
  t.equal(text(drop(message(null))), null)
  const list = configureDrop({ pointer: '/a~1b/0', in: ['x', 2, null] })
  t.equal(list(message('{"a/b":["x"]}')), null, 'escaped pointer, array index')
  t.equal(list(message('{"a/b":[2]}')), null)
  t.equal(list(message('{"a/b":[null]}')), null)
  t.equal(text(list(message('{"a/b":["2"]}'))), '{"a/b":["2"]}', 'scalars compare as JSON: "2" is not 2')
  t.equal(list(message('{"a/b":{"0":"x"}}')), null, 'on an object, "0" is a key, as RFC 6901 says')
  t.equal(text(list(message('{"a/b":["y","x"]}'))), '{"a/b":["y","x"]}', 'index 0 only')
  t.equal(dropDefault(message('{"drop":true}')), null, 'the default: {"drop": true}')
  t.equal(text(dropDefault(message('{"drop":"true"}'))), '{"drop":"true"}')

  t.throws(() => configureDrop({}), /pointer/)
  t.throws(() => configureDrop({ pointer: 'level', equals: 1 }), /JSON pointer/)
  t.throws(() => configureDrop({ pointer: '/a' }), /one of/)
  t.throws(() => configureDrop({ pointer: '/a', equals: 1, in: [1] }), /one of/)
  t.throws(() => configureDrop({ pointer: '/a', equals: { x: 1 } }), /equals/)
  t.throws(() => configureDrop({ pointer: '/a', in: [] }), /in/)
  t.throws(() => configureDrop({ pointer: '/a'.repeat(33), equals: 1 }), /more than 32 segments/)
})
