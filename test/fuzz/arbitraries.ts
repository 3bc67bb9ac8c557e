// The fuzzers' generators (not a test file), built with fast-check from the
// protocol grammars in docs/design.md: /v1/stream's JSON frames of every op,
// /v2/broker/'s kafka-text and kafka-binary frames, and WebSocket frames at
// the byte level. Each makes valid frames and near-valid ones: a field of the
// wrong type, too deep, too long, a number JavaScript cannot hold, a key
// twice, a lone surrogate, a frame that is not JSON at all.
//
// JSON is generated as text, never as values run through JSON.stringify:
// `1.10`, `-0`, `1e400`, duplicate keys and whitespace only exist as text,
// and the publish invariant compares Kafka's bytes with that text.
import fc from 'fast-check'
import { OP, type FrameSpec } from './wire.ts'

// ---- JSON text -------------------------------------------------------------------------

/** Number literals that change when parsed into a double and printed again, and some that do not. */
export const TRICKY_NUMBERS = [
  '123456789012345678901234567890', '9007199254740993', '1e400', '-1e400', '-0', '1.10', '1.0', '-0.0',
  '1E+2', '1e-400', '0.1', '18446744073709551616', '-9223372036854775809', '2.5e-324',
  '3.141592653589793238462643383279', '12345678901234567890.12345678901234567890', '0', '-1', '42'
]

/** String literals as JSON text: escapes a parser must keep, lone surrogates among them. */
export const TRICKY_STRINGS = [
  '"\\ud800"', '"\\udc00"', '"a\\ud800b"', '"\\udc00\\ud800"', '"\\udbff\\udfff"', '"\\u0000"',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\u00e9"', '"é"', '"🚀"', '""', '"\\u2028\\u2029"'
]

// the frame bound is 1 MiB (stream.maxFrameBytes): strings around it and far under it
const LONG_LENGTHS = [129, 250, 1000, 16 * 1024 + 1, 65_536, 300_000, 1024 * 1024 + 1]
// docs/design.md asks the fuzzer for nesting up to 10,000 levels; 20,000 is past any bound a fix might choose
const DEPTHS = [2, 64, 100, 129, 1000, 5000, 10_000, 20_000]

const space = fc.constantFrom('', '', '', '', ' ', '\n', '\t', ' \r\n ')

export const numberText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...TRICKY_NUMBERS), weight: 3 },
  { arbitrary: fc.integer().map(String), weight: 1 },
  { arbitrary: fc.bigInt({ min: -(2n ** 90n), max: 2n ** 90n }).map(String), weight: 1 },
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map(d => JSON.stringify(d)), weight: 1 }
)

export const stringText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }).map(s => JSON.stringify(s)), weight: 2 },
  { arbitrary: fc.string({ maxLength: 24 }).map(s => JSON.stringify(s)), weight: 1 },
  { arbitrary: fc.constantFrom(...TRICKY_STRINGS), weight: 2 }
)

const leafText = fc.oneof(numberText, stringText, fc.constantFrom('true', 'false', 'null'))

/** Any JSON text, nested a little, with whitespace and (sometimes) an object key twice. */
export const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string, array: string, object: string }>(tie => ({
  value: fc.oneof({ maxDepth: 3, depthSize: 'small' }, leafText, tie('array'), tie('object')),
  array: fc.tuple(fc.array(tie('value'), { maxLength: 4 }), space).map(([items, w]) => `[${w}${items.join(`${w},${w}`)}${w}]`),
  object: fc.tuple(fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('a', 'value', 'id', '__proto__', 'constructor')), tie('value')), { maxLength: 4 }), fc.boolean(), space)
    .map(([entries, twice, w]) => {
      const members = entries.map(([k, v]) => `${JSON.stringify(k)}${w}:${w}${v}`)
      // the same key again with another value: JSON.parse keeps the last, a byte-exact gateway keeps both
      if (twice && entries.length > 0) members.push(`${JSON.stringify(entries[0]![0])}:${entries[0]![1] === '1' ? '2' : '1'}`)
      return `{${w}${members.join(`${w},${w}`)}${w}}`
    })
})).value

/** Nesting `depth` levels deep, built as a string (no recursion to overflow here). */
export const deepText: fc.Arbitrary<string> = fc.tuple(
  fc.oneof(fc.constantFrom(...DEPTHS), fc.integer({ min: 1, max: 10_000 })),
  fc.constantFrom('array', 'object', 'mixed'),
  fc.constantFrom('1', '"x"', '[]', '{}', 'null')
).map(([depth, kind, inner]) => {
  if (kind === 'array') return '['.repeat(depth) + inner + ']'.repeat(depth)
  if (kind === 'object') return '{"a":'.repeat(depth) + inner + '}'.repeat(depth)
  const half = Math.ceil(depth / 2)
  return '[{"a":'.repeat(half) + inner + '}]'.repeat(half)
})

export const longStringText: fc.Arbitrary<string> = fc.tuple(fc.constantFrom(...LONG_LENGTHS), fc.constantFrom('x', 'é', '\\u0041', '🚀'))
  .map(([length, unit]) => '"' + unit.repeat(Math.max(1, Math.floor(length / unit.length))) + '"')

/** A value where a field wants something else: another type, too deep, too long, too big. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom('null', 'true', 'false', '0', '-1', '""', '[]', '{}', '[null]', '{"a":1,"a":2}', '[[]]', '["a",["b"]]'), weight: 4 },
  { arbitrary: numberText, weight: 2 },
  { arbitrary: stringText, weight: 2 },
  { arbitrary: jsonText, weight: 2 },
  { arbitrary: deepText, weight: 2 },
  { arbitrary: longStringText, weight: 1 }
)

// ---- /v1/stream ----------------------------------------------------------------------

/** Stands for a fresh, readable id in a frame: the runner puts a unique one there when it sends. */
export const FRESH_ID = '\u0000fresh-id'

export type Member = [key: string, raw: string]

export type StreamFrame =
  | { kind: 'object', members: Member[], space: string }
  | { kind: 'text', text: string }
  | { kind: 'binary', bytes: Uint8Array }

export interface StreamContext {
  /** the fuzzer's own topic: it may subscribe and publish */
  own: string
  /** a topic it may read and not write */
  readOnly: string
  /** a valid token for the fuzzer's subject, for in-band renewal */
  renewal: () => string
  /** a valid token for another subject */
  foreign: () => string
}

/** Renders a frame's JSON text; `id` replaces FRESH_ID. */
export function renderMembers (members: Member[], w: string, id: () => string): string {
  return `{${w}${members.map(([k, v]) => `${JSON.stringify(k)}${w}:${w}${v === FRESH_ID ? JSON.stringify(id()) : v}`).join(`${w},${w}`)}${w}}`
}

const idMember: fc.Arbitrary<Member | undefined> = fc.oneof(
  { arbitrary: fc.constant<Member>(['id', FRESH_ID]), weight: 8 },
  { arbitrary: fc.constant(undefined), weight: 1 },
  { arbitrary: fc.constantFrom('""', '1', 'null', '["a"]', '{"id":"x"}', `"${'i'.repeat(129)}"`).map<Member>(v => ['id', v]), weight: 1 },
  { arbitrary: hostileText.map<Member>(v => ['id', v]), weight: 1 }
)

function topicName (ctx: StreamContext): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(ctx.own, ctx.readOnly), weight: 6 },
    { arbitrary: fc.constantFrom('orders.*', 'demo.*', '**', '*', 'orders.**', 'a.*.b', '***', '*.*', 'orders.other', '__consumer_offsets', '.', '..', 'x'.repeat(249), 'x'.repeat(250), ''), weight: 3 },
    { arbitrary: fc.stringMatching(/^[a-zA-Z0-9._*-]{1,40}$/), weight: 2 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }), weight: 1 }
  )
}

function topicsText (ctx: StreamContext): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.array(topicName(ctx), { minLength: 1, maxLength: 4 }).map(ts => JSON.stringify(ts)), weight: 6 },
    { arbitrary: fc.constantFrom('[]', JSON.stringify(Array.from({ length: 101 }, (_v, i) => `t${i}`)), JSON.stringify(Array(100).fill(ctx.own))), weight: 1 },
    // topic lists with a hostile element: an array nested 10,000 deep, a number, an object
    { arbitrary: fc.tuple(hostileText, fc.boolean()).map(([bad, first]) => first ? `[${bad}]` : `[${JSON.stringify(ctx.own)},${bad}]`), weight: 3 },
    { arbitrary: hostileText, weight: 2 }
  )
}

function optional (member: fc.Arbitrary<Member>, weight = 1): fc.Arbitrary<Member | undefined> {
  return fc.oneof({ arbitrary: member, weight }, { arbitrary: fc.constant(undefined), weight: 1 })
}

function field (key: string, valid: fc.Arbitrary<string>, validWeight = 4): fc.Arbitrary<Member> {
  return fc.oneof({ arbitrary: valid, weight: validWeight }, { arbitrary: hostileText, weight: 1 }).map<Member>(v => [key, v])
}

function opMember (op: string): fc.Arbitrary<Member> {
  return fc.oneof(
    { arbitrary: fc.constant(JSON.stringify(op)), weight: 12 },
    { arbitrary: fc.constantFrom(JSON.stringify(op.toUpperCase()), `"${op} "`, '""', '"message"', '"ack"', '1', 'null', '["publish"]'), weight: 1 }
  ).map<Member>(v => ['op', v])
}

const valueText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: jsonText, weight: 5 },
  { arbitrary: numberText, weight: 3 },
  { arbitrary: stringText, weight: 2 },
  { arbitrary: deepText, weight: 1 },
  { arbitrary: longStringText, weight: 1 }
)

function headersText (): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 16 }), { maxKeys: 4 }).map(h => JSON.stringify(h)), weight: 4 },
    { arbitrary: fc.constantFrom('{}', '{"h":1}', '{"":"v"}', '{"h":"v","h":"w"}', JSON.stringify(Object.fromEntries(Array.from({ length: 65 }, (_v, i) => [`h${i}`, 'v'])))), weight: 2 },
    { arbitrary: hostileText, weight: 1 }
  )
}

/** What one op's frame may hold, valid fields far more often than not. */
function opFrame (ctx: StreamContext, op: 'subscribe' | 'unsubscribe' | 'publish' | 'ping' | 'auth'): fc.Arbitrary<Array<Member | undefined>> {
  const common = [opMember(op), idMember]
  switch (op) {
    case 'ping':
      return fc.tuple(...common)
    case 'subscribe':
      return fc.tuple(...common, field('topics', topicsText(ctx), 3), optional(field('from', fc.oneof(
        fc.constantFrom('"latest"', '"earliest"', `"${ctx.own}@0:0"`, `"${ctx.own}@0:99999999999999999999"`, '"x@y"', '"@"', '""', `"${ctx.own}@0:1,0:2"`),
        fc.string({ maxLength: 20 }).map(s => JSON.stringify(s))
      ))))
    case 'unsubscribe':
      return fc.tuple(...common, field('topics', topicsText(ctx), 3))
    case 'publish':
      return fc.tuple(...common,
        field('topic', fc.oneof({ arbitrary: fc.constant(JSON.stringify(ctx.own)), weight: 6 }, { arbitrary: fc.constant(JSON.stringify(ctx.readOnly)), weight: 2 }, { arbitrary: topicName(ctx).map(t => JSON.stringify(t)), weight: 1 }), 6),
        optional(field('key', fc.oneof(stringText, fc.constant('null'), fc.constant(`"${'k'.repeat(16 * 1024 + 1)}"`)))),
        // a publish with no value is a near-valid frame too
        fc.oneof({ arbitrary: valueText.map<Member>(v => ['value', v]), weight: 12 }, { arbitrary: fc.constant(undefined), weight: 1 }),
        optional(field('headers', headersText()), 1)
      )
    case 'auth':
      return fc.tuple(...common, field('token', fc.oneof(
        { arbitrary: fc.constant('"x"'), weight: 3 },
        { arbitrary: fc.constant(null).map(() => JSON.stringify(ctx.renewal())), weight: 2 },
        { arbitrary: fc.constant(null).map(() => JSON.stringify(ctx.foreign())), weight: 1 },
        { arbitrary: fc.constantFrom('"a.b.c"', '"eyJhbGciOiJub25lIn0.e30."', '""', `"${'t'.repeat(16 * 1024 + 1)}"`), weight: 1 },
        { arbitrary: fc.string({ maxLength: 40 }).map(s => JSON.stringify(s)), weight: 1 }
      )))
  }
}

/**
 * A frame of `ops` with its members mutated: sometimes reordered, sometimes a
 * key twice (the last one is the one JSON.parse keeps), sometimes a field the
 * protocol does not know.
 */
export function streamObjectFrame (ctx: StreamContext, ops: Array<'subscribe' | 'unsubscribe' | 'publish' | 'ping' | 'auth'>): fc.Arbitrary<StreamFrame> {
  return fc.constantFrom(...ops).chain(op => fc.tuple(
    opFrame(ctx, op),
    fc.oneof({ arbitrary: fc.constant([] as Member[]), weight: 4 }, { arbitrary: fc.array(fc.tuple(fc.constantFrom('op', 'id', 'topic', 'topics', 'value', 'key', 'extra', '__proto__', 'constructor'), hostileText), { minLength: 1, maxLength: 2 }), weight: 1 }),
    fc.boolean(),
    space
  ).map(([members, extra, reverse, w]): StreamFrame => {
    const present = members.filter((m): m is Member => m !== undefined)
    const all = [...present, ...extra]
    return { kind: 'object', members: reverse ? all.reverse() : all, space: w }
  }))
}

/** Frames that are not a JSON object: broken JSON, other JSON, empty, binary. */
export function streamMalformedFrame (ctx: StreamContext): fc.Arbitrary<StreamFrame> {
  const broken = fc.tuple(streamObjectFrame(ctx, ['ping', 'publish', 'subscribe']), fc.nat(), fc.constantFrom('', '{', '}', '"', ',', '\\', ']', 'x', '\u0000'))
    .map(([frame, at, insert]): StreamFrame => {
      const text = frame.kind === 'object' ? renderMembers(frame.members, frame.space, () => 'broken') : ''
      const cut = text.length === 0 ? 0 : at % text.length
      return { kind: 'text', text: text.slice(0, cut) + insert + (insert === '' ? '' : text.slice(cut)) }
    })
  return fc.oneof(
    { arbitrary: broken, weight: 4 },
    { arbitrary: fc.constantFrom('', ' ', 'null', '[]', '"ping"', '42', '{}', '{"op":"ping"}{"op":"ping"}', '{"op":"ping",}', "{'op':'ping'}", '{"op":"ping","id":"\\ud800"}', '\ufeff{"op":"ping"}', 'NaN', '{"op":"ping","id":1e400}').map((text): StreamFrame => ({ kind: 'text', text })), weight: 2 },
    { arbitrary: hostileText.map((text): StreamFrame => ({ kind: 'text', text })), weight: 2 },
    { arbitrary: fc.string({ maxLength: 64 }).map((text): StreamFrame => ({ kind: 'text', text })), weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 256 }).map((bytes): StreamFrame => ({ kind: 'binary', bytes })), weight: 2 },
    { arbitrary: fc.constant<StreamFrame>({ kind: 'binary', bytes: Buffer.from('{"op":"ping","id":"bin"}') }), weight: 1 }
  )
}

// ---- /v2/broker/ ----------------------------------------------------------------------

export type BrokerFrame =
  | { kind: 'text-object', members: Member[] }
  | { kind: 'text', text: string }
  | { kind: 'binary', declaredLength?: number, topic: Uint8Array, payload: Uint8Array }
  | { kind: 'bytes', bytes: Uint8Array }

export interface BrokerContext {
  own: string
  readOnly: string
}

function brokerTopicText (ctx: BrokerContext): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constant(JSON.stringify(ctx.own)), weight: 6 },
    { arbitrary: fc.constant(JSON.stringify(ctx.readOnly)), weight: 3 },
    { arbitrary: fc.constantFrom('"orders.other"', '""', '"*"', `"${'x'.repeat(250)}"`, '"a b"'), weight: 1 },
    { arbitrary: hostileText, weight: 1 }
  )
}

/** The produce frame's payload: mostly unique text (so that a record is traced to its frame), sometimes anything. */
const messageText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 64 }).map(s => JSON.stringify(s)), weight: 5 },
  { arbitrary: fc.constantFrom(...TRICKY_STRINGS), weight: 2 },
  { arbitrary: numberText, weight: 1 },
  { arbitrary: fc.constantFrom('true', 'null', '{}', '[]', '{"a":1}'), weight: 1 },
  { arbitrary: hostileText, weight: 1 }
)

export function brokerTextFrame (ctx: BrokerContext, topic?: string): fc.Arbitrary<BrokerFrame> {
  return fc.tuple(
    topic === undefined ? brokerTopicText(ctx) : fc.constant(JSON.stringify(topic)),
    fc.oneof({ arbitrary: messageText, weight: 12 }, { arbitrary: fc.constant(undefined), weight: 1 }),
    // keys as /v1/stream bounds them (16 KiB) and far past it: Kafka's partitioner hashes every byte
    fc.option(fc.oneof({ arbitrary: stringText, weight: 6 }, { arbitrary: fc.constantFrom('""', 'null', '1', '{}'), weight: 2 }, { arbitrary: longStringText, weight: 1 }), { nil: undefined }),
    fc.option(fc.tuple(fc.constantFrom('topic', 'message', 'key', 'extra', 'partition'), hostileText), { nil: undefined }),
    fc.boolean()
  ).map(([t, message, key, extra, reverse]): BrokerFrame => {
    const members: Member[] = [['topic', t]]
    if (key !== undefined) members.push(['key', key])
    if (message !== undefined) members.push(['message', message])
    if (extra !== undefined) members.push(extra)
    return { kind: 'text-object', members: reverse ? members.reverse() : members }
  })
}

export function brokerBinaryFrame (ctx: BrokerContext, topic?: string): fc.Arbitrary<BrokerFrame> {
  const topicBytes = topic !== undefined
    ? fc.constant(Buffer.from(topic))
    : fc.oneof(
      { arbitrary: fc.constantFrom(Buffer.from(ctx.own), Buffer.from(ctx.readOnly)), weight: 6 },
      { arbitrary: fc.constantFrom(Buffer.alloc(0), Buffer.from('x'.repeat(255)), Buffer.from([0xc3, 0x28]), Buffer.from([0xff, 0xfe]), Buffer.from('orders.other'), Buffer.from('a b')), weight: 2 },
      { arbitrary: fc.uint8Array({ maxLength: 40 }), weight: 1 }
    )
  return fc.tuple(
    topicBytes,
    fc.uint8Array({ maxLength: 512 }),
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 })
  ).map(([t, payload, declaredLength]): BrokerFrame => ({ kind: 'binary', topic: t, payload, declaredLength }))
}

export function brokerMalformedFrame (): fc.Arbitrary<BrokerFrame> {
  return fc.oneof(
    fc.constantFrom('', 'null', '[]', '42', '{', '{"topic":"t","message":"m"', '{"topic":"t","message":"m"}{}', '"message"').map((text): BrokerFrame => ({ kind: 'text', text })),
    hostileText.map((text): BrokerFrame => ({ kind: 'text', text })),
    fc.string({ maxLength: 64 }).map((text): BrokerFrame => ({ kind: 'text', text })),
    fc.uint8Array({ maxLength: 64 }).map((bytes): BrokerFrame => ({ kind: 'bytes', bytes })),
    fc.constant<BrokerFrame>({ kind: 'bytes', bytes: new Uint8Array(0) })
  )
}

/** An allowed publish and a refused one (a topic it may read, not write), and maybe again, sent back to back. */
export function allowedThenRefused (ctx: BrokerContext): fc.Arbitrary<BrokerFrame[]> {
  const allowed = fc.oneof(brokerTextFrame(ctx, ctx.own), brokerBinaryFrame(ctx, ctx.own))
  const refused = fc.oneof(brokerTextFrame(ctx, ctx.readOnly), brokerBinaryFrame(ctx, ctx.readOnly))
  return fc.array(fc.tuple(allowed, refused), { minLength: 1, maxLength: 3 }).map(pairs => pairs.flat())
}

/** Renders a broker frame: the data and whether it goes as a binary WebSocket frame. */
export function renderBroker (frame: BrokerFrame): { data: string | Buffer, binary: boolean } {
  switch (frame.kind) {
    case 'text-object': return { data: renderMembers(frame.members, '', () => 'unused'), binary: false }
    case 'text': return { data: frame.text, binary: false }
    case 'bytes': return { data: Buffer.from(frame.bytes), binary: true }
    case 'binary': {
      const length = frame.declaredLength ?? frame.topic.length
      return { data: Buffer.concat([Buffer.from([length & 0xff]), Buffer.from(frame.topic), Buffer.from(frame.payload)]), binary: true }
    }
  }
}

// ---- WebSocket frames ----------------------------------------------------------------

export type WireStep =
  | { kind: 'frame', spec: FrameSpec, note: string }
  | { kind: 'bytes', bytes: Uint8Array, note: string }
  | { kind: 'cut', note: string }

// RFC 6455 5.5.1: a close code must be one of these ranges; anything else is a protocol error
const CLOSE_CODES = [0, 999, 1000, 1001, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 3000, 4000, 4999, 5000, 65535]
const BAD_UTF8 = [[0xc3, 0x28], [0xa0, 0xa1], [0xe2, 0x28, 0xa1], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xff], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]
const RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]
// declared lengths past the 1 MiB bound, up to what a 64-bit length can say (2^53 is what JavaScript can write exactly)
const OVERSIZE = [1024 * 1024 + 1, 2 * 1024 * 1024, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1]

const pingJson = (n: number) => Buffer.from(JSON.stringify({ op: 'ping', id: `w${n}` }))

function controlFrame (): fc.Arbitrary<WireStep> {
  return fc.tuple(fc.constantFrom(OP.PING, OP.PONG), fc.integer({ min: 0, max: 125 })).map(([opcode, n]) => ({ kind: 'frame', spec: { opcode, payload: Buffer.alloc(n, 0x61) }, note: `${opcode === OP.PING ? 'ping' : 'pong'} ${n} B` }))
}

/** One step of a raw WebSocket conversation, valid or broken in one of the ways RFC 6455 forbids. */
export const wireSteps: fc.Arbitrary<WireStep[]> = fc.oneof(
  // a valid text frame (a ping op), masked
  { arbitrary: fc.nat(1000).map((n): WireStep[] => [{ kind: 'frame', spec: { opcode: OP.TEXT, payload: pingJson(n) }, note: 'text ping op' }]), weight: 3 },
  // a fragmented message, control frames between its fragments, split anywhere (inside a UTF-8 sequence too)
  {
    arbitrary: fc.tuple(fc.nat(1000), fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), fc.array(fc.option(controlFrame(), { nil: undefined }), { minLength: 4, maxLength: 4 }), fc.constantFrom('', 'é🚀東京'))
      .map(([n, cuts, controls, unicode]): WireStep[] => {
        const text = Buffer.from(JSON.stringify({ op: 'ping', id: `w${n}${unicode}` }))
        const points = [...new Set(cuts.map(c => 1 + (c % (text.length - 1))))].sort((a, b) => a - b)
        const parts = [0, ...points].map((at, i, all) => text.subarray(at, all[i + 1] ?? text.length))
        const steps: WireStep[] = []
        parts.forEach((part, i) => {
          steps.push({ kind: 'frame', spec: { fin: i === parts.length - 1, opcode: i === 0 ? OP.TEXT : OP.CONTINUATION, payload: part }, note: `fragment ${i + 1}/${parts.length}` })
          const control = controls[i]
          if (control && i < parts.length - 1) steps.push(control)
        })
        return steps
      }),
    weight: 3
  },
  { arbitrary: controlFrame().map(step => [step]), weight: 1 },
  // control frames with too much payload, fragmented, or a close that says something it may not
  {
    arbitrary: fc.oneof(
      fc.tuple(fc.constantFrom(OP.PING, OP.PONG, OP.CLOSE), fc.integer({ min: 126, max: 300 })).map(([opcode, n]): WireStep => ({ kind: 'frame', spec: { opcode, payload: Buffer.alloc(n, 0x62) }, note: `control ${opcode} with ${n} B` })),
      fc.constantFrom(OP.PING, OP.PONG).map((opcode): WireStep => ({ kind: 'frame', spec: { fin: false, opcode, payload: Buffer.from('x') }, note: 'fragmented control frame' })),
      fc.constant<WireStep>({ kind: 'frame', spec: { opcode: OP.CLOSE, payload: Buffer.from([0x03]) }, note: 'close with a 1-byte payload' }),
      fc.tuple(fc.constantFrom(...CLOSE_CODES), fc.constantFrom<number[]>([], [0x62, 0x79, 0x65], ...BAD_UTF8)).map(([code, reason]): WireStep => {
        const payload = Buffer.alloc(2 + reason.length)
        payload.writeUInt16BE(code, 0)
        Buffer.from(reason).copy(payload, 2)
        return { kind: 'frame', spec: { opcode: OP.CLOSE, payload }, note: `close ${code} reason ${Buffer.from(reason).toString('hex') || '-'}` }
      }),
      fc.constant<WireStep>({ kind: 'frame', spec: { opcode: OP.CLOSE, payload: Buffer.alloc(0) }, note: 'empty close' })
    ).map(step => [step]),
    weight: 3
  },
  // reserved bits, reserved opcodes
  { arbitrary: fc.tuple(fc.integer({ min: 1, max: 7 }), fc.constantFrom(OP.TEXT, OP.BINARY, OP.PING, OP.CONTINUATION), fc.nat(1000)).map(([rsv, opcode, n]): WireStep[] => [{ kind: 'frame', spec: { rsv, opcode, payload: pingJson(n) }, note: `rsv ${rsv} on opcode ${opcode}` }]), weight: 2 },
  { arbitrary: fc.tuple(fc.constantFrom(...RESERVED_OPCODES), fc.uint8Array({ maxLength: 20 })).map(([opcode, payload]): WireStep[] => [{ kind: 'frame', spec: { opcode, payload }, note: `reserved opcode ${opcode}` }]), weight: 2 },
  // invalid UTF-8 in a text frame, whole or across fragments
  {
    arbitrary: fc.tuple(fc.constantFrom(...BAD_UTF8), fc.boolean()).map(([bad, split]): WireStep[] => {
      const payload = Buffer.concat([Buffer.from('{"op":"ping","id":"'), Buffer.from(bad), Buffer.from('"}')])
      if (!split) return [{ kind: 'frame', spec: { opcode: OP.TEXT, payload }, note: `invalid UTF-8 ${Buffer.from(bad).toString('hex')}` }]
      const at = 20
      return [
        { kind: 'frame', spec: { fin: false, opcode: OP.TEXT, payload: payload.subarray(0, at) }, note: 'text, first fragment' },
        { kind: 'frame', spec: { opcode: OP.CONTINUATION, payload: payload.subarray(at) }, note: `invalid UTF-8 ${Buffer.from(bad).toString('hex')} in a continuation` }
      ]
    }),
    weight: 2
  },
  // past the 1 MiB bound: a header that says so (with a little payload), a real 1 MiB + 1 frame, or fragments that add up to it
  {
    arbitrary: fc.oneof(
      fc.tuple(fc.constantFrom(...OVERSIZE), fc.constantFrom(OP.TEXT, OP.BINARY)).map(([declaredLength, opcode]): WireStep => ({ kind: 'frame', spec: { opcode, payload: Buffer.alloc(64, 0x20), declaredLength }, note: `declares ${declaredLength} B` })),
      fc.constant<WireStep>({ kind: 'frame', spec: { opcode: OP.BINARY, payload: Buffer.alloc(1024 * 1024 + 1, 0x20) }, note: '1 MiB + 1 binary frame' })
    ).map(step => [step]),
    weight: 1
  },
  {
    arbitrary: fc.constant<WireStep[]>([
      { kind: 'frame', spec: { fin: false, opcode: OP.TEXT, payload: Buffer.alloc(600 * 1024, 0x20) }, note: '600 KiB text fragment' },
      { kind: 'frame', spec: { opcode: OP.CONTINUATION, payload: Buffer.alloc(600 * 1024, 0x20) }, note: '600 KiB continuation (1.2 MiB message)' }
    ]),
    weight: 1
  },
  // unmasked client frames
  { arbitrary: fc.tuple(fc.constantFrom(OP.TEXT, OP.BINARY, OP.PING, OP.CLOSE), fc.nat(1000)).map(([opcode, n]): WireStep[] => [{ kind: 'frame', spec: { opcode, payload: opcode === OP.CLOSE ? Buffer.from([0x03, 0xe8]) : pingJson(n), mask: false }, note: `unmasked opcode ${opcode}` }]), weight: 2 },
  // the order of fragments broken
  {
    arbitrary: fc.constantFrom<WireStep[]>(
      [{ kind: 'frame', spec: { opcode: OP.CONTINUATION, payload: Buffer.from('x') }, note: 'continuation with nothing to continue' }],
      [{ kind: 'frame', spec: { fin: false, opcode: OP.TEXT, payload: Buffer.from('{"op":') }, note: 'text, first fragment' }, { kind: 'frame', spec: { opcode: OP.TEXT, payload: pingJson(1) }, note: 'a new text frame inside a fragmented message' }],
      [{ kind: 'frame', spec: { fin: false, opcode: OP.BINARY, payload: Buffer.from('ab') }, note: 'binary, first fragment' }, { kind: 'frame', spec: { fin: false, opcode: OP.BINARY, payload: Buffer.from('cd') }, note: 'a second binary start' }]
    ),
    weight: 2
  },
  // bytes that are no frame at all, or a frame cut off by the fuzzer
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes): WireStep[] => [{ kind: 'bytes', bytes, note: `${bytes.length} random bytes` }]), weight: 1 },
  { arbitrary: fc.nat(1000).map((n): WireStep[] => [{ kind: 'bytes', bytes: new Uint8Array(Buffer.from([0x81, 0xfe, 0x01])), note: 'half a header' }, { kind: 'cut', note: `cut ${n}` }]), weight: 1 }
)
