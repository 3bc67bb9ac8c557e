import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { createRedis, pingRedis } from './redis.ts'

export { createRedis } from './redis.ts'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
  }
}

export interface RedisPluginOptions {
  url: string
  timeoutMs?: number
}

// A dead Redis reconnects every second; one log line per 10 s says so without flooding.
const ERROR_LOG_INTERVAL_MS = 10_000

async function redisPlugin (fastify: FastifyInstance, opts: RedisPluginOptions): Promise<void> {
  let lastLogged = 0
  const redis = createRedis({
    url: opts.url,
    timeoutMs: opts.timeoutMs,
    onError (err) {
      const now = Date.now()
      if (now - lastLogged < ERROR_LOG_INTERVAL_MS) return
      lastLogged = now
      fastify.log.warn({ err }, 'redis connection error')
    }
  })
  fastify.decorate('redis', redis)
  fastify.readiness.add('redis', () => pingRedis(redis))
  fastify.addHook('onClose', async () => {
    redis.disconnect()
  })
}

export default fp(redisPlugin, { fastify: '5.x', name: 'sluice-redis', dependencies: ['sluice-health'] })
