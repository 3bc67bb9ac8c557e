// The one gateway builder of the suites (not a test file): the shipped app,
// apps/gateway's buildApp on loadGatewayConfig, with Kafka from the
// environment, silent logs and a policy directory, on a real port. A suite
// gives the config it is about; the presets (harness/live-route.ts,
// harness/rate-limit.ts, harness/compat.ts) are options over this function.
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { pino } from 'pino'
import { buildApp, type BuildOptions } from '@sluice/gateway'
import { loadGatewayConfig } from '@sluice/gateway/config'
import { loggerOptions } from '@sluice/gateway/logger'
import { eventually, kafkaBrokers } from '../helpers.ts'
import { policyDir as freshPolicyDir } from './policy.ts'

export interface GatewayOptions {
  /** closes the app when the test ends; without it the suite closes it */
  t?: Test
  /** the policy directory; a fresh one with TEST_POLICY when not given */
  policyDir?: string
  /** merged (deeply) over kafka from the environment, silent logs and policy.dir */
  config?: Record<string, unknown>
  /** keep the log lines (JSON) in `logs`, every level */
  captureLogs?: boolean
  /** this node's clock */
  now?: () => number
  /** the rest of buildApp's options (onRoute, openapiDir, ...) */
  build?: Omit<BuildOptions, 'logger' | 'now'>
  /** the port to listen on (a browser suite names its origin in the config first); any free one when not given */
  port?: number
  /** routes of the suite's own, added before the app listens */
  routes?: (app: FastifyInstance) => void | Promise<void>
  /** wait until Redis (when configured) is connected before returning: true unless the suite is about a Redis that is down */
  redisReady?: boolean
}

export interface Gateway {
  app: FastifyInstance
  /** http://127.0.0.1:port */
  url: string
  /** ws://127.0.0.1:port */
  wsUrl: string
  policyDir: string
  /** log lines (JSON) when `captureLogs` was asked */
  logs: string[]
  /** the value of a Prometheus series on /metrics, undefined when it is absent */
  metric (name: string, labels?: Record<string, string>): Promise<number | undefined>
}

export async function startGateway (options: GatewayOptions = {}): Promise<Gateway> {
  const dir = options.policyDir ?? freshPolicyDir()
  const logs: string[] = []
  const config = loadGatewayConfig({
    base: deepMerge({ kafka: { brokers: kafkaBrokers() }, log: { level: 'silent' }, policy: { dir } }, options.config ?? {})
  })
  const logger = options.captureLogs
    ? pino(loggerOptions('trace'), new Writable({ write (chunk, _enc, done) { logs.push(...String(chunk).split('\n').filter(Boolean)); done() } }))
    : undefined
  const app = await buildApp(config, { ...options.build, logger, now: options.now })
  options.t?.teardown(() => app.close())
  await options.routes?.(app)
  const url = await app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  // Redis commands fail fast while it connects (no offline queue); the suites wait for it
  if (app.hasDecorator('redis') && options.redisReady !== false) await eventually(() => app.redis.status === 'ready', 5000, 'Redis connected')
  return {
    app,
    url,
    wsUrl: url.replace('http', 'ws'),
    policyDir: dir,
    logs,
    metric: async (name, labels = {}) => {
      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue
        const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line)
        if (!m || m[1] !== name) continue
        const got = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map(kv => {
          const [k, v] = kv.split('=')
          return [k, v!.replace(/^"|"$/g, '')]
        }))
        if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4])
      }
      return undefined
    }
  }
}

export function deepMerge (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key]
    const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
    out[key] = plain(prior) && plain(value) ? deepMerge(prior, value) : value
  }
  return out
}
