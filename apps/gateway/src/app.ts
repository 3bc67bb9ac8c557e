// The composition root: every plugin is registered here, explicitly, in the
// order of the request path (docs/design.md): health → sessions → kafka/redis → auth →
// policy → rate limit → hub → routes. Building the app is separate from starting it
// (server.ts), so tests build it with any config and drive it with inject().
import { readFileSync } from 'node:fs'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify'
import health from '@sluice/health'
import sessions, { CLOSE } from '@sluice/sessions'
import metrics from '@sluice/metrics'
import kafka from '@sluice/kafka-plugin'
import { KafkaClient, securityFromConfig } from '@sluice/kafka'
import redis from '@sluice/redis'
import auth from '@sluice/auth'
import policy from '@sluice/policy'
import admin from '@sluice/admin'
import apps from '@sluice/apps'
import docs, { loadOpenApi, type OpenApiDocument } from '@sluice/docs'
import portal from '@sluice/portal'
import rateLimit, { UNPLANNED_LIMITS } from '@sluice/rate-limit'
import usage from '@sluice/usage'
import hub from '@sluice/hub'
import websocket from '@fastify/websocket'
import stream, { selectProtocol } from '@sluice/stream'
import compat from '@sluice/compat'
import mqtt, { selectMqttProtocol } from '@sluice/mqtt'
import { hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { GatewayConfig } from './config.ts'
import { loggerOptions } from './logger.ts'
import { lazyRequestLogger } from './request-logger.ts'
import { enforceHandshakeDeadline } from './handshake-deadline.ts'
import { clientErrorHandler } from './client-errors.ts'
import { checkHandshakes } from './handshake.ts'
import drain from './drain.ts'

export type { GatewayConfig } from './config.ts'

// the OpenAPI documents (gateway.yaml, admin.yaml) that /openapi.json and /docs serve
export const OPENAPI_DIR = fileURLToPath(new URL('../../../openapi/', import.meta.url))

export interface BuildOptions {
  /** a pino instance to log to (tests capture output this way) */
  logger?: FastifyBaseLogger
  /** this node's clock for local rate-limit bookkeeping; shared buckets run on Redis time (tests skew it) */
  now?: () => number
  /** hears every route as it is registered (the OpenAPI suite compares them with the document) */
  onRoute?: (this: FastifyInstance, route: RouteOptions) => void
  /** the OpenAPI documents' directory (default: the repository's openapi/) */
  openapiDir?: string
  /**
   * The level of Fastify's per-request lines ("incoming request", "request completed").
   * Dev mode says debug: at info they bury its banner under a line per portal asset.
   */
  requestLogLevel?: 'info' | 'debug'
}

/** Fastify's per-request lines at debug instead of info; a failed request is still an error. */
class DebugRequestLogs extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) super.requestCompleted(error, request, reply)
    else reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

async function openapiDocument (app: FastifyInstance, dir: string, admin: boolean): Promise<OpenApiDocument | undefined> {
  try {
    return await loadOpenApi(dir, { admin })
  } catch (err) {
    // an image built without openapi/ still serves everything else; a broken document is a bug and fails the boot
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    app.log.warn({ dir }, 'no OpenAPI documents: /openapi.json and /docs are not served')
    return undefined
  }
}

/** Where clients reach /v1/stream, as the AsyncAPI document's server says it. */
function streamServer (config: GatewayConfig): { host: string, protocol: 'ws' | 'wss' } {
  if (!config.docs.publicUrl) return { host: `localhost:${config.server.port}`, protocol: 'ws' }
  const url = new URL(config.docs.publicUrl)
  return { host: url.host, protocol: url.protocol === 'wss:' ? 'wss' : 'ws' }
}

export async function buildApp (config: GatewayConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const logController = options.requestLogLevel === 'debug' ? new DebugRequestLogs() : undefined
  const app: FastifyInstance = options.logger
    ? Fastify({ loggerInstance: options.logger, return503OnClosing: true, logController, childLoggerFactory: lazyRequestLogger, clientErrorHandler })
    : Fastify({ logger: loggerOptions(config.log.level), return503OnClosing: true, logController, childLoggerFactory: lazyRequestLogger, clientErrorHandler })
  enforceHandshakeDeadline(app.server, config.server.handshakeTimeoutMs)
  if (options.onRoute) app.addHook('onRoute', options.onRoute)
  // before the plugins add their routes: auth's hook, added after this one, still comes first on each route
  app.addHook('onRoute', checkHandshakes)

  await app.register(metrics)
  await app.register(health)
  // every live socket of every route: auth, policy, admin and the drain act through it, so it comes before them
  await app.register(sessions)
  // SIGTERM's drain: not ready, upgrades refused (before auth and rate limits look at them), sockets closed with 1001 over
  // server.drainMs, each after its publishes are answered (they give up after stream.publishTimeoutMs)
  await app.register(drain, { windowMs: config.server.drainMs, settleMs: config.stream.publishTimeoutMs })
  await app.register(kafka, {
    client: new KafkaClient({
      brokers: config.kafka.brokers,
      clientId: config.kafka.clientId,
      connectionTimeoutMs: config.kafka.connectionTimeoutMs,
      requestTimeoutMs: config.kafka.requestTimeoutMs,
      security: securityFromConfig(config.kafka, readFileSync),
      logger: app.log.child({ component: 'kafka' })
    })
  })
  if (config.redis) {
    await app.register(redis, { url: config.redis.url, timeoutMs: config.redis.timeoutMs })
  }
  // who the client is (401/403 before any upgrade), then what it may do
  await app.register(auth, {
    devToken: config.dev?.token,
    origins: config.auth.origins,
    jwt: config.auth.jwt,
    // API keys live in Redis: without it they are refused with SLUICE_AUTH_API_KEYS_DISABLED
    apiKeys: config.redis ? { redis: app.redis, prefix: config.auth.apiKeys.prefix, recheckIntervalMs: config.auth.apiKeys.recheckIntervalMs } : undefined
  })
  await app.register(policy, { dir: config.policy.dir, watch: config.policy.watch, pollIntervalMs: config.policy.pollIntervalMs })
  const nodeId = config.stream.nodeId ?? hostname().replace(/[^a-zA-Z0-9_-]/g, '-').slice(0, 64)
  // plans' limits in Redis token buckets (in-process without Redis): before the upgrade, per publish, per delivered frame;
  // registered before the routes it limits (admin, WebSocket) so that it sees them
  // usage per application and product (needs Redis): sessions count into it, it reads the upgrades refused (policy,
  // limits) off their answers, the apps plugin serves it; before both
  if (config.redis && config.usage.enabled) {
    await app.register(usage, {
      redis: app.redis,
      kafka: app.kafka,
      nodeId,
      topic: config.usage.topic,
      periodSeconds: config.usage.periodSeconds,
      flushMs: config.usage.flushMs,
      graceMs: config.usage.graceMs,
      prefix: config.usage.prefix,
      now: options.now
    })
  }
  const limits = config.rateLimit
  if (limits.enabled) {
    await app.register(rateLimit, {
      policy: app.policy,
      redis: config.redis ? app.redis : undefined,
      failure: limits.failure,
      prefix: limits.prefix,
      nodeId,
      now: options.now,
      decisionTimeoutMs: limits.decisionTimeoutMs,
      probeIntervalMs: limits.probeIntervalMs,
      leaseMs: limits.leaseMs,
      connectionTtlMs: limits.connectionTtlMs,
      abuse: limits.abuse,
      unplanned: { ...UNPLANNED_LIMITS, ...limits.unplanned },
      http: limits.http.enabled ? { upgrade: limits.http.upgrade, admin: limits.http.admin, public: limits.http.public } : false
    })
  }
  // the admin API exists only with its own credential
  if (config.admin) await app.register(admin, { token: config.admin.token })
  // developers' applications, subscriptions and keys (/v1/developer), their approval (/admin): keys are auth's, under its prefix
  await app.register(apps, { adminToken: config.admin?.token, prefix: `${config.auth.apiKeys.prefix}apps:` })
  // public and read-only: the product catalogue and the AsyncAPI generated from the policy in force
  // and the OpenAPI document of the REST routes with its UI (/openapi.json, /docs)
  await app.register(docs, {
    policy: app.policy,
    server: streamServer(config),
    openapi: await openapiDocument(app, options.openapiDir ?? OPENAPI_DIR, config.admin !== undefined)
  })
  // the developer portal: static files of its package; its console speaks /v1/stream from the gateway's own origin;
  // developers sign in with portal.oidc's provider and reach /v1/developer with its session cookie
  await app.register(portal, { oidc: config.portal.oidc })

  // the fan-out hub, then the WebSocket routes it serves
  const streamConfig = config.stream
  await app.register(hub, {
    nodeId,
    graceMs: streamConfig.consumerGraceMs,
    topicRefreshMs: streamConfig.topicRefreshMs,
    window: { maxBytes: streamConfig.resumeWindowBytes, maxAgeMs: streamConfig.resumeWindowMs, nodeMaxBytes: streamConfig.resumeWindowNodeBytes }
  })
  // a product's `resume` sizes its topics' windows over those defaults; a policy reload resizes running ones
  app.hub.sizeWindowsBy(app.policy)
  await app.register(websocket, {
    options: {
      maxPayload: streamConfig.maxFrameBytes,
      // docs/design.md: no compression on the fan-out path (frames are shared bytes; deflate is per socket and a known DoS vector)
      perMessageDeflate: false,
      handleProtocols: (protocols, request) => selectMqttProtocol(protocols, request) ?? selectProtocol(protocols, request)
    },
    // going away: every session hears 1001 (reconnect with your cursor) before the server closes
    preClose (done) {
      app.sessions.closeWhere(() => true, CLOSE.GOING_AWAY, 'server going away')
      app.websocketServer.close()
      done()
    }
  })
  const socketLimits = {
    maxQueueBytes: streamConfig.maxQueueBytes,
    idleTimeoutMs: streamConfig.idleTimeoutMs,
    invalidFrameBurst: streamConfig.invalidFrameBurst,
    maxInflightPublishes: streamConfig.maxInflightPublishes,
    publishTimeoutMs: streamConfig.publishTimeoutMs
  }
  await app.register(stream, {
    access: app.policy,
    renew: (current, token) => app.credentials.renew(current, token),
    guard: limits.enabled ? app.streamGuard : undefined,
    keepaliveMs: streamConfig.keepaliveMs,
    limits: socketLimits
  })
  // /v2/broker/ for kafka-websocket clients: the same credentials, ACL, rate limits and socket limits as /v1/stream
  await app.register(compat, {
    access: app.policy,
    guard: limits.enabled ? app.streamGuard : undefined,
    keepaliveMs: streamConfig.keepaliveMs,
    limits: socketLimits
  })
  // MQTT over WebSocket at /mqtt (and plain TCP on mqtt.tcpPort): credentials in CONNECT, the policy's mqtt: mappings, the same ACL, hub and socket limits
  await app.register(mqtt, {
    access: app.policy,
    mappings: app.policy,
    verify: secret => app.credentials.verify(secret),
    guard: limits.enabled ? app.streamGuard : undefined,
    keepaliveMs: streamConfig.keepaliveMs,
    limits: socketLimits,
    maxPacketBytes: streamConfig.maxFrameBytes,
    tcpPort: config.mqtt.tcpPort,
    tcpHost: config.server.host,
    retainedTopic: config.mqtt.retainedTopic,
    retainedMaxBytes: config.mqtt.retainedMaxBytes,
    topicAliasMaximum: config.mqtt.topicAliasMaximum,
    sessionsTopic: config.mqtt.sessionsTopic,
    // the plan's connections and connects per minute, as the other routes take before their 101
    connectionLimit: limits.enabled ? identity => app.rateLimiter.acquire(identity.subject, app.streamGuard.planFor(identity)) : undefined
  })
  return app
}
