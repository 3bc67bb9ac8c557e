// Test support for the rate-limit suites (not a test file): real gateways
// built by buildApp on a policy with one plan whose limits the suite chooses,
// JWTs for any subject, and a WebSocket client that records frames, the
// close, or the HTTP refusal (status, headers, body).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { PlanLimits } from '@sluice/policy'
import { buildApp } from '../../../apps/gateway/src/app.ts'
import { loadGatewayConfig } from '../../../apps/gateway/src/config.ts'
import { nowSeconds, signJwt } from '../../../test/jwks-server.ts'
import { eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'
import { Client } from '../../../test/harness/client.ts'

export { Client, refusal, type Frame, type Refusal } from '../../../test/harness/client.ts'

export const JWT_SECRET = 'rate-limit-suites-hs256-secret-0123456789'

/** Generous everywhere: a suite lowers the limit it is about. */
export const GENEROUS: PlanLimits = {
  connections: 1000,
  connectsPerMinute: 100_000,
  deliveredPerSecond: 100_000,
  publishedPerSecond: 100_000,
  bytesPerSecond: 100_000_000,
  dailyQuota: 100_000_000
}

export function bearer (sub: string): Record<string, string> {
  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'rl', aud: 'sluice', sub, exp: nowSeconds() + 600 }, JWT_SECRET)
  return { authorization: `Bearer ${token}` }
}

/** A policy directory: plan `test` with these limits, every JWT subject on it for `rl.*` topics. */
export function policyDir (limits: Partial<PlanLimits>, slowClient: 'lagging' | 'evict' = 'lagging'): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-rl-policy-'))
  writeFileSync(join(dir, 'policy.yaml'), JSON.stringify({
    version: 1,
    plans: { test: { limits: { ...GENEROUS, ...limits } } },
    products: { market: { plans: ['test'], topics: [{ pattern: 'rl.*', encoding: 'json', slowClient }] } },
    rules: [{ name: 'everyone', product: 'market', plan: 'test', match: { kinds: ['jwt'] }, subscribe: ['rl.*'], publish: ['rl.*'] }]
  }))
  return dir
}

export interface GatewayOptions {
  policyDir: string
  /** null: no Redis (the in-process store) */
  redisUrl: string | null
  /** Redis key prefix of the rate limits: suites sharing the run's Redis never meet */
  prefix: string
  rateLimit?: Record<string, unknown>
  /** this node's clock */
  now?: () => number
  admin?: boolean
}

export const ADMIN_TOKEN = 'rate-limit-suites-admin-token-0123456789'

export interface Gateway {
  app: FastifyInstance
  url: string
  client (sub: string, query?: string): Client
  metric (name: string, labels?: Record<string, string>): Promise<number | undefined>
}

export async function gateway (t: Test, options: GatewayOptions): Promise<Gateway> {
  const config = loadGatewayConfig({
    base: {
      kafka: { brokers: kafkaBrokers() },
      log: { level: 'silent' },
      ...(options.redisUrl ? { redis: { url: options.redisUrl } } : {}),
      policy: { dir: options.policyDir, watch: false },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'rl', algorithms: ['HS256'], secret: JWT_SECRET }] } },
      ...(options.admin ? { admin: { token: ADMIN_TOKEN } } : {}),
      // short keepalive, so that dead peers never linger between assertions
      stream: { keepaliveMs: 5000 },
      rateLimit: { prefix: options.prefix, ...options.rateLimit }
    }
  })
  const app = await buildApp(config, { now: options.now })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  if (options.redisUrl) await eventually(() => app.redis.status === 'ready', 5000, 'Redis connected')
  const ws = url.replace('http', 'ws')
  return {
    app,
    url,
    client: (sub, query = '') => {
      const c = new Client(`${ws}/v1/stream${query}`, { headers: bearer(sub) })
      t.teardown(() => c.terminate())
      return c
    },
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

export function prefix (): string {
  return unique('rl-suite') + ':'
}
