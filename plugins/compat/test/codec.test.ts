// The kafka-websocket wire formats, byte for byte: the Java server's own test
// vector, every malformed frame with its code, and what each encoding sends.
import { test } from 'tap'
import { binaryMessage, MAX_BINARY_TOPIC_BYTES, parseBinaryFrame, parseTextFrame, textMessage, valueBytes } from '../src/codec.ts'

// BinaryMessageTest.java: [8]["my_topic"]["my awesome message"]
const JAVA_VECTOR = Buffer.from([8, 109, 121, 95, 116, 111, 112, 105, 99, 109, 121, 32, 97, 119, 101, 115, 111, 109, 101, 32, 109, 101, 115, 115, 97, 103, 101])

const code = (value: unknown) => (value as { code?: string }).code

test('kafka-binary: the Java server\'s test vector both ways', async t => {
  const parsed = parseBinaryFrame(JAVA_VECTOR)
  t.match(parsed, { kind: 'binary', topic: 'my_topic', key: null })
  t.equal(!(parsed instanceof Error) && parsed.kind === 'binary' && parsed.payload.toString(), 'my awesome message')
  t.same(binaryMessage('my_topic', Buffer.from('my awesome message')), JAVA_VECTOR)
})

test('kafka-binary: the length byte is unsigned, and a topic that does not fit it is refused', async t => {
  // 200 bytes: the Java decoder read the byte signed (-56) and failed
  const topic = 'a'.repeat(200)
  const frame = binaryMessage(topic, Buffer.from([0, 1, 2]))
  t.equal(frame[0], 200)
  t.match(parseBinaryFrame(frame), { kind: 'binary', topic }, 'a 200-byte topic reads back')
  t.equal(binaryMessage('t', null).length, 2, 'a null value is an empty payload')
  t.equal(MAX_BINARY_TOPIC_BYTES, 255)
  t.equal(binaryMessage('é'.repeat(127), null)[0], 254, 'the length is in bytes, not characters')
  t.throws(() => binaryMessage('x'.repeat(256), Buffer.from('v')), { code: 'SLUICE_COMPAT_TOPIC_TOO_LONG' })
  t.throws(() => binaryMessage('é'.repeat(128), Buffer.from('v')), { code: 'SLUICE_COMPAT_TOPIC_TOO_LONG' }, '128 characters, 256 bytes')
})

test('kafka-binary: malformed frames', async t => {
  t.equal(code(parseBinaryFrame(Buffer.alloc(0))), 'SLUICE_COMPAT_SHORT_FRAME', 'shorter than its header')
  t.equal(code(parseBinaryFrame(Buffer.from([5, 0x61, 0x62]))), 'SLUICE_COMPAT_LENGTH_BEYOND_FRAME', 'a length byte beyond the frame')
  t.match(parseBinaryFrame(Buffer.from([5, 0x61, 0x62])), { message: 'The topic length byte says 5 bytes but only 2 follow it' })
  t.equal(code(parseBinaryFrame(Buffer.from([0, 1, 2]))), 'SLUICE_COMPAT_BAD_TOPIC', 'an empty topic')
  t.equal(code(parseBinaryFrame(Buffer.from([2, 0xff, 0xfe]))), 'SLUICE_COMPAT_BAD_TOPIC', 'a topic that is not UTF-8')
  t.equal(code(parseBinaryFrame(Buffer.from([3, 0x61, 0x2f, 0x62]))), 'SLUICE_COMPAT_BAD_TOPIC', 'a topic Kafka does not allow (a/b)')
  t.match(parseBinaryFrame(Buffer.from([1, 0x74])), { topic: 't', payload: Buffer.alloc(0) }, 'an empty payload is a message')
})

test('kafka-text: what a client sends', async t => {
  t.same(parseTextFrame('{"topic":"t","message":"hello"}'), { kind: 'text', topic: 't', key: null, message: 'hello' })
  t.same(parseTextFrame('{"topic":"t","key":"k","message":"hello"}'), { kind: 'text', topic: 't', key: 'k', message: 'hello' })
  t.same(parseTextFrame('{"topic":"t","key":"","message":"x","extra":[1]}'), { kind: 'text', topic: 't', key: null, message: 'x' }, 'an empty key is no key; other fields are ignored')
  t.same(parseTextFrame('{"topic":"t","key":7,"message":42}'), { kind: 'text', topic: 't', key: '7', message: '42' }, 'numbers as their text, as gson did')

  t.equal(code(parseTextFrame('not json')), 'SLUICE_COMPAT_NOT_JSON')
  t.equal(code(parseTextFrame('[1,2]')), 'SLUICE_COMPAT_NOT_JSON')
  t.equal(code(parseTextFrame('"text"')), 'SLUICE_COMPAT_NOT_JSON')
  t.equal(code(parseTextFrame('{"message":"m"}')), 'SLUICE_COMPAT_MISSING_FIELD')
  t.match(parseTextFrame('{"topic":"t"}'), { code: 'SLUICE_COMPAT_MISSING_FIELD', message: /"message"/ })
  t.equal(code(parseTextFrame('{"topic":1,"message":"m"}')), 'SLUICE_COMPAT_BAD_FIELD')
  t.equal(code(parseTextFrame('{"topic":"t","message":{"a":1}}')), 'SLUICE_COMPAT_BAD_FIELD')
  t.equal(code(parseTextFrame('{"topic":"t","message":null}')), 'SLUICE_COMPAT_BAD_FIELD')
  t.equal(code(parseTextFrame('{"topic":"t","key":[1],"message":"m"}')), 'SLUICE_COMPAT_BAD_FIELD')
  t.equal(code(parseTextFrame('{"topic":"a b","message":"m"}')), 'SLUICE_COMPAT_BAD_TOPIC')
  t.equal(code(parseTextFrame('{"__proto__":{"topic":"t"},"message":"m"}')), 'SLUICE_COMPAT_MISSING_FIELD', 'own fields only')
})

test('kafka-text: what a client receives, per encoding', async t => {
  t.equal(textMessage('t', Buffer.from('{"a":1}'), 'json'), '{"topic":"t","message":"{\\"a\\":1}"}', 'the message is the value\'s text, as a string')
  t.same(JSON.parse(textMessage('t', Buffer.from('héllo "x"'), 'text')), { topic: 't', message: 'héllo "x"' })
  t.same(JSON.parse(textMessage('t', Buffer.from([0xff, 0x00]), 'text')), { topic: 't', message: '/wA=', messageEncoding: 'base64' }, 'bytes that are not UTF-8: base64, and said so')
  t.same(JSON.parse(textMessage('t', Buffer.from('abc'), 'base64')), { topic: 't', message: 'YWJj', messageEncoding: 'base64' }, 'a binary topic: base64')
  t.same(JSON.parse(textMessage('t', null, 'json')), { topic: 't', message: null }, 'a tombstone')
  t.equal(Object.keys(JSON.parse(textMessage('t', Buffer.from('x'), 'json'))).join(), 'topic,message', 'nothing else, in the Java server\'s order')
})

test('kafka-text: the bytes a publish stores, per encoding', async t => {
  const request = { kind: 'text' as const, topic: 't', key: null, message: 'aGk=' }
  t.equal((valueBytes(request, 'text') as Buffer).toString(), 'aGk=')
  t.equal((valueBytes(request, 'json') as Buffer).toString(), 'aGk=', 'a JSON topic stores the text as sent')
  t.equal((valueBytes(request, 'base64') as Buffer).toString(), 'hi', 'a binary topic takes base64')
  t.equal(code(valueBytes({ ...request, message: 'not base64!' }, 'base64')), 'SLUICE_COMPAT_BAD_BASE64')
  const payload = Buffer.from([1, 2, 3])
  t.equal(valueBytes({ kind: 'binary', topic: 't', key: null, payload }, 'base64'), payload, 'a binary frame\'s payload as is')
})

test('a kafka-text key is at most 16 KiB, as on /v1/stream', async t => {
  const at = parseTextFrame(JSON.stringify({ topic: 't', key: 'k'.repeat(16 * 1024), message: 'm' }))
  t.notOk(at instanceof Error, '16 KiB')
  const over = parseTextFrame(JSON.stringify({ topic: 't', key: 'k'.repeat(16 * 1024 + 1), message: 'm' }))
  t.equal((over as { code?: string }).code, 'SLUICE_COMPAT_BAD_FIELD', 'one character more')
})
