// properties.ts as a codec, property-tested: headers any Kafka producer may
// write (hostile bytes included) never throw and always make a PUBLISH that
// mqtt-packet parses back whole, with the payload intact; properties that
// went in through headersOf come out as they were (user properties in order,
// names repeated); an expired message is not framed.
import { test } from 'tap'
import fc from 'fast-check'
import mqttPacket, { type IPublishPacket } from 'mqtt-packet'
import { HEADERS, headersOf, propertiesOf } from '../src/properties.ts'
import { publishPacket } from '../src/format.ts'
import { qos1Packet } from '../src/qos1.ts'

function parse (bytes: Buffer): IPublishPacket[] {
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  const out: IPublishPacket[] = []
  const errors: Error[] = []
  parser.on('packet', p => out.push(p as IPublishPacket))
  parser.on('error', err => errors.push(err))
  parser.parse(bytes)
  if (errors.length > 0) throw errors[0]
  return out
}

const names = Object.values(HEADERS)
const hostileValue = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map(b => Buffer.from(b)),
  fc.string({ maxLength: 50 }).map(s => Buffer.from(s)),
  fc.constantFrom('0', '1', '2', '', '99999999999999999', String(Date.now() + 60_000), String(Date.now() - 1), '[["a","b"],["a","c"]]', '[[1,2]]', '[["\\u0000","x"]]', '{"a":"b"}', 'null').map(s => Buffer.from(s))
)
const hostileHeaders = fc.dictionary(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 20 })), hostileValue, { maxKeys: 8 })

test('hostile headers never throw and always make a PUBLISH mqtt-packet parses back, payload intact, at QoS 0 and 1', async t => {
  fc.assert(fc.property(hostileHeaders, fc.uint8Array({ maxLength: 200 }), (headers, payloadBytes) => {
    const payload = Buffer.from(payloadBytes)
    const now = Date.now()
    const props = propertiesOf(headers, now)
    if (props === 'expired') return true
    for (const packet of [publishPacket('a/b', payload, 5, props?.bytes), qos1Packet('a/b', payload, 7, 5, false, props?.bytes)]) {
      const parsed = parse(packet)
      if (parsed.length !== 1 || parsed[0]!.topic !== 'a/b' || !Buffer.from(parsed[0]!.payload).equals(payload)) return false
    }
    return true
  }), { numRuns: 2000 })
  t.pass('2,000 runs')
})

test('properties in through headersOf come out as they were', async t => {
  const mqttString = fc.string({ minLength: 1, maxLength: 30 }).filter(s => !s.includes('\0'))
  fc.assert(fc.property(
    fc.record({
      payloadFormatIndicator: fc.option(fc.boolean(), { nil: undefined }),
      contentType: fc.option(mqttString, { nil: undefined }),
      responseTopic: fc.option(mqttString.filter(s => !/[+#]/.test(s)), { nil: undefined }),
      correlationData: fc.option(fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b)), { nil: undefined }),
      userProperties: fc.option(fc.dictionary(mqttString, fc.oneof(mqttString, fc.array(mqttString, { minLength: 2, maxLength: 3 })), { maxKeys: 4 }), { nil: undefined })
    }),
    properties => {
      const clean = Object.fromEntries(Object.entries(properties).filter(([, v]) => v !== undefined && !(typeof v === 'object' && !Buffer.isBuffer(v) && Object.keys(v).length === 0)))
      const headers = headersOf(clean as IPublishPacket['properties'], Date.now())
      if ('error' in headers) return false
      const props = propertiesOf(headers as Record<string, Buffer>, Date.now())
      if (props === 'expired') return false
      const parsed = parse(publishPacket('x', Buffer.from('p'), 5, props?.bytes))[0]!
      const got = parsed.properties ?? {}
      for (const [key, value] of Object.entries(clean)) {
        const back = (got as Record<string, unknown>)[key]
        if (Buffer.isBuffer(value)) { if (!Buffer.isBuffer(back) || !back.equals(value)) return false } else if (JSON.stringify(back) !== JSON.stringify(value)) return false
      }
      return true
    }
  ), { numRuns: 1000 })
  t.pass('1,000 runs')
})

test('an expired message is not framed; one within its interval says what is left, rounded up', async t => {
  const now = 1_000_000
  t.equal(propertiesOf({ [HEADERS.expiresAt]: Buffer.from(String(now)) }, now), 'expired')
  const left = propertiesOf({ [HEADERS.expiresAt]: Buffer.from(String(now + 1500)) }, now)
  t.not(left, 'expired')
  if (left && left !== 'expired') t.equal(left.bytes.readUInt32BE(left.expiryAt), 2)
  t.same(headersOf({ responseTopic: 'a/+' }, now), { error: 'a Response Topic is a topic name: no wildcards' })
})
