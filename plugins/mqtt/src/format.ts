// How records become MQTT PUBLISH packets for the hub: one QoS 0 packet per
// record, in a binary WebSocket frame [MQTT-6.0.0-1], built once per record
// and MQTT version and written as the same bytes to every MQTT socket that
// takes it. Which socket takes it is the socket's own filter (MqttSession
// picks the frames whose topic name matches one of its subscriptions out of
// the hub's batch with `publishTopic`).
import type { ConsumedRecord } from '@sluice/kafka'
import { wireFrame, type FrameFormat } from '@sluice/hub'
import type { Mappings } from './mapping.ts'

const PUBLISH_QOS0 = 0x30

/** MQTT's Variable Byte Integer (1.5.5): 7 bits a byte, at most 4 bytes. */
function varint (n: number): number[] {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return out
}

/** MQTT's Variable Byte Integer's length in bytes. */
function varintLength (n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

/** A QoS 0 PUBLISH of `name` with `payload`; MQTT 5 adds its property list (3.3.2.3), empty unless `properties`. */
export function publishPacket (name: string, payload: Buffer, version: 4 | 5, properties?: Buffer): Buffer {
  const topic = Buffer.from(name, 'utf8')
  const props = version === 5 ? properties : undefined
  const propsLength = version === 5 ? (props ? varintLength(props.length) + props.length : 1) : 0
  const remaining = 2 + topic.length + propsLength + payload.length
  const header = varint(remaining)
  const packet = Buffer.allocUnsafe(1 + header.length + remaining)
  let at = 0
  packet[at++] = PUBLISH_QOS0
  for (const b of header) packet[at++] = b
  packet.writeUInt16BE(topic.length, at)
  at += 2
  topic.copy(packet, at)
  at += topic.length
  if (props) {
    for (const b of varint(props.length)) packet[at++] = b
    props.copy(packet, at)
    at += props.length
  } else if (version === 5) {
    packet[at++] = 0
  }
  payload.copy(packet, at)
  return packet
}

/** How MQTT reaches a client: in binary WebSocket frames, or as the bare byte stream of a TCP connection. */
export type Transport = 'ws' | 'tcp'

export function mqttFormat (mappings: Mappings, version: 4 | 5, transport: Transport = 'ws'): FrameFormat {
  return {
    key: transport === 'ws' ? `mqtt.${version}` : `mqtt-tcp.${version}`,
    frame (record: ConsumedRecord): Buffer | undefined {
      const name = mappings.toName(record.topic, record.key === null ? undefined : record.key.toString('utf8'))
      // a record whose key no mapping of its topic rebuilds is no MQTT message: no socket gets it
      if (name === undefined) return undefined
      const packet = publishPacket(name, record.value ?? Buffer.alloc(0), version)
      return transport === 'ws' ? wireFrame(packet, true) : packet
    }
  }
}

/** One PUBLISH of a hub batch: where it lies, and its topic name split at '/'. */
export interface BatchFrame {
  start: number
  end: number
  topic: string
  levels: readonly string[]
}

// A batch's frames, read once per batch rather than once per socket: the hub writes the same
// Buffer to every socket at the batch's start (a view only to one that is mid-batch)
const read = new WeakMap<Buffer, readonly BatchFrame[]>()

/**
 * The frames of a hub batch (unmasked server frames end to end, each one
 * PUBLISH as `publishPacket` makes it), each with its MQTT topic name.
 * Only the hub's own batches of this format come here, and a Buffer is of
 * one transport (the format's key names it), so it is read once.
 */
export function framesOf (batch: Buffer, transport: Transport = 'ws'): readonly BatchFrame[] {
  const known = read.get(batch)
  if (known) return known
  const frames: BatchFrame[] = []
  let at = 0
  while (at < batch.length) {
    const start = at
    if (batch.length - at < 2) break
    let end: number
    if (transport === 'ws') {
      let length = batch[at + 1]! & 0x7f
      at += 2
      if (length === 126) {
        length = batch.readUInt16BE(at)
        at += 2
      } else if (length === 127) {
        length = Number(batch.readBigUInt64BE(at))
        at += 8
      }
      end = at + length
    } else {
      // a bare PUBLISH: its remaining length says where the next one starts
      let remaining = 0
      let p = at + 1
      for (let shift = 1; ; shift *= 128) {
        const byte = batch[p++]!
        remaining += (byte & 0x7f) * shift
        if ((byte & 0x80) === 0) break
      }
      end = p + remaining
    }
    // the PUBLISH: fixed header, remaining length (1 to 4 bytes), topic length, topic
    let p = at + 1
    while (p < end && (batch[p]! & 0x80) !== 0) p++
    p++
    const topicLength = batch.readUInt16BE(p)
    const topic = batch.toString('utf8', p + 2, p + 2 + topicLength)
    frames.push({ start, end, topic, levels: topic.split('/') })
    at = end
  }
  read.set(batch, frames)
  return frames
}
