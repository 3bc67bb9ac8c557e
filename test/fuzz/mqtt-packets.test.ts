// Fuzzing /mqtt's parser path with generated MQTT 3.1.1 and 5.0 byte streams
// against a real gateway process: a CONNECT (valid, with a bad password, or
// none), then valid packets of every kind a client sends, packets with bytes
// flipped, cut short or declaring a length past the 1 MiB maximum, random
// bytes, all split across WebSocket frames at random points (a packet may
// span frames), sometimes a text frame. CONNECTs may carry a will, and
// PUBLISHes (retained or not) and wills may name the subject's own mapped
// topic (orders/<sub>/<kind>), so that they reach Kafka and the retained set. Whatever is sent: the process never
// exits, each socket ends with a documented close code, every frame the
// server sends is binary and a well-formed MQTT packet, and no session object
// outlives its connection.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet'
import { FuzzGateway, jwt } from './gateway.ts'
import { FuzzClient } from './client.ts'
import { budgetMs, checkAlive, checkClose, checkSessionsGone, CLOSE_WAIT_MS, DOCUMENTED_CLOSE, fuzzProperty, newStats, preview, Violation } from './invariants.ts'

const FILE = 'test/fuzz/mqtt-packets.test.ts'
// ~20 s of the default 36 s FUZZ_SECONDS: the parser path of one route
const SHARE = 0.55
// the run waits this long for the server's answers (a CONNECT is a JWT check, a publish an ACL check)
const SETTLE_RUN_MS = 150
// the longest will delay a CONNECT asks for
const WILL_DELAY_MAX_S = 5

type Version = 4 | 5

interface Run {
  version: Version
  connect: 'valid' | 'bad-password' | 'none'
  will: Will | undefined
  packets: Array<{ packet: Packet, mutation: Mutation }>
  /** where the byte stream is cut into frames, as fractions */
  cuts: number[]
  textFrame: boolean
}

type Mutation = { kind: 'none' } | { kind: 'flip', at: number, byte: number } | { kind: 'truncate', at: number } | { kind: 'huge-length' } | { kind: 'noise', bytes: Uint8Array }

// the subject of the run's token: orders/<SUB>/<kind> maps to its own orders.<SUB> (test/fuzz/policy)
const SUB = `fuzz-${randomBytes(4).toString('hex')}`
const level = fc.constantFrom('sensors', 'devices', 'orders', 'd1', '$SYS', '', 'é', 'a'.repeat(300), SUB)
const filter = fc.array(fc.oneof(level, fc.constant('+'), fc.constant('#')), { minLength: 1, maxLength: 5 }).map(l => l.join('/'))
const name = fc.oneof(
  fc.array(level, { minLength: 1, maxLength: 5 }).map(l => l.join('/')),
  level.map(kind => `orders/${SUB}/${kind}`)
)
const messageId = fc.integer({ min: 1, max: 65_535 })
const qos = fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>

const packet: fc.Arbitrary<Packet> = fc.oneof(
  // 5.0 topic aliases (0 and 17 are out of range, an empty name uses one): 3.1.1 packets carry no properties
  fc.record({ topic: name, payload: fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 2000 }).map(b => Buffer.from(b))), qos, retain: fc.boolean(), messageId, alias: fc.option(fc.integer({ min: 0, max: 17 })), byAlias: fc.boolean() })
    .map(({ alias, byAlias, ...p }) => ({ cmd: 'publish', dup: false, ...p, messageId: p.qos > 0 ? p.messageId : undefined, ...(alias === null ? {} : { topic: byAlias ? '' : p.topic, properties: { topicAlias: alias } }) }) as Packet),
  fc.record({ filters: fc.array(fc.record({ topic: filter, qos }), { minLength: 1, maxLength: 4 }), messageId }).map(p => ({ cmd: 'subscribe', messageId: p.messageId, subscriptions: p.filters }) as Packet),
  fc.record({ filters: fc.array(filter, { minLength: 1, maxLength: 4 }), messageId }).map(p => ({ cmd: 'unsubscribe', messageId: p.messageId, unsubscriptions: p.filters }) as Packet),
  fc.constant({ cmd: 'pingreq' } as Packet),
  messageId.map(id => ({ cmd: 'puback', messageId: id }) as Packet),
  fc.constant({ cmd: 'disconnect' } as Packet),
  // a second CONNECT is a protocol violation
  fc.constant({ cmd: 'connect', clientId: 'again', protocolVersion: 4, keepalive: 0, clean: true } as Packet)
)

type Will = NonNullable<IConnectPacket['will']>
const will: fc.Arbitrary<Will | undefined> = fc.option(
  fc.record({ topic: name, payload: fc.uint8Array({ maxLength: 200 }).map(b => Buffer.from(b)), qos, retain: fc.boolean(), delay: fc.option(fc.integer({ min: 0, max: WILL_DELAY_MAX_S })) })
    .map(({ delay, ...w }) => ({ ...w, ...(delay === null ? {} : { properties: { willDelayInterval: delay } }) })),
  { nil: undefined }
)

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' } as Mutation), weight: 6 },
  { arbitrary: fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }).map(m => ({ kind: 'flip', ...m }) as Mutation), weight: 2 },
  { arbitrary: fc.nat().map(at => ({ kind: 'truncate', at }) as Mutation), weight: 1 },
  { arbitrary: fc.constant({ kind: 'huge-length' } as Mutation), weight: 1 },
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map(bytes => ({ kind: 'noise', bytes }) as Mutation), weight: 1 }
)

function encode (p: Packet, version: Version): Buffer {
  try {
    return mqttPacket.generate(p, { protocolVersion: version })
  } catch {
    // mqtt-packet refuses to generate some (an empty topic): their bytes are garbage of the same size
    return Buffer.from([0xf0, 0x00])
  }
}

function mutate (bytes: Buffer, m: Mutation): Buffer {
  switch (m.kind) {
    case 'none': return bytes
    case 'flip': {
      const copy = Buffer.from(bytes)
      copy[m.at % copy.length] = m.byte
      return copy
    }
    case 'truncate': return bytes.subarray(0, m.at % bytes.length)
    // a PUBLISH announcing 268,435,455 bytes (the largest Remaining Length): past the gateway's 1 MiB maximum
    case 'huge-length': return Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 0x61])
    case 'noise': return Buffer.from(m.bytes)
  }
}

function stream (r: Run, token: string): Buffer {
  const parts: Buffer[] = []
  if (r.connect !== 'none') {
    // a will's properties are 5.0's
    const w = r.will && r.version === 4 ? { ...r.will, properties: undefined } : r.will
    parts.push(encode({ cmd: 'connect', clientId: 'fuzz', protocolVersion: r.version, keepalive: 60, clean: true, username: 'fuzz', password: Buffer.from(r.connect === 'valid' ? token : 'wrong'), ...(w ? { will: w } : {}) }, r.version))
  }
  for (const { packet: p, mutation: m } of r.packets) parts.push(mutate(encode(p, r.version), m))
  return Buffer.concat(parts)
}

function describe (r: Run): string {
  return `v${r.version} connect=${r.connect} will=${r.will ? `${r.will.topic}/q${r.will.qos}${r.will.retain ? '/r' : ''}` : '-'} text=${r.textFrame} cuts=${r.cuts.map(c => c.toFixed(2)).join(',')} packets=${r.packets.map(p => `${p.packet.cmd}/${p.mutation.kind}`).join(' ')}`
}

test('/mqtt: generated MQTT byte streams break no invariant', async t => {
  const token = jwt(SUB)
  const gw = new FuzzGateway('mqtt')
  t.teardown(() => gw.stop())
  await gw.start()
  const url = gw.streamUrl.replace('/v1/stream', '/mqtt')
  const stats = newStats(FILE)

  async function run (r: Run): Promise<void> {
    await checkAlive(gw)
    const client = new FuzzClient(url, ['mqtt'], {})
    await client.opened
    const bytes = stream(r, token)
    const cuts = [...new Set(r.cuts.map(c => Math.floor(c * bytes.length)))].sort((a, b) => a - b)
    let from = 0
    for (const at of [...cuts, bytes.length]) {
      if (at > from) client.send(bytes.subarray(from, at), true)
      from = Math.max(from, at)
      stats.frames++
    }
    if (r.textFrame) client.send('{"not":"mqtt"}', false)
    await client.until(() => false, SETTLE_RUN_MS)
    const code = await client.close(CLOSE_WAIT_MS)
    await checkAlive(gw, code === 1006 || code === undefined ? 200 : 20)
    if (code === undefined) throw new Violation('every socket ends', `no close frame within ${CLOSE_WAIT_MS} ms of the client's`)
    checkClose(code, DOCUMENTED_CLOSE, `an /mqtt socket (${client.serverClosed ? 'closed by the server' : 'closed by the client'})`)
    if (client.texts.length > 0) throw new Violation('the server sends binary frames only', preview(client.texts[0]!))
    // every server frame is whole MQTT packets of the version the CONNECT named
    const parser = mqttPacket.parser({ protocolVersion: r.version })
    let malformed: Error | undefined
    parser.on('error', err => { malformed ??= err })
    for (const frame of client.binaries) parser.parse(frame)
    if (malformed) throw new Violation('the server sends well-formed MQTT', `${malformed.message}: ${preview(Buffer.concat(client.binaries))}`)
  }

  await fuzzProperty(t, gw, stats, {
    name: 'MQTT packets, valid and mutated, across frames',
    arbitrary: fc.record({
      version: fc.constantFrom(4, 5) as fc.Arbitrary<Version>,
      connect: fc.constantFrom('valid', 'valid', 'valid', 'bad-password', 'none') as fc.Arbitrary<Run['connect']>,
      will,
      packets: fc.array(fc.record({ packet, mutation }), { minLength: 0, maxLength: 8 }),
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
      textFrame: fc.boolean()
    }),
    run,
    describe,
    ms: budgetMs(SHARE)
  })
  await checkAlive(gw)
  t.pass(`${stats.frames} frames sent over ${stats.runs} runs; the gateway is alive`)
  // a will waits out its delay (at most 5 s here) before its session is done with
  await new Promise(resolve => setTimeout(resolve, WILL_DELAY_MAX_S * 1000 + 1000))
  t.comment(await checkSessionsGone(t, gw))
})
