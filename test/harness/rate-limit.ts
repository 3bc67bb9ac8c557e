// The rate-limit suites' preset (not a test file): gateways from
// harness/gateway.ts with HS256 JWTs for any subject, the policy of
// limitsPolicy() and a rate-limit prefix of their own, and /v1/stream
// clients that carry a subject's token.
import type { Test } from 'tap'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { unique } from '../helpers.ts'
import { Client } from './client.ts'
import { deepMerge, startGateway, type Gateway as BaseGateway } from './gateway.ts'

export const JWT_SECRET = 'rate-limit-suites-hs256-secret-0123456789'
export const ADMIN_TOKEN = 'rate-limit-suites-admin-token-0123456789'

export function bearer (sub: string): Record<string, string> {
  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'rl', aud: 'sluice', sub, exp: nowSeconds() + 600 }, JWT_SECRET)
  return { authorization: `Bearer ${token}` }
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
  /** merged (deeply) over the preset's config */
  config?: Record<string, unknown>
}

export interface Gateway extends BaseGateway {
  /** a /v1/stream client with `sub`'s token, terminated when the test ends */
  client (sub: string, query?: string): Client
}

export async function gateway (t: Test, options: GatewayOptions): Promise<Gateway> {
  const gw = await startGateway({
    t,
    policyDir: options.policyDir,
    now: options.now,
    config: deepMerge({
      ...(options.redisUrl ? { redis: { url: options.redisUrl } } : {}),
      policy: { watch: false },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'rl', algorithms: ['HS256'], secret: JWT_SECRET }] } },
      ...(options.admin ? { admin: { token: ADMIN_TOKEN } } : {}),
      // short keepalive, so that dead peers never linger between assertions
      stream: { keepaliveMs: 5000 },
      rateLimit: { prefix: options.prefix, ...options.rateLimit }
    }, options.config ?? {})
  })
  return {
    ...gw,
    client: (sub, query = '') => {
      const c = new Client(`${gw.wsUrl}/v1/stream${query}`, { headers: bearer(sub) })
      t.teardown(() => c.terminate())
      return c
    }
  }
}

export function prefix (): string {
  return unique('rl-suite') + ':'
}
