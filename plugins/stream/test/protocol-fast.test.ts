// The publish fast path (protocol.ts fastPublish) must answer exactly what the
// general scan answers, for every frame: the frames clients write, and the same
// frames cut, spliced and mutated.
import { test } from 'tap'
import fc from 'fast-check'
import { fastPublish, parseClientFrame, parseScanned, type Parsed } from '../src/protocol.ts'

// The seed is printed so that a failure can be replayed: FUZZ_SEED=<seed> npm test -- <this file>
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
const params = { seed, numRuns: 3_000 }

function outcome (parsed: Parsed): unknown {
  return parsed.ok ? parsed.op : { id: parsed.id, message: parsed.error.message, code: (parsed.error as { code?: string }).code }
}

const ids = fc.option(fc.oneof(fc.string({ maxLength: 140 }), fc.nat().map(String), fc.constantFrom('', '"', '\\', 'é', '\u0001', 'a'.repeat(128), 'a'.repeat(129))), { nil: undefined })
const topics = fc.oneof(fc.constantFrom('ok.trades', 't', '.', '..', 'a b', 'x'.repeat(249), 'x'.repeat(250), ''), fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/))
const values = fc.oneof(fc.json({ depthSize: 'medium' }), fc.constantFrom('null', '1e400', '9007199254740993', '"\\ud800"', '"\ud800"', '{"a":1,"a":2}', '['.repeat(70) + ']'.repeat(70), ' {"x" : [1, 2] } ', '"a\\"b"', '-', '01', '{"a":1}}', '1,"op":"x"'))

function frame (id: string | undefined, topic: string, value: string): string {
  return `{"op":"publish",${id === undefined ? '' : `"id":${JSON.stringify(id)},`}"topic":${JSON.stringify(topic)},"value":${value}}`
}

test('a publish frame as clients write it reads the same on the fast path as through the general scan', async t => {
  t.comment(`seed ${seed}`)
  let fast = 0
  fc.assert(fc.property(ids, topics, values, (id, topic, value) => {
    const text = frame(id, topic, value)
    if (fastPublish(text) !== undefined) fast++
    t.same(outcome(parseClientFrame(text)), outcome(parseScanned(text)), text.slice(0, 200))
  }), params)
  // most generated frames are plain: the fast path must be taking them, not falling through
  t.ok(fast > params.numRuns / 4, `${fast} of ${params.numRuns} frames on the fast path`)
})

test('mutated publish frames read the same on the fast path as through the general scan', async t => {
  t.comment(`seed ${seed}`)
  const noise = fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ',', ':', '\\', 'u', 'd', '8', '0', '1', 'e', '-', '.', ' ', 'n', 't', '\u0001', '\ud800', 'x') })
  fc.assert(fc.property(ids, topics, values, fc.nat(), fc.nat(), noise, (id, topic, value, at, cut, extra) => {
    const whole = frame(id, topic, value)
    const i = at % (whole.length + 1)
    const text = whole.slice(0, i) + extra + whole.slice(Math.min(whole.length, i + (cut % 4)))
    t.same(outcome(parseClientFrame(text)), outcome(parseScanned(text)), text.slice(0, 200))
  }), params)
})

test('the plain frame the benchmark sends takes the fast path and keeps its value\'s text', async t => {
  const text = '{"op":"publish","id":"0000000042","topic":"bench.publish-1","value":{"sym":"BTC-USD","px":97123.45,"qty":0.0123,"side":"buy"}}'
  t.same(fastPublish(text), { op: 'publish', id: '0000000042', topic: 'bench.publish-1', key: undefined, value: '{"sym":"BTC-USD","px":97123.45,"qty":0.0123,"side":"buy"}', headers: undefined })
  t.equal(fastPublish('{"op":"publish","id":"1","topic":"t","key":"k","value":1}'), undefined, 'a key: the general path')
})
