// The kafka-websocket frames are client input: their parsers are fuzzed here.
// The seed is printed; FUZZ_SEED=<seed> replays it.
import { test } from 'tap'
import fc from 'fast-check'
import { binaryMessage, parseBinaryFrame, parseTextFrame } from '../src/codec.ts'

const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
// Kafka refuses '.' and '..' as names
const topic = fc.stringMatching(/^[a-zA-Z0-9._-]{1,249}$/).filter(name => name !== '.' && name !== '..')

test('kafka-binary: what the gateway frames parses back; any bytes are a request or an Error, never a throw', async t => {
  t.comment(`seed ${seed}`)
  fc.assert(fc.property(topic, fc.uint8Array({ maxLength: 2048 }), (name, payload) => {
    const parsed = parseBinaryFrame(binaryMessage(name, Buffer.from(payload)))
    return !(parsed instanceof Error) && parsed.topic === name && Buffer.compare(parsed.kind === 'binary' ? parsed.payload : Buffer.alloc(1), Buffer.from(payload)) === 0
  }), { seed, numRuns: 1_000 })
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), bytes => {
    const parsed = parseBinaryFrame(Buffer.from(bytes))
    return parsed instanceof Error ? typeof (parsed as { code?: string }).code === 'string' : parsed.kind === 'binary'
  }), { seed, numRuns: 5_000 })
  t.pass('no throw')
})

test('kafka-text: any text is a request or a catalogued Error, never a throw; a string message comes back as sent', async t => {
  t.comment(`seed ${seed}`)
  fc.assert(fc.property(topic, fc.string({ maxLength: 300 }), fc.option(fc.string({ minLength: 1, maxLength: 50 })), (name, message, key) => {
    const frame = JSON.stringify(key === null ? { topic: name, message } : { topic: name, key, message })
    const parsed = parseTextFrame(frame)
    if (/[\ud800-\udfff]/.test(message + (key ?? '')) && parsed instanceof Error) return true // lone surrogates are refused
    return !(parsed instanceof Error) && parsed.kind === 'text' && parsed.message === message && parsed.key === (key ?? null)
  }), { seed, numRuns: 1_000 })
  const noise = fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', 'topic', 'message', 'key', '1', 'e', '9', '\\', 'u', 'null', ' '), maxLength: 100 })
  fc.assert(fc.property(fc.oneof(noise, fc.string()), text => {
    const parsed = parseTextFrame(text)
    return parsed instanceof Error ? (parsed as { code?: string }).code?.startsWith('SLUICE_COMPAT_') === true : parsed.kind === 'text'
  }), { seed, numRuns: 5_000 })
  t.pass('no throw')
})
