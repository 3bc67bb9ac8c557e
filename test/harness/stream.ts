// Builds a plugin stack for the stream suites and benchmarks: the real Kafka
// plugin, hub, @fastify/websocket and /v1/stream on a real port, without auth,
// policy or rate limits (an identity and an AccessControl of the suite's own);
// the whole gateway is harness/gateway.ts. Clients: harness/client.ts.
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import health from '@sluice/health'
import sessions from '@sluice/sessions'
import metrics from '@sluice/metrics'
import kafkaPlugin from '@sluice/kafka-plugin'
import { KafkaClient, type KafkaSecurity } from '@sluice/kafka'
import hub, { type HubPluginOptions } from '@sluice/hub'
import stream, { selectProtocol } from '@sluice/stream'
import type { SessionLimits } from '@sluice/sessions'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl, TopicTerms } from '@sluice/policy/access'
import { kafkaBrokers } from '../helpers.ts'

export const DEV_IDENTITY: Identity = { kind: 'dev', subject: 'dev', claims: { sub: 'dev' } }

/** Every topic allowed, with the given terms: for suites about streaming, not about policy. */
export function allowAll (terms: Partial<TopicTerms> = {}, deny: string[] = []): AccessControl {
  return {
    authorize (_identity, _action, topic) {
      if (deny.includes(topic)) return { allowed: false, reason: 'denied by the test policy' }
      return { allowed: true, product: 'test', plan: 'test', encoding: 'json', slowClient: 'lagging', ...terms }
    },
    onChange () { return () => {} }
  }
}

export interface StreamAppOptions {
  access?: AccessControl
  limits?: Partial<SessionLimits>
  nodeId?: string
  keepaliveMs?: number
  brokers?: string[]
  /** the identity every request carries (the auth plugin's job in the gateway) */
  identity?: Identity
  /** the hub's backfillTimeoutMs (a suite on a loaded machine gives it room) */
  backfillTimeoutMs?: number
  /** the hub's window bounds (HubOptions.window) */
  window?: HubPluginOptions['window']
  /** TLS and SASL to the brokers */
  security?: KafkaSecurity
}

export async function streamApp (options: StreamAppOptions = {}): Promise<{ app: FastifyInstance, url: string, kafka: KafkaClient }> {
  const app = Fastify({ logger: false })
  const kafka = new KafkaClient({ brokers: options.brokers ?? kafkaBrokers(), clientId: 'test-gateway', security: options.security })
  await app.register(metrics, { defaultMetrics: false })
  await app.register(health)
  await app.register(sessions)
  await app.register(kafkaPlugin, { client: kafka })
  const identity = options.identity ?? DEV_IDENTITY
  app.addHook('onRequest', async request => { request.identity = identity })
  // metadata every 2 s: the new-partition suite waits for it
  // topic list every 300 ms: the pattern suite waits for new topics
  await app.register(hub, { nodeId: options.nodeId ?? 'test', graceMs: 200, metadataMaxAgeMs: 2000, topicRefreshMs: 300, backfillTimeoutMs: options.backfillTimeoutMs, window: options.window })
  await app.register(websocket, { options: { maxPayload: 1024 * 1024, perMessageDeflate: false, handleProtocols: selectProtocol } })
  await app.register(stream, { access: options.access ?? allowAll(), limits: options.limits, keepaliveMs: options.keepaliveMs })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: address.replace('http', 'ws'), kafka }
}
