// Test support for the persistent-session suites (not a test file): gateway
// nodes as child processes (apps/gateway/src/server.ts, so that SIGKILL is a
// real one) on the run's Kafka and Redis, with the MQTT suites' policy and a
// sessions topic of the file's own; and a raw MQTT client over WebSocket
// (mqtt-packet), whose PUBACKs the test decides, and which sees DUP flags,
// packet ids, Session Present and the server's DISCONNECT as they are.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import WebSocket from 'ws'
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet'
import { freePort } from '@sluice/stack'
import { policyDir } from '../harness/policy.ts'
import { KafkaClient } from '@sluice/kafka'
import { DEV_TOKEN, POLICY, TEMP } from './harness.ts'
import { eventually, kafkaBrokers, redisUrl, unique } from '../helpers.ts'

const ENTRY = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')

export interface MqttNode {
  url: string
  /** the MQTT TCP listener's port, when asked for */
  tcpPort?: number
  child: ChildProcess
  exited: Promise<unknown>
  log (): string
}

/** `count` gateway processes sharing one policy, one sessions topic and one retained topic; ready when it resolves. */
export async function startNodes (t: Test, count: number, sessionsTopic: string, options: { tcp?: boolean } = {}): Promise<MqttNode[]> {
  const dir = policyDir(POLICY)
  const retainedTopic = unique('mqtt-persist-retained')
  const rl = unique('mqtt-persist-rl') + ':'
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'mqtt-persist-topics' })
  try {
    await kafka.ensureTopics([{ topic: TEMP, partitions: 1 }])
  } finally {
    await kafka.close()
  }
  const nodes = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const port = await freePort()
    const tcpPort = options.tcp ? await freePort() : undefined
    const file = join(mkdtempSync(join(tmpdir(), 'sluice-mqtt-node-')), 'gateway.yaml')
    writeFileSync(file, JSON.stringify({
      server: { host: '127.0.0.1', port, drainMs: 500, shutdownTimeoutMs: 5000 },
      log: { level: 'warn' },
      kafka: { brokers: kafkaBrokers() },
      redis: { url: redisUrl() },
      policy: { dir, watch: false },
      dev: { token: DEV_TOKEN },
      rateLimit: { prefix: rl },
      stream: { nodeId: `mqtt-node-${i}` },
      mqtt: { sessionsTopic, retainedTopic, ...(tcpPort ? { tcpPort } : {}) }
    }))
    const child = spawn(process.execPath, [ENTRY, '--config', file], {
      env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let log = ''
    child.stdout!.on('data', chunk => { log += chunk })
    child.stderr!.on('data', chunk => { log += chunk })
    const exited = new Promise(resolve => child.once('exit', resolve))
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    const node: MqttNode = { url: `ws://127.0.0.1:${port}/mqtt`, tcpPort, child, exited, log: () => log }
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`node ${i} exited: ${log.slice(-2000)}`)
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined)
      return res?.status === 200
    }, 40_000, `MQTT node ${i} is ready`)
    return node
  }))
  t.teardown(() => {
    if (t.passing()) return
    for (const [i, node] of nodes.entries()) t.comment(`node ${i}:\n${node.log().split('\n').slice(-15).join('\n')}`)
  })
  return nodes
}

/** A raw MQTT client over WebSocket: every packet the server sends is kept, in order. */
export class RawClient {
  readonly packets: Packet[] = []
  /** when each packet arrived (Date.now()), by index in `packets` */
  readonly times: number[] = []
  readonly ws: WebSocket
  readonly version: 4 | 5
  closedAt: number | undefined
  /** PUBACK every QoS 1 PUBLISH as it arrives, as a client library does */
  autoAck = false

  constructor (ws: WebSocket, version: 4 | 5) {
    this.ws = ws
    this.version = version
    const parser = mqttPacket.parser({ protocolVersion: version })
    parser.on('packet', packet => {
      this.packets.push(packet)
      this.times.push(Date.now())
      if (this.autoAck && packet.cmd === 'publish' && packet.qos === 1) this.ack(packet.messageId!)
    })
    ws.on('message', data => parser.parse(data as Buffer))
    ws.on('close', () => { this.closedAt = Date.now() })
    ws.on('error', () => {})
  }

  static async connect (t: Test, url: string, connect: Partial<IConnectPacket> & { clientId: string }, autoAck = false): Promise<RawClient> {
    const ws = new WebSocket(url, 'mqtt')
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const version = connect.protocolVersion === 5 ? 5 : 4
    const client = new RawClient(ws, version)
    client.autoAck = autoAck
    t.teardown(() => { ws.terminate() })
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, keepalive: 0, username: 'any', password: Buffer.from(DEV_TOKEN), ...connect } as IConnectPacket)
    await client.next('connack', 20_000)
    return client
  }

  /** when the first `cmd` packet arrived */
  at (cmd: Packet['cmd']): number | undefined {
    const i = this.packets.findIndex(p => p.cmd === cmd)
    return i < 0 ? undefined : this.times[i]
  }

  send (packet: Packet): void {
    this.ws.send(mqttPacket.generate(packet, { protocolVersion: this.version }))
  }

  of<C extends Packet['cmd']> (cmd: C): Array<Extract<Packet, { cmd: C }>> {
    return this.packets.filter(p => p.cmd === cmd) as Array<Extract<Packet, { cmd: C }>>
  }

  async next<C extends Packet['cmd']> (cmd: C, timeoutMs = 15_000, count = 1): Promise<Extract<Packet, { cmd: C }>> {
    await eventually(() => this.of(cmd).length >= count, timeoutMs, `${count} ${cmd} packet(s) (got ${this.packets.map(p => p.cmd).join(',')})`)
    return this.of(cmd)[count - 1]!
  }

  async subscribe (filter: string, qos: 0 | 1): Promise<number[]> {
    const messageId = 1 + this.of('suback').length
    this.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] })
    const suback = await this.next('suback', 15_000, messageId)
    return suback.granted as number[]
  }

  /** PUBLISH packets received, as `payload` strings */
  payloads (): string[] {
    return this.of('publish').map(p => p.payload.toString())
  }

  ack (messageId: number): void {
    this.send({ cmd: 'puback', messageId, reasonCode: 0 } as Packet)
  }

  /**
   * Resolves once the server has read every packet sent before: a PINGREQ's PINGRESP, as the session reads
   * its packets in order (a PUBACK sent before it has been acted on)
   */
  async sync (): Promise<void> {
    const before = this.of('pingresp').length
    this.send({ cmd: 'pingreq' })
    await this.next('pingresp', 10_000, before + 1)
  }

  /** ends the TCP connection at once, with no DISCONNECT: the server sees the connection lost */
  drop (): void {
    this.ws.terminate()
  }
}

/** A Kafka client for the test's records, closed at teardown; `temp(device, value)` writes what sensors/{device}/temp delivers. */
export function producer (t: Test): { kafka: KafkaClient, temp: (device: string, value: string) => Promise<unknown> } {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('mqtt-persist-producer') })
  t.teardown(() => kafka.close())
  return { kafka, temp: (device, value) => kafka.produce(TEMP, { key: device, value }) }
}
