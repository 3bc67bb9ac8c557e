// The composition root: every plugin is registered here, explicitly, in the
// order of the request path (DESIGN.md): health → kafka/redis → auth → policy →
// rate limit → hub → routes. Building the app is separate from starting it
// (server.ts), so tests build it with any config and drive it with inject().
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import health from '@sluice/health'
import metrics from '@sluice/metrics'
import kafka, { KafkaClient } from '@sluice/kafka'
import redis from '@sluice/redis'
import auth from '@sluice/auth'
import policy from '@sluice/policy'
import admin from '@sluice/admin'
import hub from '@sluice/hub'
import websocket from '@fastify/websocket'
import stream, { CLOSE, selectProtocol } from '@sluice/stream'
import { hostname } from 'node:os'
import type { GatewayConfig } from './config.ts'
import { loggerOptions } from './logger.ts'

export type { GatewayConfig } from './config.ts'

export interface BuildOptions {
  /** a pino instance to log to (tests capture output this way) */
  logger?: FastifyBaseLogger
}

export async function buildApp (config: GatewayConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app: FastifyInstance = options.logger
    ? Fastify({ loggerInstance: options.logger, return503OnClosing: true })
    : Fastify({ logger: loggerOptions(config.log.level), return503OnClosing: true })

  await app.register(metrics)
  await app.register(health)
  await app.register(kafka, {
    client: new KafkaClient({
      brokers: config.kafka.brokers,
      clientId: config.kafka.clientId,
      connectionTimeoutMs: config.kafka.connectionTimeoutMs,
      requestTimeoutMs: config.kafka.requestTimeoutMs,
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
  // the admin API exists only with its own credential
  if (config.admin) await app.register(admin, { token: config.admin.token })

  // the fan-out hub, then the WebSocket routes it serves
  const streamConfig = config.stream
  await app.register(hub, { nodeId: streamConfig.nodeId ?? hostname().replace(/[^a-zA-Z0-9_-]/g, '-').slice(0, 64), graceMs: streamConfig.consumerGraceMs })
  await app.register(websocket, {
    options: {
      maxPayload: streamConfig.maxFrameBytes,
      // DESIGN.md: no compression on the fan-out path (frames are shared bytes; deflate is per socket and a known DoS vector)
      perMessageDeflate: false,
      handleProtocols: selectProtocol
    },
    // going away: every session hears 1001 (reconnect with your cursor) before the server closes
    preClose (done) {
      app.sessions.closeWhere(() => true, CLOSE.GOING_AWAY, 'server going away')
      app.websocketServer.close()
      done()
    }
  })
  await app.register(stream, {
    access: app.policy,
    renew: (current, token) => app.credentials.renew(current, token),
    keepaliveMs: streamConfig.keepaliveMs,
    limits: {
      maxQueueBytes: streamConfig.maxQueueBytes,
      idleTimeoutMs: streamConfig.idleTimeoutMs,
      invalidFrameBurst: streamConfig.invalidFrameBurst,
      maxInflightPublishes: streamConfig.maxInflightPublishes,
      publishTimeoutMs: streamConfig.publishTimeoutMs
    }
  })
  return app
}
