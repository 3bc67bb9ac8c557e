import { test } from 'tap'
import fc from 'fast-check'
import { FRAME_BOUNDS, scanFrame } from '../src/json-frame.ts'

// The seed is printed so that a failure can be replayed: FUZZ_SEED=<seed> npm test -- <this file>
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
const params = { seed, numRuns: 2_000 }

function depthOf (value: unknown): number {
  // iterative: the values here are small, but a test should not be the thing that overflows
  let max = 0
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    max = Math.max(max, d)
    for (const child of Object.values(v)) stack.push([child, d + 1])
  }
  return max
}

test('a value inside a frame comes back as its exact text', async t => {
  t.comment(`seed ${seed}`)
  fc.assert(fc.property(fc.json({ depthSize: 'medium' }), fc.constantFrom('', ' ', '\n\t '), (json, ws) => {
    const frame = `{"op":"publish","topic":"t",${ws}"value"${ws}:${ws}${json}${ws}}`
    const scan = scanFrame(frame)
    if (!scan.ok) return depthOf(JSON.parse(json)) + 1 > FRAME_BOUNDS.maxDepth
    const span = scan.members.get('value')!
    return frame.slice(span.start, span.end) === json
  }), params)
  t.pass('every generated value kept its text')
})

test('the scan accepts what JSON.parse accepts, within the bounds, and nothing else', async t => {
  t.comment(`seed ${seed}`)
  // near-JSON: real JSON objects cut, spliced and mutated at random places
  const mutated = fc.tuple(fc.json({ depthSize: 'small' }), fc.nat(), fc.nat(), fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ',', ':', '\\', 'u', 'd', '8', '0', '1', 'e', '-', '.', ' ', 'n', 't', '\u0001', '\ud800', 'x') }))
    .map(([json, at, cut, noise]) => {
      const text = `{"a":${json}}`
      const i = at % (text.length + 1)
      return text.slice(0, i) + noise + text.slice(Math.min(text.length, i + (cut % 4)))
    })
  fc.assert(fc.property(fc.oneof(mutated, fc.string(), fc.json().map(j => `{"k":${j},"k2":${j}}`)), text => {
    const scan = scanFrame(text)
    let parsed: unknown
    let parses = true
    try {
      parsed = JSON.parse(text)
    } catch {
      parses = false
    }
    if (scan.ok) {
      // never more lenient than JSON itself
      return parses && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    }
    // refused: JSON refuses it too, or it is outside what a frame may be
    if (!parses || typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return true
    return /nesting|surrogate|appears twice|number literal|entries/.test(scan.reason)
  }), params)
  t.pass('no disagreement with JSON.parse')
})

test('6,000 levels of arrays are refused in one pass, with no stack used per level', async t => {
  for (const depth of [65, 6_000, 1_000_000]) {
    const scan = scanFrame(`{"op":"subscribe","topics":${'['.repeat(depth)}${']'.repeat(depth)}}`)
    t.equal(scan.ok, false, `${depth} levels`)
    if (!scan.ok) t.match(scan.reason, /nesting deeper than 64 levels/)
  }
  t.equal(scanFrame(`{"v":${'['.repeat(63)}${']'.repeat(63)}}`).ok, true, '64 levels, the frame\'s object included, are allowed')
  const unclosed = scanFrame(`{"v":${'{"a":'.repeat(500_000)}`)
  t.equal(unclosed.ok, false, 'half a million unclosed objects are refused too')
})

test('number literals are kept as written and bounded in length', async t => {
  for (const literal of ['123456789012345678901234567890', '9007199254740993', '1e400', '-0', '1.10', '-1.5E-7', '0']) {
    const frame = `{"value":${literal}}`
    const scan = scanFrame(frame)
    t.ok(scan.ok, literal)
    if (scan.ok) t.equal(frame.slice(scan.members.get('value')!.start, scan.members.get('value')!.end), literal)
  }
  for (const bad of ['01', '1.', '.5', '+1', '1e', '--1', 'NaN', 'Infinity', '0x10']) {
    t.equal(scanFrame(`{"value":${bad}}`).ok, false, `${bad} is not JSON`)
  }
  t.equal(scanFrame(`{"value":${'9'.repeat(256)}}`).ok, true, '256 digits')
  const long = scanFrame(`{"value":${'9'.repeat(257)}}`)
  t.equal(long.ok, false, '257 digits')
  if (!long.ok) t.match(long.reason, /longer than 256/)
})

test('lone surrogates are refused, raw or escaped; pairs pass', async t => {
  t.equal(scanFrame('{"value":"\\ud800"}').ok, false, 'an escaped high surrogate alone')
  t.equal(scanFrame('{"value":"\\udc00x"}').ok, false, 'an escaped low surrogate alone')
  t.equal(scanFrame('{"value":"\\ud800\\u0041"}').ok, false, 'a high surrogate before a non-surrogate')
  t.equal(scanFrame('{"value":"\ud800"}').ok, false, 'a raw lone surrogate')
  t.equal(scanFrame('{"value":"\\ud83d\\ude00 \ud83d\ude00"}').ok, true, 'pairs, escaped and raw')
})

test('top-level duplicates are refused, duplicates inside a value are the client\'s data', async t => {
  const twice = scanFrame('{"op":"publish","value":1,"value":2}')
  t.equal(twice.ok, false)
  if (!twice.ok) t.match(twice.reason, /"value" appears twice/)
  t.equal(scanFrame('{"op":"publish","\\u0076alue":1,"value":2}').ok, false, 'an escaped name is the same name')
  const inner = '{"a":1,"a":2,"b":{"c":[1,1]}}'
  const scan = scanFrame(`{"value":${inner}}`)
  t.ok(scan.ok)
  if (scan.ok) t.equal(`{"value":${inner}}`.slice(scan.members.get('value')!.start, scan.members.get('value')!.end), inner)
})

test('entries per container are bounded', async t => {
  const bounds = { ...FRAME_BOUNDS, maxEntries: 3 }
  t.equal(scanFrame('{"v":[1,2,3]}', bounds).ok, true)
  t.equal(scanFrame('{"v":[1,2,3,4]}', bounds).ok, false)
  t.equal(scanFrame('{"a":1,"b":2,"c":3,"d":4}', bounds).ok, false, 'the frame\'s own members too')
})

test('a frame outside a bound is still read to its end: members after the fault are found, so an error can name the id', async t => {
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
  for (const [what, frame] of [
    ['too deep', `{"value":${deep},"id":"late","op":"publish"}`],
    ['a lone surrogate', '{"value":"\\ud800","id":"late"}'],
    ['a long number', `{"value":${'1'.repeat(300)},"id":"late"}`]
  ] as const) {
    const scan = scanFrame(frame)
    t.equal(scan.ok, false, what)
    const id = scan.members?.get('id')
    t.equal(id && frame.slice(id.start, id.end), '"late"', `${what}: the id after it is found`)
  }
  const twice = scanFrame('{"id":"a","op":"ping","id":"b"}')
  t.equal(twice.ok, false)
  t.equal(twice.members?.has('id'), false, 'an id given twice is neither')
  const broken = scanFrame('{"value":[1,,2],"id":"late"}')
  t.equal(broken.ok, false)
  t.equal(broken.members?.has('id'), false, 'past a grammar error nothing is read')
})
