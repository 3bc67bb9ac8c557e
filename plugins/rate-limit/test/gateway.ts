// Test support for the rate-limit suites (not a test file): real gateways
// built by buildApp on a policy with one plan whose limits the suite chooses,
// JWTs for any subject, and a WebSocket client that records frames, the
// close, or the HTTP refusal (status, headers, body).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import type { Test } from 'tap'
import type { PlanLimits } from '@sluice/policy'
import { buildApp } from '../../../apps/gateway/src/app.ts'
import { loadGatewayConfig } from '../../../apps/gateway/src/config.ts'
import { nowSeconds, signJwt } from '../../../test/jwks-server.ts'
import { eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

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
      const c = new Client(`${ws}/v1/stream${query}`, bearer(sub))
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

export interface Frame {
  op: string
  [field: string]: unknown
}

export interface Refusal {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: { error?: { code: string, message: string } }
}

/** A /v1/stream client that records frames, its close, or the HTTP answer that refused it. */
export class Client {
  readonly ws: WebSocket
  readonly frames: Frame[] = []
  /** resolves with 'open' or the refusal; never rejects */
  readonly outcome: Promise<'open' | Refusal>
  readonly closed: Promise<{ code: number, reason: string, at: number }>
  #waiters: Array<() => void> = []

  constructor (url: string, headers: Record<string, string>) {
    this.ws = new WebSocket(url, ['sluice.v1'], { headers, perMessageDeflate: false })
    this.outcome = new Promise(resolve => {
      this.ws.once('open', () => resolve('open'))
      this.ws.once('unexpected-response', (_request, response) => {
        let body = ''
        response.on('data', chunk => { body += chunk })
        response.on('end', () => {
          let parsed: unknown = body
          try { parsed = JSON.parse(body) } catch {}
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: parsed as Refusal['body'] })
        })
      })
      this.ws.once('error', err => resolve({ status: 0, headers: {}, body: { error: { code: 'SOCKET', message: err.message } } }))
    })
    this.closed = new Promise(resolve => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })))
    this.ws.on('message', data => {
      this.frames.push(JSON.parse(data.toString()) as Frame)
      this.#wake()
    })
    this.ws.on('close', () => this.#wake())
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  send (frame: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame))
  }

  messages (): Frame[] {
    return this.frames.filter(f => f.op === 'message')
  }

  /** The first frame from `after` on that matches; fails after `timeoutMs` (a bound on waiting). */
  async next (match: (frame: Frame) => boolean, timeoutMs = 10_000, after = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.frames.slice(after).find(match)
      if (found) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`closed before a matching frame; last: ${JSON.stringify(this.frames.slice(-3))}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; last: ${JSON.stringify(this.frames.slice(-3))}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  close (): void {
    this.ws.close()
  }

  terminate (): void {
    this.ws.terminate()
  }
}

export async function refusal (client: Client): Promise<Refusal> {
  const outcome = await client.outcome
  if (outcome === 'open') throw new Error('the upgrade was accepted')
  return outcome
}
