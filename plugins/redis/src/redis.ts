// Fastify-free: how Sluice connects to Redis. Every setting here serves one
// rule of docs/design.md: when Redis is unreachable, nothing hangs.
import { Redis } from 'ioredis'
import { gatewayDefaults } from '@sluice/config/gateway'

export interface RedisOptions {
  url: string
  /** connect and command deadline; 500 ms is the budget docs/design.md gives for falling back */
  timeoutMs?: number
  onError? (err: Error): void
}

export function createRedis (options: RedisOptions): Redis {
  const timeoutMs = options.timeoutMs ?? gatewayDefaults.redis.timeoutMs
  const redis = new Redis(options.url, {
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    // no offline queue: a command while disconnected fails at once instead of waiting
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // reconnect forever, backing off to 1 s, so recovery needs no restart
    retryStrategy: attempt => Math.min(50 * 2 ** attempt, 1000),
    lazyConnect: false
  })
  // without a listener ioredis prints every failed reconnect to stderr
  redis.on('error', err => options.onError?.(err))
  return redis
}

export async function pingRedis (redis: Redis): Promise<void> {
  const answer = await redis.ping()
  if (answer !== 'PONG') throw new Error(`unexpected PING answer: ${answer}`)
}
