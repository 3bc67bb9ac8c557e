// The /v2/broker/ suites run the real gateway (buildApp: auth, policy, hub,
// compat) with the dev token and a policy directory of their own, and drive
// it with a client written only from the kafka-websocket protocol as the
// issue states it: text frames {"topic","key"?,"message"}, binary frames
// [1 byte: topic length][topic UTF-8][payload], credentials in the query.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import type { Test } from 'tap'
import { buildApp } from '../apps/gateway/src/app.ts'
import { loadGatewayConfig } from '../apps/gateway/src/config.ts'
import { kafkaBrokers, eventually } from './helpers.ts'
import { KafkaClient } from '@sluice/kafka'

export const DEV_TOKEN = 'compat-suite-dev-token-0123456789abcdef'
/** the shipped transforms, by absolute path (policies name them relative to their own directory) */
export const SHIPPED_TRANSFORMS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'policies', 'transforms')

// generous limits: most suites are about the protocol, not about plans
const LIMITS = { connections: 1000, connectsPerMinute: 10000, deliveredPerSecond: 1000000, publishedPerSecond: 100000, bytesPerSecond: 1000000000, dailyQuota: 1000000000 }

/** A policy file: one plan (`limits` over generous defaults), and products (name → YAML of their topics and transforms) for the dev identity. */
export function policyYaml (products: Record<string, { topics: string, transforms?: string, subscribe: string[], publish: string[] }>, limits: Partial<typeof LIMITS> = {}): string {
  return `
version: 1
plans:
  test: { limits: ${JSON.stringify({ ...LIMITS, ...limits })} }
products:
${Object.entries(products).map(([name, p]) => `  ${name}:
    plans: [test]
    topics: ${p.topics}
${p.transforms ? `    transforms: ${p.transforms}\n` : ''}`).join('')}
rules:
${Object.entries(products).map(([name, p]) => `  - name: ${name}-rule
    product: ${name}
    plan: test
    subscribe: ${JSON.stringify(p.subscribe)}
    publish: ${JSON.stringify(p.publish)}
`).join('')}
`
}

export interface Gateway {
  app: FastifyInstance
  /** ws://127.0.0.1:port */
  url: string
  kafka: KafkaClient
  policyDir: string
}

export interface GatewayOptions {
  policy: string
  /** extra files in the policy directory, e.g. transforms/x.ts */
  files?: Record<string, string>
  config?: Record<string, unknown>
}

export async function gateway (t: Test, options: GatewayOptions): Promise<Gateway> {
  const policyDir = await mkdtemp(join(tmpdir(), 'sluice-compat-'))
  t.teardown(() => rm(policyDir, { recursive: true, force: true }))
  await mkdir(join(policyDir, 'transforms'))
  // the modules are ES modules: say so, as an admin's policy directory should, rather than leave Node to detect it
  await writeFile(join(policyDir, 'package.json'), '{"type":"module"}\n')
  for (const [name, text] of Object.entries(options.files ?? {})) await writeFile(join(policyDir, name), text)
  await writeFile(join(policyDir, 'policy.yaml'), options.policy)
  const app = await buildApp(loadGatewayConfig({
    base: {
      kafka: { brokers: kafkaBrokers() },
      dev: { token: DEV_TOKEN },
      log: { level: 'silent' },
      policy: { dir: policyDir, pollIntervalMs: 200 },
      stream: { consumerGraceMs: 200 },
      ...options.config
    }
  }))
  t.teardown(() => app.close())
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'compat-suite' })
  t.teardown(() => kafka.close())
  return { app, url: address.replace('http', 'ws'), kafka, policyDir }
}

/** Waits until `count` sockets of this node are subscribed to `topic` (the protocol has no subscribed frame). */
export async function subscribed (gw: Gateway, topic: string, count: number): Promise<void> {
  await eventually(() => gw.app.hub.subscribers(topic) >= count, 20_000, `${count} subscriber(s) to ${topic}`)
}

export interface Received {
  /** text: the parsed JSON; binary: the decoded frame */
  text?: Record<string, unknown>
  binary?: { topic: string, payload: Buffer }
}

/** A kafka-websocket client, as an old application would have written it. */
export class LegacyClient {
  readonly ws: WebSocket
  readonly received: Received[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<() => void> = []

  /** `query` is the whole query string after `?`; the credential goes in it, as old clients could only do */
  constructor (url: string, query: string, protocol?: 'kafka-text' | 'kafka-binary', credential = `access_token=${encodeURIComponent(DEV_TOKEN)}`) {
    this.ws = new WebSocket(`${url}/v2/broker/?${query}${query ? '&' : ''}${credential}`, protocol ? [protocol] : [], { perMessageDeflate: false })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
      this.ws.once('unexpected-response', (req, res) => {
        let body = ''
        res.on('data', chunk => { body += chunk })
        res.on('end', () => {
          // with a listener here, ws leaves the refused connection to us
          req.destroy()
          reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { statusCode: res.statusCode, body: JSON.parse(body || '{}') }))
        })
      })
    })
    this.closed = new Promise(resolve => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    this.ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) this.received.push({ binary: { topic: data.subarray(1, 1 + data[0]!).toString('utf8'), payload: data.subarray(1 + data[0]!) } })
      else this.received.push({ text: JSON.parse(data.toString('utf8')) as Record<string, unknown> })
      this.#wake()
    })
    this.ws.on('close', () => this.#wake())
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  /** kafka-text: {"topic":"t","message":"..."} or with a key */
  sendText (topic: string, message: string, key?: string): void {
    this.ws.send(JSON.stringify(key === undefined ? { topic, message } : { topic, key, message }))
  }

  /** kafka-binary: [topic length][topic][payload] */
  sendBinary (topic: string, payload: Buffer): void {
    const name = Buffer.from(topic, 'utf8')
    this.ws.send(Buffer.concat([Buffer.from([name.length]), name, payload]))
  }

  sendRaw (data: string | Buffer): void {
    this.ws.send(data)
  }

  /** the data frames: {"topic","message"} objects and binary frames, without error frames */
  messages (): Received[] {
    return this.received.filter(r => r.binary !== undefined || (r.text !== undefined && !('error' in r.text)))
  }

  errors (): Array<{ code: string, message: string, [field: string]: unknown }> {
    return this.received.flatMap(r => r.text && 'error' in r.text ? [r.text.error as { code: string, message: string }] : [])
  }

  async waitFor<T> (pick: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = pick()
      if (found !== undefined) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${what}; got ${this.#last()}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`not within ${timeoutMs} ms: ${what}; got ${this.#last()}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 1000))
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  #last (): string {
    return `${this.received.length} frames, the last: ` + this.received.slice(-3).map(r => r.text ? JSON.stringify(r.text).slice(0, 200) : `binary ${r.binary!.topic} ${r.binary!.payload.length} bytes`).join(' | ')
  }

  /** the next error frame after the `after`-th error */
  async nextError (after: number, timeoutMs = 10_000): Promise<{ code: string, message: string, [field: string]: unknown }> {
    return this.waitFor(() => this.errors()[after], timeoutMs, `error #${after + 1}`)
  }

  async waitMessages (count: number, timeoutMs = 30_000): Promise<Received[]> {
    return this.waitFor(() => this.messages().length >= count ? this.messages() : undefined, timeoutMs, `${count} messages`)
  }

  close (): void {
    this.ws.close()
  }
}
