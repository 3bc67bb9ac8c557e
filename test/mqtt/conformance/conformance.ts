// What the MQTT conformance files share (test/mqtt-conformance/*.test.ts, one
// file per packet type, each test named after the normative statement it
// checks): one gateway per file as shipped, with MQTT over WebSocket and TCP
// (test/mqtt/harness.ts: its policy, mappings and credentials), and the three
// ways a test talks to it. Real clients first: MQTT.js (npm `mqtt`, over
// WebSocket and TCP) and Debian's mosquitto_pub / mosquitto_sub over TCP; a
// raw TCP connection with mqtt-packet only where a client library will not
// send the input a statement is about (a second CONNECT, reserved bits, QoS 3,
// silence past the keep-alive).
import { execFile } from 'node:child_process'
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import tap, { type Test } from 'tap'
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt'
import { DEV_TOKEN, connect, gateway, type MqttGateway } from '../harness.ts'

export { DEV_TOKEN, TEMP, HUM, READINGS, deviceToken, granted, inbox, refusalCode } from '../harness.ts'
export { eventually } from '../../helpers.ts'

export interface ConformanceGateway extends MqttGateway {
  tcpPort: number
  /** mqtt://127.0.0.1:<tcpPort> */
  tcpUrl: string
}

/** The file's gateway, started once and closed when the file's tests are done (each file is a process). */
export async function fileGateway (): Promise<ConformanceGateway> {
  const gw = await gateway(tap as unknown as Test, { tcp: true })
  return { ...gw, tcpPort: gw.tcpPort!, tcpUrl: `mqtt://127.0.0.1:${gw.tcpPort!}` }
}

/** An MQTT.js client with the dev token (the harness's dashboard: reads sensors/+/temp and /hum, publishes temperatures and readings). */
export function dashboard (t: Test, url: string, version: 4 | 5, options: IClientOptions = {}): Promise<MqttClient> {
  return connect(t, url, { protocolVersion: version, password: DEV_TOKEN, ...options })
}

/** An MQTT.js client with the dev token, and the CONNACK it was accepted with (connectAsync keeps only the client). */
export async function withConnack (t: Test, url: string, version: 4 | 5, options: IClientOptions = {}): Promise<{ client: MqttClient, connack: IConnackPacket }> {
  const client = mqtt.connect(url, { protocolVersion: version, username: 'x', password: DEV_TOKEN, reconnectPeriod: 0, connectTimeout: 20_000, ...options })
  t.teardown(() => client.endAsync(true))
  const connack = await within(new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  }), 20_000, 'a CONNACK')
  return { client, connack }
}

/** A bound on waiting, not a timing assertion. */
export function within<T> (work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    work.finally(() => clearTimeout(timer)),
    new Promise<T>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })
  ])
}

export interface Raw {
  socket: Socket
  /** every packet the server sent, parsed */
  packets: Packet[]
  /** resolves when the server (or the test) closed the connection */
  closed: Promise<void>
  send: (packet: Packet | Buffer) => void
  /** the next packet of this kind (one already received counts), bounded */
  next: (cmd: Packet['cmd'], ms?: number) => Promise<Packet>
}

/** A raw MQTT connection over TCP, for the inputs no client library sends. */
export async function raw (t: Test, port: number, version: 4 | 5): Promise<Raw> {
  const socket = netConnect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const packets: Packet[] = []
  const waiters: Array<() => void> = []
  const parser = mqttPacket.parser({ protocolVersion: version })
  parser.on('packet', p => {
    packets.push(p)
    for (const w of waiters.splice(0)) w()
  })
  socket.on('data', chunk => parser.parse(chunk))
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => socket.once('close', () => {
    resolve()
    for (const w of waiters.splice(0)) w()
  }))
  const taken = new Set<Packet>()
  const send = (packet: Packet | Buffer) => {
    socket.write(Buffer.isBuffer(packet) ? packet : mqttPacket.generate(packet, { protocolVersion: version }))
  }
  const next = (cmd: Packet['cmd'], ms = 15_000) => within(new Promise<Packet>((resolve, reject) => {
    const look = () => {
      const found = packets.find(p => p.cmd === cmd && !taken.has(p))
      if (found) {
        taken.add(found)
        return resolve(found)
      }
      if (socket.destroyed) return reject(new Error(`closed before a ${cmd}; received ${packets.map(p => p.cmd).join(', ')}`))
      waiters.push(look)
    }
    look()
  }), ms, `a ${cmd}`)
  return { socket, packets, closed, send, next }
}

/** A raw connection whose CONNECT (the dev token, clean, keep-alive 60 unless told) was accepted. */
export async function rawSession (t: Test, port: number, version: 4 | 5, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<Raw> {
  const c = await raw(t, port, version)
  c.send({ cmd: 'connect', protocolVersion: version, clientId: 'raw-' + Math.random().toString(36).slice(2, 10), clean: true, keepalive: 60, username: 'x', password: Buffer.from(DEV_TOKEN), ...connect } as mqttPacket.IConnectPacket)
  const connack = await c.next('connack')
  t.match(connack, { cmd: 'connack' }, 'connected')
  return c
}

/** The bytes of a packet with its first byte (type and flags) changed: what mqtt-packet's generate cannot make. */
export function withFirstByte (packet: Packet, version: 4 | 5, first: number): Buffer {
  const bytes = Buffer.from(mqttPacket.generate(packet, { protocolVersion: version }))
  bytes[0] = first
  return bytes
}

/** Runs a mosquitto-clients command (bounded by its own -W or by 30 s): its exit code and output. */
export function mosquitto (command: 'mosquitto_pub' | 'mosquitto_sub', args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(command, ['-h', '127.0.0.1', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

/** Waits for the connection to be closed by the server, bounded. */
export function closedBy (c: Raw, ms = 15_000): Promise<void> {
  return within(c.closed, ms, 'the server closed the connection')
}
