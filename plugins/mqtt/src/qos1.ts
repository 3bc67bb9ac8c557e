// Deliveries to one MQTT connection at QoS 0 and 1 (issue 16). The hub
// builds each record's frame once per format and writes the same bytes to
// every socket; a QoS 1 delivery needs a packet id of its own per socket, and
// a persistent session needs each record's Kafka partition and offset to
// know where to resume. So MQTT sockets take the hub's records in an
// envelope (`sessionFormat`): the record's Kafka topic, partition and offset
// before its QoS 0 PUBLISH, as the wire carries it. The Outbox reads a
// batch's envelopes once (a WeakMap, as framesOf), writes the QoS 0 PUBLISH
// bytes as they are (no copy: views of the batch, corked into one writev),
// and rebuilds a QoS 1 PUBLISH with a packet id, kept until the client's
// PUBACK [MQTT-4.3.2-1]. At most `receiveMaximum` are in flight (the
// client's, 5.0 3.1.2.11.3, under ours); the rest wait, counted in the
// socket's queue so the hub's slow-client policy applies as for QoS 0.
import type { ConsumedRecord } from '@sluice/kafka'
import { wireFrame, type FrameFormat } from '@sluice/hub'
import { publishPacket, type Transport } from './format.ts'
import { propertiesOf, publishedRetained, publisherOf } from './properties.ts'
import type { Mappings } from './mapping.ts'

/**
 * QoS 1 deliveries in flight per connection, whatever the client allows: 32. Each one is kept in the
 * session's record until acknowledged (~60 bytes of JSON each), and all of them are sent again at once on a
 * reconnect; 32 keeps that record ~2 KiB and still hides a 100 ms round trip at 320 messages a second.
 */
export const MAX_INFLIGHT = 32
const PUBLISH_QOS1 = 0x32

function varintBytes (n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}
const DUP = 0x08
const RETAIN = 0x01

/**
 * What a session's `qosOf` adds to the QoS it returns for a record published retained when a matching
 * subscription has Retain As Published: the delivery keeps RETAIN 1 [MQTT-3.3.1-13].
 */
export const AS_PUBLISHED = 4

/** One record in a batch, as the envelope says. */
export interface Enveloped {
  /** the Kafka record */
  topic: string
  partition: number
  offset: bigint
  /** the MQTT topic name, split at '/' */
  name: string
  levels: readonly string[]
  /** where the QoS 0 wire frame (WebSocket frame or bare packet) lies in the batch */
  start: number
  end: number
  /** where the PUBLISH's payload lies in the batch */
  payloadStart: number
  /** where its 5.0 property list's bytes lie (after their length), empty when it has none */
  propsStart: number
  propsEnd: number
  /** when the message expires (ms since the epoch; its Message Expiry Interval), 0 if never */
  expiresAt: number
  /** where in the batch the interval's 4 bytes are (rewritten with what is left at each send), -1 if none */
  expiryAt: number
  /** the publishing client's tag (properties.ts publisherTag), 0n if not known: No Local compares it */
  publisher: bigint
  /** the PUBLISH had RETAIN 1 (the record's mqtt.retain header) */
  retained: boolean
  /** where the PUBLISH's first byte (its type and flags) lies in the batch */
  headerAt: number
}

/**
 * The hub's format for MQTT sessions: per record, a 4-byte length of the rest, the Kafka topic (1-byte
 * length), partition (4 bytes), offset (8 bytes), when the message expires (8 bytes, ms since the epoch, 0
 * never), where its Message Expiry Interval lies in the PUBLISH (4 bytes, 0 none), the publisher's
 * tag (8 bytes, 0 none) and flags (1 byte: 1 when it was published retained), then the QoS 0
 * PUBLISH as the wire carries it, with the 5.0 properties of the record's headers (properties.ts). Only
 * the session reads these bytes (MqttSession.write): the client gets the PUBLISH.
 */
export function sessionFormat (mappings: Mappings, version: 4 | 5, transport: Transport): FrameFormat {
  return {
    key: `mqtt-s.${transport}.${version}`,
    frame (record: ConsumedRecord): Buffer | undefined {
      const name = mappings.toName(record.topic, record.key === null ? undefined : record.key.toString('utf8'))
      if (name === undefined) return undefined
      const payload = record.value ?? Buffer.alloc(0)
      const properties = version === 5 ? propertiesOf(record.headers, Date.now()) : undefined
      // past its Message Expiry Interval: not delivered [MQTT-3.3.2-5] (the position moves past it)
      if (properties === 'expired') return undefined
      const packet = publishPacket(name, payload, version, properties?.bytes)
      const wire = transport === 'ws' ? wireFrame(packet, true) : packet
      const topic = Buffer.from(record.topic, 'utf8')
      const head = 4 + 1 + topic.length + 4 + 8 + 8 + 4 + 8 + 1
      const out = Buffer.allocUnsafe(head + wire.length)
      out.writeUInt32BE(out.length - 4, 0)
      out[4] = topic.length
      topic.copy(out, 5)
      out.writeUInt32BE(record.partition, 5 + topic.length)
      out.writeBigUInt64BE(BigInt(record.offset), 9 + topic.length)
      out.writeBigUInt64BE(BigInt(properties?.expiresAt ?? 0), 17 + topic.length)
      // the property list ends where the payload starts: the interval's place counted back from there
      const expiryAt = properties && properties.expiryAt >= 0 ? wire.length - payload.length - properties.bytes.length + properties.expiryAt : 0
      out.writeUInt32BE(expiryAt, 25 + topic.length)
      out.writeBigUInt64BE(publisherOf(record.headers), 29 + topic.length)
      out[37 + topic.length] = publishedRetained(record.headers) ? 1 : 0
      wire.copy(out, head)
      return out
    }
  }
}

const read = new WeakMap<Buffer, readonly Enveloped[]>()
/** per batch read: each Kafka topic and partition it holds, with the offset after its last record */
const lasts = new WeakMap<readonly Enveloped[], ReadonlyArray<{ topic: string, partition: number, next: bigint }>>()

function lastsOf (envelopes: readonly Enveloped[]): ReadonlyArray<{ topic: string, partition: number, next: bigint }> {
  let known = lasts.get(envelopes)
  if (known) return known
  const out: Array<{ topic: string, partition: number, next: bigint }> = []
  for (const e of envelopes) {
    const same = out.find(l => l.partition === e.partition && l.topic === e.topic)
    if (!same) out.push({ topic: e.topic, partition: e.partition, next: e.offset + 1n })
    else if (same.next < e.offset + 1n) same.next = e.offset + 1n
  }
  known = out
  lasts.set(envelopes, known)
  return known
}

/**
 * The QoS 0 wire frames of the batch last asked for, end to end without their envelopes: a socket taking
 * several consecutive ones gets one write of a view of it instead of a write each. One slot, not one per
 * batch: the hub writes a batch to all its sockets in one turn, and a window keeping batches for a minute
 * would otherwise keep this copy of each too.
 */
let wireSlot: { batch: Buffer, wire: Buffer, starts: number[] } | undefined

function wireOf (batch: Buffer, envelopes: readonly Enveloped[]): { wire: Buffer, starts: number[] } {
  if (wireSlot?.batch === batch) return wireSlot
  let length = 0
  for (const e of envelopes) length += e.end - e.start
  const wire = Buffer.allocUnsafe(length)
  const starts = new Array<number>(envelopes.length + 1)
  let at = 0
  for (let i = 0; i < envelopes.length; i++) {
    const e = envelopes[i]!
    starts[i] = at
    at += batch.copy(wire, at, e.start, e.end)
  }
  starts[envelopes.length] = at
  wireSlot = { batch, wire, starts }
  return wireSlot
}

/** A batch's envelopes, read once per batch Buffer (every socket at the batch's start gets the same one). */
export function envelopesOf (batch: Buffer, transport: Transport, version: 4 | 5): readonly Enveloped[] {
  const known = read.get(batch)
  if (known) return known
  const out: Enveloped[] = []
  let at = 0
  while (at + 4 <= batch.length) {
    const end = at + 4 + batch.readUInt32BE(at)
    const topicLength = batch[at + 4]!
    const topic = batch.toString('utf8', at + 5, at + 5 + topicLength)
    const partition = batch.readUInt32BE(at + 5 + topicLength)
    const offset = batch.readBigUInt64BE(at + 9 + topicLength)
    const expiresAt = Number(batch.readBigUInt64BE(at + 17 + topicLength))
    const expiryIn = batch.readUInt32BE(at + 25 + topicLength)
    const publisher = batch.readBigUInt64BE(at + 29 + topicLength)
    const retained = (batch[at + 37 + topicLength]! & 1) === 1
    const start = at + 38 + topicLength
    // the PUBLISH: after the WebSocket header (2, 4 or 10 bytes) on ws
    let p = start
    if (transport === 'ws') {
      const length = batch[p + 1]! & 0x7f
      p += length === 126 ? 4 : length === 127 ? 10 : 2
    }
    const headerAt = p
    p++
    while ((batch[p]! & 0x80) !== 0) p++
    p++
    const nameLength = batch.readUInt16BE(p)
    const name = batch.toString('utf8', p + 2, p + 2 + nameLength)
    // 5.0: the property list's length (a Variable Byte Integer), then its bytes
    let propsStart = p + 2 + nameLength
    let propsLength = 0
    if (version === 5) {
      for (let shift = 1; ; shift *= 128) {
        const byte = batch[propsStart++]!
        propsLength += (byte & 0x7f) * shift
        if ((byte & 0x80) === 0) break
      }
    }
    const payloadStart = propsStart + propsLength
    out.push({ topic, partition, offset, name, levels: name.split('/'), start, end, payloadStart, propsStart, propsEnd: payloadStart, expiresAt, expiryAt: expiryIn === 0 ? -1 : start + expiryIn, publisher, retained, headerAt })
    at = end
  }
  read.set(batch, out)
  return out
}

/** A QoS 1 PUBLISH of `name` with `payload`, packet id `id`, DUP as said [MQTT-3.3.1-1]. */
export function qos1Packet (name: string, payload: Buffer, id: number, version: 4 | 5, dup: boolean, properties?: Buffer, retain = false): Buffer {
  const plain = publishPacket(name, payload, version, properties)
  // the QoS 0 packet with two bytes more after the topic name: rebuilt with the longer remaining length
  const topic = Buffer.byteLength(name)
  const propsEnd = plain.length - payload.length
  // the property list as publishPacket wrote it (its length and bytes; one 0 byte when empty): after the topic name
  const propsStart = propsEnd - (version === 5 ? (properties ? varintBytes(properties.length) + properties.length : 1) : 0)
  const remaining = 2 + topic + 2 + (propsEnd - propsStart) + payload.length
  const header: number[] = []
  let n = remaining
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    header.push(byte)
  } while (n > 0)
  const out = Buffer.allocUnsafe(1 + header.length + remaining)
  let at = 0
  out[at++] = PUBLISH_QOS1 | (dup ? DUP : 0) | (retain ? RETAIN : 0)
  for (const b of header) out[at++] = b
  out.writeUInt16BE(topic, at)
  at += 2
  out.write(name, at, 'utf8')
  at += topic
  out.writeUInt16BE(id, at)
  at += 2
  // the property list and the payload as publishPacket placed them: its last bytes
  plain.copy(out, at, propsStart)
  return out
}

interface Pending {
  topic: string
  partition: number
  offset: bigint
  name: string
  payload: Buffer
  /** its 5.0 property list's bytes (its Message Expiry Interval as left when it was taken), if any */
  properties?: Buffer
  /** a delivery sent before, by this connection or the one whose session this is */
  dup: boolean
  id?: number
  /** sent with RETAIN 1: published retained, to a Retain As Published subscription */
  retain?: boolean
  /** a retained message sent at subscribe: no Kafka position of a subscription, not kept with the session */
  atSubscribe?: boolean
}

export interface OutboxOptions {
  version: 4 | 5
  transport: Transport
  /** the client's Receive Maximum (5.0); MAX_INFLIGHT bounds it */
  receiveMaximum?: number
  /** the client's Maximum Packet Size: larger deliveries are not sent */
  maxPacket: number
  /** writes bytes to the socket (the session's own write, with its queue accounting) */
  write: (bytes: Buffer, onWritten?: (err?: Error | null) => void) => void
  cork: () => void
  uncork: () => void
  /** the session's position or in-flight set changed (a persistent session writes it at the next flush) */
  changed: () => void
  /** usage metering: `packets` PUBLISHes of `bytes` on the wire were sent (a QoS 1 one once, not at each retry) */
  delivered?: (packets: number, bytes: number) => void
}

/** A position: the next offset to deliver, per Kafka topic and partition. */
type Positions = Map<string, Map<number, bigint>>

export class Outbox {
  readonly receiveMaximum: number
  readonly #o: OutboxOptions
  /** packet id -> the delivery awaiting its PUBACK */
  readonly #inflight = new Map<number, Pending>()
  /** deliveries past the in-flight bound, in order */
  #waiting: Pending[] = []
  #waitingBytes = 0
  #nextId = 1
  /** per topic and partition: the offset after the last record this connection saw */
  readonly #seen: Positions = new Map()
  /** per topic and partition: offsets delivered at QoS 1 and not yet acknowledged (in flight or waiting) */
  readonly #unacked = new Map<string, Map<number, Set<bigint>>>()
  /** `topic/partition/offset` -> packet id of the deliveries the previous connection left unacknowledged */
  readonly #inherited = new Map<string, number>()
  #progress: Array<() => void> = []

  constructor (options: OutboxOptions) {
    this.#o = options
    this.receiveMaximum = Math.max(1, Math.min(options.receiveMaximum ?? MAX_INFLIGHT, MAX_INFLIGHT))
  }

  /** bytes held past the in-flight bound: the hub counts them as queued */
  get waitingBytes (): number {
    return this.#waitingBytes
  }

  get inflight (): number {
    return this.#inflight.size
  }

  /**
   * The unacknowledged deliveries of the session this connection resumes: when their records come again
   * (the resume starts at or before them), they are sent with DUP=1 and their packet ids [MQTT-4.4.0-1].
   */
  inherit (inflight: Array<[string, number, string, number]>): void {
    for (const [topic, partition, offset, id] of inflight) this.#inherited.set(`${topic}/${partition}/${offset}`, id)
  }

  /** Where a subscription of `topic` started (the hub's answer): positions not seen yet start there. */
  started (topic: string, positions: Map<number, bigint>): void {
    let seen = this.#seen.get(topic)
    if (!seen) {
      seen = new Map()
      this.#seen.set(topic, seen)
    }
    for (const [p, o] of positions) if (!seen.has(p)) seen.set(p, o)
    this.#o.changed()
  }

  /** The subscriptions changed: the session is written at the next flush. */
  changedSubscriptions (): void {
    this.#o.changed()
  }

  /** A topic left: its positions are no longer the session's. */
  forget (topic: string): void {
    this.#seen.delete(topic)
    this.#o.changed()
  }

  /**
   * One hub batch: each record whose name `qosOf` wants (0 or 1; -1 not at all) is delivered at that QoS.
   * QoS 0 deliveries are views of the batch, written in one corked turn.
   */
  write (batch: Buffer, qosOf: (levels: readonly string[], publisher: bigint, retained: boolean) => number, onWritten?: (err?: Error | null) => void): void {
    const envelopes = envelopesOf(batch, this.#o.transport, this.#o.version)
    for (const l of lastsOf(envelopes)) this.#see(l.topic, l.partition, l.next)
    let wrote = false
    // a run of consecutive QoS 0 deliveries [run, i): written as one view of the batch's wire frames
    let run = -1
    const flush = (end: number): void => {
      if (run < 0) return
      if (end - run === 1) {
        const bytes = batch.subarray(envelopes[run]!.start, envelopes[run]!.end)
        this.#o.write(bytes)
        this.#o.delivered?.(1, bytes.length)
      } else {
        const { wire, starts } = wireOf(batch, envelopes)
        const bytes = run === 0 && end === envelopes.length ? wire : wire.subarray(starts[run], starts[end])
        this.#o.write(bytes)
        this.#o.delivered?.(end - run, bytes.length)
      }
      run = -1
      wrote = true
    }
    this.#o.cork()
    try {
      for (let i = 0; i < envelopes.length; i++) {
        const e = envelopes[i]!
        const got = qosOf(e.levels, e.publisher, e.retained)
        const qos = got < 0 ? got : got & 3
        // published retained, to a Retain As Published subscription: sent with RETAIN 1 [MQTT-3.3.1-13]
        const retain = got >= 0 && (got & AS_PUBLISHED) !== 0
        // a message with a Message Expiry Interval: checked as it is sent [MQTT-3.3.2-5], and sent with what is
        // left of it [MQTT-3.3.2-6] (the hub framed it once, maybe a while ago: a resume from the node's window)
        const left = e.expiresAt > 0 ? Math.ceil((e.expiresAt - Date.now()) / 1000) : 0
        if ((e.expiresAt > 0 || retain) && (qos === 0 || qos === 1)) {
          flush(i)
          if (e.expiresAt > 0 && left <= 0) continue
          if (qos === 0) {
            if (e.end - e.start > this.#o.maxPacket) continue
            // the hub's bytes are every socket's: this one's flags or interval go into a copy
            const copy = Buffer.from(batch.subarray(e.start, e.end))
            if (e.expiresAt > 0 && e.expiryAt >= 0) copy.writeUInt32BE(left, e.expiryAt - e.start)
            if (retain) copy[e.headerAt - e.start] = copy[e.headerAt - e.start]! | RETAIN
            this.#o.write(copy)
            this.#o.delivered?.(1, copy.length)
            wrote = true
            continue
          }
        }
        // as the QoS 0 path always did: the frame's size against the client's maximum packet size
        if (qos === 0 && e.end - e.start <= this.#o.maxPacket) {
          if (run < 0) run = i
          continue
        }
        flush(i)
        if (qos !== 1) continue
        const key = `${e.topic}/${e.partition}/${e.offset}`
        const id = this.#inherited.get(key)
        if (id !== undefined) this.#inherited.delete(key)
        const pending: Pending = { topic: e.topic, partition: e.partition, offset: e.offset, name: e.name, payload: batch.subarray(e.payloadStart, e.end), dup: id !== undefined, id }
        if (retain) pending.retain = true
        if (e.propsEnd > e.propsStart) {
          const properties = Buffer.from(batch.subarray(e.propsStart, e.propsEnd))
          if (e.expiresAt > 0 && e.expiryAt >= 0) properties.writeUInt32BE(left, e.expiryAt - e.propsStart)
          pending.properties = properties
        }
        this.#unackedOf(e.topic, e.partition).add(e.offset)
        if (this.#waiting.length === 0 && this.#inflight.size < this.receiveMaximum) {
          wrote = this.#send(pending) || wrote
        } else {
          // the payload is a view of the hub's batch: copied, so a long wait holds only its own bytes
          pending.payload = Buffer.from(pending.payload)
          this.#waiting.push(pending)
          this.#waitingBytes += pending.payload.length + pending.name.length
        }
      }
      flush(envelopes.length)
    } finally {
      this.#o.uncork()
    }
    if (onWritten) {
      if (wrote) this.#o.write(Buffer.alloc(0), onWritten)
      else process.nextTick(onWritten)
    }
    this.#o.changed()
  }

  #see (topic: string, partition: number, next: bigint): void {
    let seen = this.#seen.get(topic)
    if (!seen) {
      seen = new Map()
      this.#seen.set(topic, seen)
    }
    if ((seen.get(partition) ?? -1n) < next) seen.set(partition, next)
  }

  #unackedOf (topic: string, partition: number): Set<bigint> {
    let parts = this.#unacked.get(topic)
    if (!parts) {
      parts = new Map()
      this.#unacked.set(topic, parts)
    }
    let set = parts.get(partition)
    if (!set) {
      set = new Set()
      parts.set(partition, set)
    }
    return set
  }

  /** Sends a QoS 1 delivery with its packet id (a new one, or the one it had); false if too large to send. */
  #send (pending: Pending): boolean {
    const id = pending.id ?? this.#newId()
    pending.id = id
    const packet = qos1Packet(pending.name, pending.payload, id, this.#o.version, pending.dup, pending.properties, pending.retain)
    if (packet.length > this.#o.maxPacket) {
      // MQTT 5 3.1.2.11.4: a packet over the client's maximum is discarded as if delivered
      this.#unacked.get(pending.topic)?.get(pending.partition)?.delete(pending.offset)
      return false
    }
    // the payload may be a view of the hub's batch: kept as its own copy while unacknowledged
    pending.payload = Buffer.from(pending.payload)
    this.#inflight.set(id, pending)
    const bytes = this.#o.transport === 'ws' ? wireFrame(packet, true) : packet
    this.#o.write(bytes)
    // a redelivery (DUP) of what an earlier connection was sent is not a second delivery
    if (!pending.dup) this.#o.delivered?.(1, bytes.length)
    return true
  }

  #newId (): number {
    // 1 to 65535 [MQTT-2.3.1-1], none in use: in flight, or kept for an inherited delivery
    const reserved = new Set(this.#inherited.values())
    for (;;) {
      const id = this.#nextId
      this.#nextId = id === 65_535 ? 1 : id + 1
      if (!this.#inflight.has(id) && !reserved.has(id)) return id
    }
  }

  /**
   * A retained message sent at subscribe at QoS 1, as its QoS and the subscription's allow [MQTT-3.8.4-8]: a
   * packet id of its own, kept until PUBACKed, within Receive Maximum as the others. It has no position in
   * the subscription's Kafka topics, so a persistent session does not keep it: unacknowledged when the
   * connection ends, it is not sent again on resume. false if too large for the client.
   */
  retained (name: string, payload: Buffer): boolean {
    const pending: Pending = { topic: '', partition: -1, offset: -1n, name, payload, dup: false, retain: true, atSubscribe: true }
    if (this.#waiting.length === 0 && this.#inflight.size < this.receiveMaximum) return this.#send(pending)
    pending.payload = Buffer.from(payload)
    this.#waiting.push(pending)
    this.#waitingBytes += pending.payload.length + pending.name.length
    return true
  }

  /** The client's PUBACK of `id`: the delivery is done, and one waiting goes out. false for an unknown id. */
  puback (id: number): boolean {
    const pending = this.#inflight.get(id)
    if (!pending) return false
    this.#inflight.delete(id)
    this.#unacked.get(pending.topic)?.get(pending.partition)?.delete(pending.offset)
    this.#o.cork()
    try {
      while (this.#waiting.length > 0 && this.#inflight.size < this.receiveMaximum) {
        const next = this.#waiting.shift()!
        this.#waitingBytes -= next.payload.length + next.name.length
        this.#send(next)
      }
    } finally {
      this.#o.uncork()
    }
    this.#o.changed()
    const wake = this.#progress
    this.#progress = []
    for (const w of wake) w()
    return true
  }

  /** Runs `wake` once a PUBACK moved the waiting deliveries (or `close` says the socket is gone). */
  onProgress (wake: () => void): void {
    this.#progress.push(wake)
  }

  close (): void {
    const wake = this.#progress
    this.#progress = []
    for (const w of wake) w()
  }

  /** Per topic and partition, where the session resumes: its first unacknowledged record, or after the last seen. */
  positions (topics: Iterable<string>): Positions {
    const out: Positions = new Map()
    for (const topic of topics) {
      const seen = this.#seen.get(topic)
      if (!seen) continue
      const parts = new Map<number, bigint>()
      for (const [p, next] of seen) {
        let at = next
        for (const o of this.#unacked.get(topic)?.get(p) ?? []) if (o < at) at = o
        parts.set(p, at)
      }
      out.set(topic, parts)
    }
    return out
  }

  /** The QoS 1 deliveries sent and not acknowledged, with those inherited and not sent again yet. */
  unacknowledged (): Array<[string, number, string, number]> {
    const out: Array<[string, number, string, number]> = []
    for (const [id, p] of this.#inflight) if (p.atSubscribe !== true) out.push([p.topic, p.partition, p.offset.toString(), id])
    for (const [key, id] of this.#inherited) {
      const [topic, partition, offset] = splitKey(key)
      out.push([topic, partition, offset, id])
    }
    return out
  }
}

function splitKey (key: string): [string, number, string] {
  const last = key.lastIndexOf('/')
  const mid = key.lastIndexOf('/', last - 1)
  return [key.slice(0, mid), Number(key.slice(mid + 1, last)), key.slice(last + 1)]
}
