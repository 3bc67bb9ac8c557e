// Fuzzing /v2/broker/ (the kafka-websocket compatibility route) with
// generated kafka-text and kafka-binary frames, valid and mutated, on either
// subprotocol, and with fast runs of an allowed publish followed at once by a
// refused one (a topic the client may read and not write), against a real
// gateway process whose limits are in Redis. Whatever is sent: the process
// never exits, /healthz answers within 200 ms, each socket ends with a
// documented close code, every error frame is JSON with a code that is not
// INTERNAL, every record in Kafka is the payload of a frame sent, byte for
// byte, and memory and descriptors come back to where they were.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { FuzzGateway, jwt, type Resources } from './gateway.ts'
import { FuzzClient } from './client.ts'
import { allowedThenRefused, brokerBinaryFrame, brokerMalformedFrame, brokerTextFrame, renderBroker, type BrokerContext, type BrokerFrame } from './arbitraries.ts'
import {
  budgetMs, checkAlive, checkClose, CLOSE_WAIT_MS, DOCUMENTED_CLOSE, fuzzProperty, newStats, preview,
  serverJson, checkHealth, checkRanThroughout, checkResources, collectedResources, serving, summary, TopicReader, Violation
} from './invariants.ts'

const FILE = 'test/fuzz/broker-frames.test.ts'
// this file's share of FUZZ_SECONDS (the stream and wire files have the rest)
const SHARE = 0.25
const READ_ONLY = 'demo.ticks'
const WARMUP_RUNS = 16
// the protocol has no acks: a run waits this long for error frames (a refusal is a Redis round trip
// and an ACL check: a few ms), and for a crash that an unhandled rejection causes a tick later
const SETTLE_RUN_MS = 100

interface Run { subprotocol: string | undefined, query: string, frames: BrokerFrame[] }

test('/v2/broker/: generated kafka-text and kafka-binary frames break no invariant', async t => {
  const sub = `fuzz-${randomBytes(4).toString('hex')}`
  const own = `orders.${sub}`
  const token = jwt(sub)
  const reader = new TopicReader(own)
  const gw = new FuzzGateway('broker')
  t.teardown(async () => { await gw.stop(); await reader.stop() })
  await Promise.all([reader.start(), gw.start()])
  await reader.kafka.ensureTopics([{ topic: READ_ONLY, partitions: 1 }])
  const stats = newStats(FILE)
  const ctx: BrokerContext = { own, readOnly: READ_ONLY }
  // what a record of the fuzzer's topic may be: the payload of a frame sent to it, byte for byte
  const payloads = new Set<string>()

  /** The bytes Kafka should hold for a frame the gateway may accept for the fuzzer's topic, if any. */
  function expected (frame: BrokerFrame): Buffer | undefined {
    // a binary frame is [topic length][topic][payload] as sent, whatever the arbitrary meant: a declared length
    // that happens to equal the topic's (1 in 256 of the declared ones) is a valid frame for the fuzzer's topic
    // (the clean-clone CI of 414f818 saw one such record and called it altered)
    if (frame.kind === 'binary' || frame.kind === 'bytes') {
      const data = renderBroker(frame).data as Buffer
      const length = data[0]
      if (length === undefined || data.length < 1 + length) return undefined
      return data.subarray(1, 1 + length).toString() === own ? data.subarray(1 + length) : undefined
    }
    if (frame.kind !== 'text-object') return undefined
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(renderBroker(frame).data as string) as Record<string, unknown>
    } catch {
      return undefined
    }
    if (parsed.topic !== own) return undefined
    if (typeof parsed.message === 'string') return Buffer.from(parsed.message, 'utf8')
    // numbers and booleans are sent as their text as written (gson's getAsString, as the Java server did:
    // 123456789012345678901234567890 stays that, never 1.2345678901234568e+29)
    if (typeof parsed.message === 'number' || typeof parsed.message === 'boolean') return Buffer.from(frame.members.filter(([k]) => k === 'message').at(-1)![1])
    return undefined
  }

  async function run ({ subprotocol, query, frames }: Run): Promise<void> {
    await checkAlive(gw)
    const client = new FuzzClient(gw.brokerUrl + query, subprotocol ? [subprotocol] : [], { authorization: `Bearer ${token}` })
    await client.opened
    // back to back, in one tick: the allowed publish still waits on Redis when the refused one is read
    for (const frame of frames) {
      const bytes = expected(frame)
      if (bytes) payloads.add(bytes.toString('hex'))
      const { data, binary } = renderBroker(frame)
      client.send(data, binary)
      stats.frames++
    }
    await client.until(() => false, SETTLE_RUN_MS)
    const code = await client.close(CLOSE_WAIT_MS)
    await checkAlive(gw, code === 1006 || code === undefined ? 200 : 20)
    if (code === undefined) throw new Violation('every socket ends', `no close frame within ${CLOSE_WAIT_MS} ms of the client's`)
    checkClose(code, DOCUMENTED_CLOSE, `a /v2/broker/ socket (${client.serverClosed ? 'closed by the server' : 'closed by the client'})`)
    for (const text of client.texts) {
      const reply = serverJson(text, '/v2/broker/')
      const error = reply.error as { code?: unknown } | undefined
      if (error === undefined) continue
      if (typeof error.code !== 'string' || !error.code.startsWith('SLUICE_')) throw new Violation('error frames are JSON', `an error frame without a SLUICE_ code: ${preview(text)}`)
      if (error.code === 'SLUICE_COMPAT_INTERNAL') throw new Violation('no INTERNAL for client input', `${preview(text)} (frames: ${frames.map(f => preview(renderBroker(f).data, 80)).join(', ')})`)
    }
    // a kafka-binary client subscribed to its topic gets [length][topic][payload] frames naming it
    for (const data of client.binaries) {
      const topic = data.subarray(1, 1 + data[0]!).toString()
      if (topic !== own && topic !== READ_ONLY) throw new Violation('kafka-binary frames name their topic', `a frame for "${preview(topic)}": ${preview(data)}`)
    }
  }

  const describe = ({ subprotocol, query, frames }: Run) => `subprotocol ${subprotocol ?? '-'}, query ${JSON.stringify(query)}, ${frames.length} frames: ` +
    frames.map(f => preview(renderBroker(f).data, 160)).join(', ')
  const subprotocol = fc.constantFrom('kafka-text', 'kafka-binary', undefined)
  const query = fc.constantFrom('', '', `?topics=${own}`, `?topics=${READ_ONLY}`)
  const anyFrame = fc.oneof(
    { arbitrary: brokerTextFrame(ctx), weight: 4 },
    { arbitrary: brokerBinaryFrame(ctx), weight: 3 },
    { arbitrary: brokerMalformedFrame(), weight: 2 }
  )

  // warm-up: valid frames for the fuzzer's topic on both subprotocols
  for (let i = 0; i < WARMUP_RUNS; i++) {
    const text: BrokerFrame = { kind: 'text-object', members: [['topic', JSON.stringify(own)], ['message', JSON.stringify(`warm ${i}`)]] }
    // large frames too (under the 1 MiB bound): the allocator's high-water mark belongs in the baseline
    const binary: BrokerFrame = { kind: 'binary', topic: Buffer.from(own), payload: i % 8 === 0 ? Buffer.alloc(900 * 1024, i) : Buffer.from(`warm binary ${i}`) }
    await serving(gw)
    await run({ subprotocol: i % 2 ? 'kafka-binary' : 'kafka-text', query: i % 3 ? '' : `?topics=${own}`, frames: [text, binary] }).catch(() => {})
  }
  // the warm-up's own findings are the properties' to report; a gateway it crashed or stalled starts again
  await serving(gw)
  await new Promise(resolve => setTimeout(resolve, 1000))
  const baseline: Resources = await collectedResources(gw)
  const firstPid = gw.pid
  gw.startProbe()

  const total = budgetMs(SHARE)
  await fuzzProperty(t, gw, stats, {
    name: 'an allowed publish then at once a refused one',
    arbitrary: fc.record({ subprotocol, query, frames: allowedThenRefused(ctx) }),
    run,
    describe,
    ms: Math.round(total * 0.4)
  })
  await fuzzProperty(t, gw, stats, {
    name: 'kafka-text, kafka-binary and malformed frames',
    arbitrary: fc.record({ subprotocol, query, frames: fc.array(anyFrame, { minLength: 1, maxLength: 8 }) }),
    run,
    describe,
    ms: Math.round(total * 0.6)
  })

  const health = await gw.stopProbe()
  checkHealth(t, stats, health)
  checkRanThroughout(t, gw)

  // every record of the fuzzer's topic is a payload it sent, unaltered
  const records = await reader.all()
  const altered = records.filter(r => !payloads.has((r.value ?? Buffer.alloc(0)).toString('hex')))
  t.ok(records.length > 0, `the fuzzer's topic has records (${records.length})`)
  t.same(altered.map(r => `${r.partition}@${r.offset}: ${preview(r.value ?? 'null')}`).slice(0, 5), [], `every one of the ${records.length} records is the payload of a frame sent, byte for byte`)

  const resources = await checkResources(t, gw, baseline, firstPid)
  summary(t, 'broker-frames', stats, health, resources)
})
