// Shared by the apps suites (test/apps-*.test.ts): a policy with an automatic
// and a manual plan, a gateway on the run's Kafka and Redis (buildApp with
// /v1/stream, admin and apps), developers' tokens from a trusted HS256 issuer,
// and small clients of the developer and admin APIs. Not a test file itself.
import type { Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway, type TestGateway } from '../harness/live-route.ts'
import { policyDir } from '../harness/policy.ts'
import type { Client } from '../harness/client.ts'
import { redisUrl, unique } from '../helpers.ts'

export const ADMIN_TOKEN = 'admin-token-for-the-apps-suites-0123456789'
export const SECRET = 'apps-suites-hs256-secret-0123456789abcdef'
export const ISSUER = 'https://id.example.com'

// free is approved at once, pro by an admin; pro's deliveries are 20 times free's
export const APPS_POLICY = `
version: 1
plans:
  free:
    approval: auto
    limits: { connections: 10, connectsPerMinute: 120, deliveredPerSecond: 50, publishedPerSecond: 5, bytesPerSecond: 100000, dailyQuota: 1000000 }
  pro:
    approval: manual
    limits: { connections: 20, connectsPerMinute: 600, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 }
products:
  market:
    plans: [free, pro]
    topics:
      - pattern: appsdemo.*
        encoding: json
rules:
  - name: market-feed
    product: market
    plan: free
    subscribe: ['appsdemo.*']
`

/** A developer's token: a JWT of the trusted issuer. */
export function developerToken (sub: string, claims: Record<string, unknown> = {}): string {
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: ISSUER, aud: 'sluice', sub, exp: nowSeconds() + 600, ...claims }, SECRET)
}

/** A gateway node; nodes given the same prefix share their keys and applications in Redis. */
export async function appsGateway (t: Test, prefix = unique('sluice-test') + ':', recheckIntervalMs?: number): Promise<TestGateway & { prefix: string }> {
  const gw = await liveGateway({
    policyDir: policyDir(APPS_POLICY),
    config: {
      redis: { url: redisUrl() },
      admin: { token: ADMIN_TOKEN },
      // buckets of their own: the per-address upgrade limit is otherwise shared with every suite running on 127.0.0.1
      rateLimit: { prefix: `${prefix}rl:` },
      auth: {
        apiKeys: { prefix, ...(recheckIntervalMs === undefined ? {} : { recheckIntervalMs }) },
        jwt: { audience: ['sluice'], issuers: [{ issuer: ISSUER, algorithms: ['HS256'], secret: SECRET }] }
      }
    }
  })
  t.teardown(() => gw.app.close())
  return { ...gw, prefix }
}

type Method = 'GET' | 'POST' | 'DELETE'

/** The developer API as `sub` (or with the given headers). */
export function developer (gw: TestGateway, sub: string | Record<string, string>) {
  const headers = typeof sub === 'string' ? { authorization: `Bearer ${developerToken(sub)}` } : sub
  return async (method: Method, path: string, payload?: unknown): Promise<LightMyRequestResponse> =>
    gw.app.inject({ method, url: `/v1/developer${path}`, headers, ...(payload === undefined ? {} : { payload: payload as object }) })
}

export function admin (gw: TestGateway) {
  return async (method: Method, path: string, payload?: unknown): Promise<LightMyRequestResponse> =>
    gw.app.inject({ method, url: `/admin${path}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, ...(payload === undefined ? {} : { payload: payload as object }) })
}

/** A Kafka topic of the policy's product, made for this suite. */
export async function marketTopic (gw: TestGateway): Promise<string> {
  const topic = `appsdemo.${unique('t').replace('.', '-')}`
  await gw.app.kafka.ensureTopics([{ topic, partitions: 1 }])
  return topic
}

/** A /v1/stream socket with an API key, subscribed (live) to `topic`. */
export async function streamWithKey (gw: TestGateway, key: string, topic: string): Promise<Client> {
  const client = gw.wsAt('/v1/stream', `?topics=${topic}`, { headers: { 'x-api-key': key } })
  await client.opened
  await client.next(f => f.op === 'subscribed', 20_000)
  return client
}
