// GET /mqtt: MQTT 3.1.1 and 5.0 over WebSocket (subprotocol `mqtt`, as
// MQTT.js and browsers ask for it) onto the products' Kafka topics, through
// the policy's `mqtt:` mappings. The credentials are in the CONNECT packet,
// not in the upgrade (an off-the-shelf MQTT client sends them there): the
// upgrade is open, and the connection is authenticated before its first
// byte of data, then served as a SocketSession like the other routes'.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { createServer } from 'node:net'
import type { WebSocket, RawData } from 'ws'
// type-only: brings @fastify/websocket's route options into scope
import type {} from '@fastify/websocket'
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet'
import { Gauge } from 'prom-client'
import { gatewayDefaults } from '@sluice/config/gateway'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl } from '@sluice/policy/access'
import { acceptSession, CLOSE, DEFAULT_LIMITS, keepSessionsAlive, WIRE_CODES, type SessionLimits, type StreamGuard } from '@sluice/sessions'
import { Mappings, type MappingSource } from './mapping.ts'
import { MqttSession, parserHeld, REASON, type MqttStart } from './session.ts'
import type { Transport } from './format.ts'
import { TcpConnection } from './tcp.ts'
import { RetainedStore } from './retained.ts'
import { checkWill, Wills, type Will, type WillRefusal } from './will.ts'
import { SessionStore } from './persistence.ts'

export { MqttSession, REASON } from './session.ts'
export { Mappings, CompiledMapping, matches, validFilter, validName } from './mapping.ts'
export { mqttFormat, publishPacket } from './format.ts'
export { RetainedStore, DEFAULT_RETAINED_TOPIC, DEFAULT_RETAINED_MAX_BYTES } from './retained.ts'
export { Wills, MAX_WILL_DELAY_S } from './will.ts'
export { SessionStore, DEFAULT_SESSIONS_TOPIC, FLUSH_MS, HANDOFF_WAIT_MS, MAX_SESSION_EXPIRY_S, type Holder, type StoredSession } from './persistence.ts'
export { MAX_INFLIGHT } from './qos1.ts'

export const MQTT_PATH = '/mqtt'
export const MQTT_PROTOCOL = 'mqtt'
/** the TCP listener's sessions, as the registry and /metrics name their route */
export const MQTT_TCP_ROUTE = 'mqtt+tcp'

// a client sends its CONNECT right after the upgrade; 10 s is the gateway's handshake deadline for headers too
const CONNECT_TIMEOUT_MS = 10_000

export interface MqttPluginOptions {
  access: AccessControl & { hasAccess?: (identity: Identity) => boolean }
  /** where the products' `mqtt:` mappings are read (the live policy) */
  mappings: MappingSource
  /** the password of a CONNECT: an API key, the dev token or a JWT (the auth plugin's `credentials.verify`) */
  verify: (secret: string) => Promise<Identity>
  limits?: Partial<SessionLimits>
  keepaliveMs?: number
  guard?: StreamGuard
  /** the WebSocket frame limit, announced as MQTT 5's maximum packet size */
  maxPacketBytes?: number
  /** MQTT over plain TCP on this port; 0 or absent: no listener (TLS is the platform's, as for the other routes) */
  tcpPort?: number
  tcpHost?: string
  /** the compacted Kafka topic of retained messages (retained.ts); default sluice.mqtt.retained */
  retainedTopic?: string
  /** bytes of retained messages each node holds; default 64 MiB */
  retainedMaxBytes?: number
  /** MQTT 5 topic aliases a client may set on one connection (CONNACK Topic Alias Maximum); default mqtt.topicAliasMaximum's, 16 */
  topicAliasMaximum?: number
  /** the compacted Kafka topic of persistent sessions and takeover claims (persistence.ts); default sluice.mqtt.sessions */
  sessionsTopic?: string
  /**
   * The plan's connection limits (connections, connects per minute), taken once the CONNECT's credential is
   * known (the upgrade carries none, so the route's check before the 101 cannot); the ticket is released when
   * the connection closes. Absent: no plan connection limits (rate limits off).
   */
  connectionLimit?: (identity: Identity) => Promise<{ ok: true, release (): void } | { ok: false, limit: string }>
}

/** ws's handleProtocols for /mqtt: `mqtt` when asked for it; other paths are someone else's. */
export function selectMqttProtocol (protocols: Set<string>, request: IncomingMessage): string | false | undefined {
  const path = (request.url ?? '').split('?')[0]
  if (path !== MQTT_PATH) return undefined
  return protocols.has(MQTT_PROTOCOL) ? MQTT_PROTOCOL : false
}

/** CONNACK return code 0x01, unacceptable protocol level, in 3.1.1's 4 bytes */
const UNACCEPTABLE_PROTOCOL_LEVEL = Buffer.from([0x20, 0x02, 0x00, 0x01])

/** A CONNECT refused before its credential is read: the CONNACK code, or undefined. */
function refusedAtOnce (connect: IConnectPacket): number | undefined {
  // [MQTT-3.1.3-8]: 3.1.1 refuses a zero-length client id that asks to keep a session (0x02, identifier rejected)
  if (connect.protocolVersion !== 5 && connect.clientId === '' && !connect.clean) return 0x02
  // 5.0 [MQTT-4.12.0-1]: enhanced authentication is not served here; a CONNECT asking for it gets 0x8C (bad authentication method)
  if (connect.protocolVersion === 5 && connect.properties?.authenticationMethod !== undefined) return 0x8C
  return undefined
}

/** CONNACK refusal codes: MQTT 5 reason codes, and what 3.1.1's return codes say of the same. */
const REFUSE = {
  credentials: { 5: REASON.BAD_CREDENTIALS, 4: 0x04 },
  notAuthorized: { 5: REASON.NOT_AUTHORIZED, 4: 0x05 },
  unavailable: { 5: REASON.SERVER_UNAVAILABLE, 4: 0x03 },
  unsupported: { 5: REASON.IMPLEMENTATION_SPECIFIC, 4: 0x03 },
  // a will's topic no product maps, or not a topic name (3.1.1 has no code of its own: not authorized)
  willTopic: { 5: REASON.TOPIC_NAME_INVALID, 4: 0x05 },
  willNotAuthorized: { 5: REASON.NOT_AUTHORIZED, 4: 0x05 },
  willQos: { 5: REASON.QOS_NOT_SUPPORTED, 4: 0x03 },
  willRetain: { 5: REASON.RETAIN_NOT_SUPPORTED, 4: 0x03 },
  // the plan's limits (3.1.1 has no code for a limit: server unavailable, as mosquitto's max_connections)
  connections: { 5: REASON.QUOTA_EXCEEDED, 4: 0x03 },
  connectsPerMinute: { 5: REASON.CONNECTION_RATE_EXCEEDED, 4: 0x03 }
} satisfies Record<string, { 5: number, 4: number }>

async function mqtt (fastify: FastifyInstance, opts: MqttPluginOptions): Promise<void> {
  const limits: SessionLimits = { ...DEFAULT_LIMITS, ...opts.limits }
  const log = fastify.log.child({ component: 'mqtt' })
  const mappings = new Mappings(opts.mappings)
  const maxPacketBytes = opts.maxPacketBytes ?? gatewayDefaults.stream.maxFrameBytes
  // every node reads the whole retained set from Kafka and follows it (retained.ts); started once the app is
  // ready, in the background: a Kafka not there yet delays retained messages, not the gateway
  const retained = new RetainedStore({ kafka: fastify.kafka, topic: opts.retainedTopic, maxBytes: opts.retainedMaxBytes, log })
  const wills = new Wills({
    produce: (topic, record) => fastify.kafka.produce(topic, record, { timeoutMs: limits.publishTimeoutMs }),
    retained,
    access: opts.access,
    log
  })
  fastify.addHook('onReady', async () => retained.start())
  // persistent sessions and takeovers (persistence.ts): every node follows the topic, started as the retained set is
  const store = new SessionStore({ kafka: fastify.kafka, topic: opts.sessionsTopic, log })
  fastify.addHook('onReady', async () => store.start())
  // after the sessions closed: their last states are written before Kafka closes
  fastify.addHook('onClose', async () => {
    await store.flush()
    await store.stop()
  })
  // after the sessions closed (the WebSocket preClose, the TCP listener's onClose): their wills are written before Kafka closes
  fastify.addHook('onClose', async () => {
    await wills.flush()
    await retained.stop()
  })
  // what MQTT keeps on this node besides its sockets (those are sluice_connections{route="mqtt"|"mqtt+tcp"}):
  // the retained set against its bound, the persistent sessions followed, the wills waiting out a delay
  if (fastify.hasDecorator('metrics')) {
    const gauge = (name: string, help: string, read: () => number) => new Gauge({ name, help, registers: [fastify.metrics], collect () { this.set(read()) } })
    gauge('sluice_mqtt_retained_messages', 'Retained MQTT messages this node holds (read from mqtt.retainedTopic)', () => retained.size)
    gauge('sluice_mqtt_retained_bytes', 'Bytes of retained MQTT messages this node holds, as mqtt.retainedMaxBytes bounds them', () => retained.bytes)
    gauge('sluice_mqtt_sessions_stored', 'Persistent MQTT sessions in the index this node follows (mqtt.sessionsTopic), connected or not', () => store.size)
    gauge('sluice_mqtt_wills_pending', 'MQTT wills waiting out their Will Delay Interval on this node', () => wills.pending)
  }
  const deps = {
    hub: fastify.hub,
    kafka: fastify.kafka,
    access: opts.access,
    sessions: fastify.sessions,
    log,
    limits,
    guard: opts.guard,
    publishes: fastify.publishCounts.route(MQTT_PATH, WIRE_CODES),
    mappings,
    maxPacketBytes,
    retained,
    wills,
    store,
    topicAliasMaximum: opts.topicAliasMaximum ?? gatewayDefaults.mqtt.topicAliasMaximum
  }

  async function identify (connect: IConnectPacket): Promise<{ identity: Identity, will?: Omit<Will, 'clientId'>, release?: () => void } | keyof typeof REFUSE> {
    const password = connect.password?.toString('utf8')
    if (!password) return 'credentials'
    let identity: Identity
    try {
      identity = await opts.verify(password)
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode
      log.info({ code: (err as { code?: string }).code }, 'MQTT credentials refused')
      return status === 503 ? 'unavailable' : 'credentials'
    }
    // usage metering counts a refusal of a known credential under the code a WebSocket upgrade's answer would carry
    const refused = <W extends keyof typeof REFUSE>(why: W, code: string): W => {
      fastify.sessions.meter?.refused(identity, code)
      return why
    }
    // a credential no rule grants anything is not authorized to connect
    if (opts.access.hasAccess && !opts.access.hasAccess(identity)) return refused('notAuthorized', 'FORBIDDEN')
    // the will is checked now (MQTT 5 3.2.2.2: 0x87 a will topic not authorized), not found wanting at the end
    const will: Omit<Will, 'clientId'> | WillRefusal | undefined = connect.will ? checkWill(connect, identity, mappings, opts.access, true) : undefined
    if (typeof will === 'string') return refused(will, will === 'willNotAuthorized' ? 'FORBIDDEN' : 'BAD_REQUEST')
    // last: a slot is taken only by a CONNECT that is otherwise accepted
    const ticket = opts.connectionLimit ? await opts.connectionLimit(identity) : undefined
    if (ticket && !ticket.ok) {
      log.info({ limit: ticket.limit }, 'MQTT connection refused by a rate limit')
      if (ticket.limit === 'connections') return refused('connections', 'SLUICE_RATE_CONNECTIONS')
      if (ticket.limit === 'connectsPerMinute') return refused('connectsPerMinute', 'SLUICE_RATE_CONNECTS')
      return refused('unavailable', 'SLUICE_RATE_UNAVAILABLE')
    }
    return { identity, ...(will ? { will } : {}), ...(ticket ? { release: ticket.release } : {}) }
  }

  /**
   * The connection until its CONNECT is authenticated: then `accept` makes its session, with the parser and
   * the packets read meanwhile; refused, it hears its CONNACK and is closed.
   */
  function connectPhase (socket: WebSocket, transport: Transport, accept: (start: Omit<MqttStart, 'socket' | 'raw' | 'remoteAddress' | 'route'>) => void): void {
    // until the session owns the socket, its errors are only logged (an unhandled 'error' would end the process)
    socket.on('error', err => log.debug({ err }, 'MQTT socket error before CONNECT'))
    const parser = mqttPacket.parser()
    const pending: Packet[] = []
    let connect: IConnectPacket | undefined
    let done = false
    const deadline = setTimeout(() => finish(() => socket.close(CLOSE.POLICY_VIOLATION, 'no CONNECT')), CONNECT_TIMEOUT_MS)
    deadline.unref()

    const onMessage = (data: RawData, isBinary: boolean) => {
      if (done) return
      // [MQTT-6.0.0-1]: binary frames only
      if (!isBinary) return finish(() => socket.close(CLOSE.POLICY_VIOLATION, 'MQTT needs binary frames'))
      parser.parse(data as Buffer)
      if (!done && parserHeld(parser) > maxPacketBytes) finish(() => socket.close(CLOSE.TOO_LARGE, 'packet too large'))
    }
    function finish (then: () => void): void {
      if (done) return
      done = true
      clearTimeout(deadline)
      socket.off('message', onMessage)
      // read again (paused while the CONNECT was checked): a close needs the peer's close frame, and the session
      // reads its packets from here on (its listener is attached before the next read)
      if (socket.isPaused) socket.resume()
      then()
    }
    parser.on('error', (err: Error) => finish(() => {
      // [MQTT-3.1.2-2]: a protocol level the server does not speak gets CONNACK 0x01 before the close, in
      // 3.1.1's form (the one CONNACK every level can read; MQTT 5 3.1.2.2 allows 0x84 or this)
      if (!connect && err.message === 'Invalid protocol version') socket.send(UNACCEPTABLE_PROTOCOL_LEVEL)
      socket.close(CLOSE.POLICY_VIOLATION, 'malformed packet')
    }))
    parser.on('packet', (packet: Packet) => {
      if (done) return
      if (connect) {
        pending.push(packet)
        return
      }
      // [MQTT-3.1.0-1]: the first packet is a CONNECT
      if (packet.cmd !== 'connect') return finish(() => socket.close(CLOSE.POLICY_VIOLATION, 'first packet is not CONNECT'))
      const early = refusedAtOnce(packet)
      if (early !== undefined) {
        socket.send(mqttPacket.generate({ cmd: 'connack', sessionPresent: false, returnCode: early, reasonCode: early }, { protocolVersion: packet.protocolVersion === 5 ? 5 : 4 }))
        return finish(() => socket.close(CLOSE.NORMAL, 'connect refused'))
      }
      connect = packet
      // read no more until the credential is checked; packets already read wait in `pending`
      socket.pause()
      const version = packet.protocolVersion === 5 ? 5 : 4
      identify(packet).then(identified => {
        if (typeof identified !== 'string' && identified.release) {
          // the plan's slot is this connection's until it closes
          if (done || socket.readyState !== socket.OPEN) identified.release()
          else socket.once('close', identified.release)
        }
        if (done || socket.readyState !== socket.OPEN) return finish(() => {})
        if (typeof identified === 'string') {
          const code = REFUSE[identified][version]
          // [MQTT-3.2.2-6] / MQTT 5 3.2.2.2: a refusing CONNACK, then the connection is closed
          socket.send(mqttPacket.generate({ cmd: 'connack', sessionPresent: false, returnCode: code, reasonCode: code }, { protocolVersion: version }))
          return finish(() => socket.close(CLOSE.NORMAL, 'connect refused'))
        }
        finish(() => accept({ identity: identified.identity, will: identified.will, connect: packet, version, parser, pending, transport }))
      }).catch(err => {
        log.error({ err }, 'MQTT CONNECT failed')
        finish(() => socket.close(CLOSE.INTERNAL, 'internal error'))
      })
    })
    socket.on('message', onMessage)
  }

  function handler (socket: WebSocket, request: FastifyRequest): void {
    connectPhase(socket, 'ws', start => {
      acceptSession(socket, request, log, raw => new MqttSession({ ...start, socket, raw, remoteAddress: request.ip, route: MQTT_PATH }, deps), session => session.open())
    })
  }

  fastify.get(MQTT_PATH, { websocket: true }, handler)
  keepSessionsAlive(fastify, opts.keepaliveMs ?? gatewayDefaults.stream.keepaliveMs)

  if (opts.tcpPort) {
    const tcpDeps = { ...deps, publishes: fastify.publishCounts.route(MQTT_TCP_ROUTE, WIRE_CODES) }
    const server = createServer({ noDelay: true }, raw => {
      const socket = new TcpConnection(raw) as unknown as WebSocket
      connectPhase(socket, 'tcp', start => {
        const session = new MqttSession({ ...start, socket, raw, remoteAddress: raw.remoteAddress ?? '', route: MQTT_TCP_ROUTE }, tcpDeps)
        session.open().catch(err => log.warn({ err }, 'MQTT session did not open'))
      })
    })
    server.on('error', err => log.error({ err }, 'MQTT TCP listener failed'))
    // Started when the app is ready, just before the HTTP server listens: listen() resolves before Fastify's
    // onListen hooks finish, so a listener started there could still refuse a client (mosquitto_sub,
    // connecting at once, was refused in a clean-clone run) after the gateway reported it was listening
    fastify.addHook('onReady', async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ port: opts.tcpPort, host: opts.tcpHost }, () => {
          server.off('error', reject)
          resolve()
        })
      })
      log.info({ port: opts.tcpPort }, 'MQTT over TCP listening')
    })
    // the listener stops taking new connections; the sessions are closed with the others (going away, then cut
    // after the sessions' close grace). Not waited for: net.Server's close callback waits for every peer to end
    // its side, and a device that never does would hold the shutdown for that whole grace (10 s)
    fastify.addHook('onClose', async () => {
      if (server.listening) server.close()
    })
  }
}

export default fp(mqtt, { fastify: '5.x', name: 'sluice-mqtt', dependencies: ['sluice-sessions', 'sluice-hub', '@fastify/websocket'] })
