// Fuzzing the WebSocket layer under both routes at the byte level, over a raw
// TCP socket after a real upgrade: fragmented messages with control frames
// between the fragments, control frames that are too long, fragmented or
// carry a bad close code, reserved bits and opcodes, invalid UTF-8 in text
// frames, frames over the 1 MiB bound, unmasked client frames, bytes that are
// no frame, and connections the fuzzer cuts. Whatever is sent: the process
// never exits, /healthz answers within 200 ms, each connection ends with a
// documented close code (1006 only where the fuzzer cut it), every text frame
// the server sends is JSON and none says INTERNAL, and memory and descriptors
// come back to where they were.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { FuzzGateway, jwt, type Resources } from './gateway.ts'
import { wireSteps, type WireStep } from './arbitraries.ts'
import { encodeFrame, OP, RawClient } from './wire.ts'
import {
  budgetMs, checkAlive, CLOSE_WAIT_MS, DOCUMENTED_CLOSE, fuzzProperty, newStats, preview,
  serverJson, checkHealth, checkRanThroughout, checkResources, collectedResources, serving, summary, Violation
} from './invariants.ts'

const FILE = 'test/fuzz/websocket-wire.test.ts'
// this file's share of FUZZ_SECONDS (the stream and broker files have the rest)
const SHARE = 0.3
const WARMUP_RUNS = 16
// the sampled part of the warm-up: 10 s at most
const WARMUP_SAMPLE_MS = 10_000

interface Run { path: string, steps: WireStep[], chunks: number[] | undefined }

test('WebSocket frames broken at the byte level break no invariant', async t => {
  const sub = `fuzz-${randomBytes(4).toString('hex')}`
  const headers = { authorization: `Bearer ${jwt(sub)}` }
  const gw = new FuzzGateway('wire')
  t.teardown(() => gw.stop())
  await gw.start()
  const stats = newStats(FILE)

  async function run ({ path, steps, chunks }: Run): Promise<void> {
    await checkAlive(gw)
    const client = await RawClient.open(gw.port, path, headers)
    // the codes a server may echo: RFC 6455 5.5.1 answers a valid close with its code (1005 when it had none)
    const allowed = new Set(DOCUMENTED_CLOSE)
    let cut = false
    const bytes: Buffer[] = []
    for (const step of steps) {
      if (step.kind === 'cut') { cut = true; break }
      if (step.kind === 'bytes') { bytes.push(Buffer.from(step.bytes)); continue }
      const { spec } = step
      if (spec.opcode === OP.CLOSE && (spec.rsv ?? 0) === 0 && (spec.fin ?? true) && (spec.mask ?? true)) {
        const code = spec.payload.length === 0 ? 1005 : spec.payload.length >= 2 ? Buffer.from(spec.payload).readUInt16BE(0) : undefined
        if (code !== undefined) allowed.add(code)
      }
      bytes.push(encodeFrame(spec))
      stats.frames++
    }
    const data = Buffer.concat(bytes)
    // written at once, or in small pieces first (a header split across TCP segments)
    let at = 0
    for (const size of chunks ?? []) {
      if (at >= data.length) break
      await client.write(data.subarray(at, at + size))
      at += size
    }
    await client.write(data.subarray(at))
    if (cut) {
      client.cut()
      await checkAlive(gw, 100)
      return
    }
    // a clean end to whatever was sent: the server's close frame must answer it
    await client.write(encodeFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) }))
    const outcome = await client.outcome(CLOSE_WAIT_MS)
    await checkAlive(gw, outcome.code === 1006 ? 200 : 0)
    const sent = steps.map(s => s.note).join(', ')
    // bytes that are no frame may be the start of one whose length they declare: the server rightly waits for
    // the rest (the keepalive ends such a connection), and the client's close is read as that frame's payload
    const framing = steps.every(s => s.kind !== 'bytes')
    if (outcome.hung && framing) throw new Violation('every socket ends', `no close frame and no end within ${CLOSE_WAIT_MS} ms of the client's close, after: ${sent}`)
    if (outcome.hung) return
    if (!allowed.has(outcome.code)) {
      throw new Violation('documented close code', `${path} ended with ${outcome.code}${outcome.code === 1006 ? ' (no close frame: the connection was cut by the server)' : ''} after: ${sent}`)
    }
    for (const frame of outcome.frames) {
      if (frame.opcode !== OP.TEXT) continue
      const text = frame.payload.toString('utf8')
      const reply = serverJson(text, path)
      if (reply.code === 'INTERNAL' || (reply.error as { code?: string } | undefined)?.code === 'SLUICE_COMPAT_INTERNAL') {
        throw new Violation('no INTERNAL for client input', `${preview(text)} after: ${sent}`)
      }
    }
  }

  const describe = ({ path, steps, chunks }: Run) => `${path}${chunks ? ` in pieces of ${chunks.join(',')} B` : ''}: ${steps.map(s => s.note).join(', ')}`
  const arbitrary = fc.record({
    path: fc.constantFrom('/v1/stream', '/v1/stream', '/v1/stream', '/v2/broker/'),
    steps: fc.array(wireSteps, { minLength: 1, maxLength: 4 }).map(groups => groups.flat()),
    chunks: fc.option(fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 8 }), { nil: undefined })
  })

  // warm-up: valid frames only (whole and fragmented text, pings), then a clean close
  const valid = (n: number): WireStep[] => [
    { kind: 'frame', spec: { opcode: OP.TEXT, payload: Buffer.from(JSON.stringify({ op: 'ping', id: `warm${n}` })) }, note: 'text' },
    { kind: 'frame', spec: { opcode: OP.PING, payload: Buffer.from('p') }, note: 'ping' },
    { kind: 'frame', spec: { fin: false, opcode: OP.TEXT, payload: Buffer.from('{"op":"pi') }, note: 'fragment' },
    { kind: 'frame', spec: { opcode: OP.CONTINUATION, payload: Buffer.from('ng"}') }, note: 'continuation' },
    // large frames too (under the 1 MiB bound): the allocator's high-water mark belongs in the baseline
    ...(n % 8 === 0 ? [{ kind: 'frame', spec: { opcode: OP.TEXT, payload: Buffer.alloc(900 * 1024, 0x20) }, note: '900 KiB of spaces' } as WireStep] : [])
  ]
  for (let i = 0; i < WARMUP_RUNS; i++) {
    await serving(gw)
    await run({ path: i % 4 ? '/v1/stream' : '/v2/broker/', steps: valid(i), chunks: undefined }).catch(() => {})
  }
  // and the property's own inputs (a fixed sample): 1.2 MiB fragmented messages and refused 1 MiB frames
  // set the allocator's high-water mark, which RSS keeps; the baseline must hold it for the comparison to mean a leak
  const warmUntil = Date.now() + WARMUP_SAMPLE_MS
  for (const value of fc.sample(arbitrary, { numRuns: WARMUP_RUNS, seed: 1 })) {
    // a gateway that crashes or stalls on these (restarted each time) must not spend the budget here
    if (Date.now() > warmUntil) break
    await serving(gw)
    await run(value).catch(() => {})
  }
  const heaviest: WireStep[] = [
    { kind: 'frame', spec: { fin: false, opcode: OP.TEXT, payload: Buffer.alloc(600 * 1024, 0x20) }, note: '600 KiB text fragment' },
    { kind: 'frame', spec: { opcode: OP.CONTINUATION, payload: Buffer.alloc(600 * 1024, 0x20) }, note: '600 KiB continuation' }
  ]
  for (let i = 0; i < 8; i++) {
    await serving(gw)
    await run({ path: i % 2 ? '/v1/stream' : '/v2/broker/', steps: heaviest, chunks: undefined }).catch(() => {})
  }
  // the warm-up's own findings are the properties' to report; a gateway it crashed or stalled starts again
  await serving(gw)
  await new Promise(resolve => setTimeout(resolve, 1000))
  const baseline: Resources = await collectedResources(gw)
  const firstPid = gw.pid
  gw.startProbe()

  await fuzzProperty(t, gw, stats, { name: 'raw WebSocket frames after a real upgrade', arbitrary, run, describe, ms: budgetMs(SHARE) })

  const health = await gw.stopProbe()
  checkHealth(t, stats, health)
  checkRanThroughout(t, gw)
  const resources = await checkResources(t, gw, baseline, firstPid)
  summary(t, 'websocket-wire', stats, health, resources)
})
