// MQTT will messages (3.1.2.5, 3.1.3.2): what a CONNECT asks the server to
// publish for the client when its connection ends without a normal DISCONNECT
// (a lost network, a keep-alive timeout, a protocol error, the server closing
// it). The will is checked at CONNECT (topic name, mapping, publish ACL, QoS)
// and published at the end through the same mapping as a PUBLISH, retained
// through the retained path when its retain flag says so. MQTT 5's Will Delay
// Interval holds it back, and a new connection with the same client id within
// the delay cancels it [MQTT-3.1.3-9]: on this node (the pending wills are
// this node's timers); a client that reconnects to another node within the
// delay does not cancel it, and the will is published when the delay ends.
import type { IConnectPacket } from 'mqtt-packet'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl } from '@sluice/policy/access'
import type { Logger } from '@sluice/protocol/logger'
import type { OutgoingRecord, RecordMetadata } from '@sluice/kafka'
import { validName, type Mappings } from './mapping.ts'
import type { RetainedStore } from './retained.ts'

/**
 * The longest Will Delay Interval honoured: 1 hour. A pending will is a timer and its payload in this node's
 * memory, lost if the node dies (the will is then never published); a device's "I am gone" later than an hour
 * is stale news anyway. A longer delay is served as 1 hour (MQTT lets the server publish earlier: the session
 * may end first, 3.1.3.2.2).
 */
export const MAX_WILL_DELAY_S = 3600

export interface Will {
  clientId: string
  /** the MQTT topic name, and the Kafka record it maps to */
  name: string
  topic: string
  key: string
  payload: Buffer
  retain: boolean
  identity: Identity
}

/** Why a CONNECT's will is refused: MQTT 5 CONNACK reason codes (3.2.2.2) and what 3.1.1 says of the same. */
export type WillRefusal = 'willTopic' | 'willNotAuthorized' | 'willQos' | 'willRetain'

/** The will of `connect` as this gateway would publish it, or why it is refused. */
export function checkWill (connect: IConnectPacket, identity: Identity, mappings: Mappings, access: AccessControl, retainAvailable: boolean): Omit<Will, 'clientId'> | WillRefusal {
  const will = connect.will!
  if (!validName(will.topic)) return 'willTopic'
  const record = mappings.toRecord(will.topic)
  // a will no product maps could never be published: refused now rather than dropped at the end
  if (!record) return 'willTopic'
  // [MQTT-3.2.2-12]: a Will QoS past the announced maximum (1) is refused (0x9B)
  if (connect.protocolVersion === 5 && will.qos === 2) return 'willQos'
  // [MQTT-3.2.2-13]: a will retain when retain is not available (0x9A)
  if (will.retain && !retainAvailable) return 'willRetain'
  // the will is a publish on the client's behalf: the policy's publish rule for its Kafka topic, checked now
  if (!access.authorize(identity, 'publish', record.topic).allowed) return 'willNotAuthorized'
  const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : (will.payload ?? Buffer.alloc(0))
  return { name: will.topic, topic: record.topic, key: record.key, payload, retain: will.retain === true, identity }
}

export interface WillDeps {
  produce (topic: string, record: OutgoingRecord): Promise<RecordMetadata>
  retained: RetainedStore | undefined
  access: AccessControl
  log: Logger
}

/** The node's wills waiting out their delay, by client id, and the ones being written. */
export class Wills {
  readonly #deps: WillDeps
  readonly #pending = new Map<string, { will: Will, timer: NodeJS.Timeout }>()
  readonly #writing = new Set<Promise<void>>()
  /** wills written, for tests and metrics */
  published = 0

  constructor (deps: WillDeps) {
    this.#deps = deps
  }

  get pending (): number {
    return this.#pending.size
  }

  /** The connection of `will` ended without a normal DISCONNECT: publish it now, or after `delayS`. */
  schedule (will: Will, delayS: number): void {
    this.cancel(will.clientId)
    const delayMs = Math.min(delayS, MAX_WILL_DELAY_S) * 1000
    if (delayMs <= 0) {
      this.#publish(will)
      return
    }
    const timer = setTimeout(() => {
      this.#pending.delete(will.clientId)
      this.#publish(will)
    }, delayMs)
    timer.unref()
    this.#pending.set(will.clientId, { will, timer })
  }

  /** A new connection with this client id: its previous connection's pending will is not published [MQTT-3.1.3-9]. */
  cancel (clientId: string): boolean {
    const pending = this.#pending.get(clientId)
    if (!pending) return false
    clearTimeout(pending.timer)
    this.#pending.delete(clientId)
    return true
  }

  #publish (will: Will): void {
    const write = this.#write(will)
      .then(() => { this.published++ })
      .catch(err => this.#deps.log.warn({ err, clientId: will.clientId, topic: will.topic }, 'MQTT will not published'))
    this.#writing.add(write)
    write.finally(() => this.#writing.delete(write)).catch(() => {})
  }

  async #write (will: Will): Promise<void> {
    // the policy may have changed since the CONNECT: the will is a publish, allowed by the rules of now
    if (!this.#deps.access.authorize(will.identity, 'publish', will.topic).allowed) {
      this.#deps.log.info({ clientId: will.clientId, topic: will.topic }, 'MQTT will no longer allowed, not published')
      return
    }
    const record = this.#deps.produce(will.topic, { key: will.key, value: will.payload })
    // [MQTT-3.1.2-17] (3.1.1 [MQTT-3.1.2-17]): a will with retain 1 is published as a retained message
    const retained = will.retain && this.#deps.retained ? this.#deps.retained.put(will.name, will.payload) : undefined
    await Promise.all([record, retained])
  }

  /**
   * The node is closing: the pending wills cannot wait out their delay on a node that goes away (their timers
   * die with it), so they are published now, and the writes in flight are waited for before Kafka closes.
   */
  async flush (): Promise<void> {
    for (const { will, timer } of this.#pending.values()) {
      clearTimeout(timer)
      this.#publish(will)
    }
    this.#pending.clear()
    await Promise.allSettled([...this.#writing])
  }
}
