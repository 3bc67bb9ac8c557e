// Dev mode, the README's first command (`npm run dev`, `sluice dev`): a local
// Kafka broker and Redis, the demo feed, and the gateway on :8080 with
// everything on as in production (API keys, shared limits, quotas, the admin
// API), a local OpenID Connect provider for the portal's sign-in (one demo
// developer), a dev credential, an API key and the admin token printed with a
// copy-paste connect command. Ctrl-C (or SIGTERM to any wrapper) stops
// everything it started.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { resolve as resolvePath } from 'node:path'
import { KafkaBroker, RedisServer, freePort } from '@sluice/stack'
import { KafkaClient } from '@sluice/kafka'
import { ConfigError } from '@sluice/config'
import { gatewayDefaults } from '@sluice/config/gateway'
import { loadGatewayConfig } from './config.ts'
import { startGateway, type RunningGateway } from './server.ts'
import { DEMO_TOPIC, DemoTicker } from './demo-feed.ts'
import { DevPortInUseError } from './errors.ts'
import { DEMO_DEVELOPER, DEV_CLIENT_ID, startDevIssuer } from '@sluice/portal/dev-issuer'

const KAFKA_PORT = 9092
const REDIS_PORT = 6379
// server.port's default: dev mode serves where a configured gateway would
const GATEWAY_PORT = gatewayDefaults.server.port
// the topic the dev credential may publish to under policies/example.yaml (orders.{sub}, sub = dev)
const DEV_ORDERS_TOPIC = 'orders.dev'
// the repository's commented example policy: demo.ticks for every subject, dev included
const POLICY_DIR = fileURLToPath(new URL('../../../policies/', import.meta.url))
// the API key printed at start: the example policy's tenant-orders rule (demo on pro) for subject dev
const DEV_KEY = { owner: 'dev', product: 'demo', plan: 'pro' }
// a dev key lives a day: long enough for a working session, short enough not to linger in a Redis kept for later
const DEV_KEY_TTL_MS = 24 * 3600 * 1000

export interface DevOptions {
  /** false: no Redis (in-process limits, no API keys, no admin key routes) */
  redis: boolean
  /** the gateway's port (8080) */
  port?: number
  out?: NodeJS.WritableStream
  err?: NodeJS.WritableStream
}

async function portFree (port: number): Promise<boolean> {
  const { createServer } = await import('node:net')
  return new Promise(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/**
 * A dev credential the banner prints: 24 random bytes in hex. In base64url one in 64 began with "-", and
 * `sluice keys issue --admin-token <it>` then failed (Node's parseArgs takes it for an option: one CI run
 * of test/gateway/dev-first-hour, 2026-12-06).
 */
export function devSecret (): string {
  return randomBytes(24).toString('hex')
}

/** The banner: one screen (under 24 lines of at most 100 columns), what a newcomer needs and nothing else. */
export function banner (info: { seconds: number, port: number, brokers: string[], redis?: string, token: string, apiKey?: string, adminToken?: string, signIn?: string }): string {
  const { port, token } = info
  const ws = `ws://localhost:${port}/v1/stream?topics=${DEMO_TOPIC}`
  return [
    '',
    `Sluice dev gateway ready in ${info.seconds.toFixed(1)} s`,
    `  gateway     http://localhost:${port}   (portal: /portal, health: /healthz, /readyz)`,
    `  kafka       ${info.brokers.join(',')}   (demo feed -> ${DEMO_TOPIC}; ${DEV_ORDERS_TOPIC} takes your publishes)`,
    `  redis       ${info.redis ?? 'off (--no-redis): in-process limits, no API keys'}`,
    `  policy      ${POLICY_DIR}   (the gateway reloads it on save)`,
    `  credential  ${token}`,
    ...(info.apiKey ? [`  api key     ${info.apiKey}   (${DEV_KEY.product} on ${DEV_KEY.plan}, subject ${DEV_KEY.owner})`] : []),
    ...(info.adminToken ? [`  admin       ${info.adminToken}   (Authorization: Bearer, on /admin)`] : []),
    ...(info.signIn ? [`  sign-in     ${info.signIn}`] : []),
    '',
    'Connect (a header, as servers and mobile apps do):',
    `  npx -y wscat -H "Authorization: Bearer ${token}" -c '${ws}'`,
    ...(info.apiKey ? [`  npx -y wscat -H "X-API-Key: ${info.apiKey}" -c '${ws}'`] : []),
    'or from a browser console (query parameter, as browsers must):',
    `  new WebSocket('${ws}&access_token=${token}').onmessage = e => console.log(e.data)`,
    '',
    'Ctrl-C stops the gateway, the feed, Kafka and Redis.',
    ''
  ].join('\n')
}

/** Starts the dev stack and the gateway; resolves once the banner is printed, with a stop function. */
export async function runDev (options: DevOptions): Promise<{ stop: () => Promise<void>, gateway: RunningGateway }> {
  const out = options.out ?? process.stdout
  const err = options.err ?? process.stderr
  const started = Date.now()
  const port = options.port ?? (process.env.SLUICE_PORT ? Number(process.env.SLUICE_PORT) : GATEWAY_PORT)
  if (!await portFree(port)) {
    throw new DevPortInUseError(port)
  }
  const broker = new KafkaBroker({ port: (await portFree(KAFKA_PORT)) ? KAFKA_PORT : await freePort() })
  const redis = options.redis ? new RedisServer({ port: (await portFree(REDIS_PORT)) ? REDIS_PORT : await freePort() }) : undefined
  const stops: Array<() => Promise<unknown>> = [() => broker.destroy()]
  if (redis) stops.push(() => redis.stop())
  let stopped: Promise<void> | undefined
  const stop = () => {
    stopped ??= (async () => {
      for (const fn of stops.reverse()) await fn().catch(() => {})
    })()
    return stopped
  }
  try {
    err.write(`sluice dev: starting a local Kafka broker${redis ? ' and Redis' : ''}\n`)
    await Promise.all([broker.start(), redis?.start()])
    const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'sluice-dev-feed' })
    stops.push(() => kafka.close())
    // 3 partitions: enough to show per-partition offsets and resume cursors. orders.dev: the dev
    // credential's subject is `dev`, and the example policy lets a subject publish to orders.{sub}
    await kafka.ensureTopics([{ topic: DEMO_TOPIC, partitions: 3 }, { topic: DEV_ORDERS_TOPIC, partitions: 1 }])

    // the portal's sign-in: a local OpenID Connect provider with one developer (applications need Redis)
    const redirectUrl = `http://localhost:${port}/portal/callback`
    const issuer = redis ? await startDevIssuer({ redirectUrl }) : undefined
    if (issuer) stops.push(() => issuer.close())

    const token = process.env.SLUICE_DEV_TOKEN ?? devSecret()
    const adminToken = process.env.SLUICE_ADMIN_TOKEN ?? devSecret()
    // the local stack is dev mode's own: a KAFKA_BROKERS or REDIS_URL left in the shell (or a test's) must
    // not send the gateway elsewhere while the demo feed and the topics are here
    const { KAFKA_BROKERS: _k, REDIS_URL: _r, SLUICE_PORT: _p, SLUICE_HOST: _h, ...env } = process.env
    const config = loadGatewayConfig({
      env,
      base: {
        kafka: { brokers: broker.brokers },
        dev: { token },
        server: { host: '127.0.0.1', port },
        policy: { dir: POLICY_DIR },
        admin: { token: adminToken },
        ...(redis ? { redis: { url: redis.url } } : {}),
        // a fresh cookie secret each run: a restart signs the demo developer out, nothing else
        ...(issuer ? { portal: { oidc: { issuer: issuer.issuer, clientId: DEV_CLIENT_ID, redirectUrl, cookieSecret: randomBytes(32).toString('base64url') } } } : {}),
        // the printed browser snippet runs in whatever page the developer has open
        auth: { origins: ['*'] }
      }
    })
    const gateway = await startGateway(config, { requestLogLevel: 'debug' })
    stops.push(() => gateway.shutdown('SIGINT'))

    let apiKey: string | undefined
    const store = gateway.app.credentials.apiKeys
    if (store) apiKey = (await store.issue({ ...DEV_KEY, expiresAt: Date.now() + DEV_KEY_TTL_MS })).key

    const ticker = new DemoTicker(kafka)
    ticker.onError = error => gateway.app.log.warn({ err: error }, 'demo feed could not produce')
    ticker.start()
    stops.push(() => ticker.stop())

    const signIn = issuer ? `http://localhost:${port}/portal   (Sign in: ${DEMO_DEVELOPER.email}, any password)` : undefined
    out.write(banner({ seconds: (Date.now() - started) / 1000, port, brokers: broker.brokers, redis: redis?.url, token, apiKey, adminToken, signIn }))
    return { stop, gateway }
  } catch (error) {
    await stop()
    throw error
  }
}

/** The process: runs dev mode until SIGINT or SIGTERM, then stops everything it started. */
export function devMain (options: DevOptions): void {
  const running = runDev(options)
  let stopping = false
  const onSignal = () => {
    if (stopping) return
    stopping = true
    process.stderr.write('\nsluice dev: stopping\n')
    // a signal during start-up waits for it: what started (a broker's JVM) must not outlive the process
    running.then(r => r.stop(), () => {}).finally(() => process.exit(0))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  running.catch(error => {
    // a bad config or a busy port is the user's to fix: the message, not a stack
    const known = error instanceof ConfigError || (error as { code?: string }).code === 'SLUICE_DEV_PORT_IN_USE'
    process.stderr.write(`sluice dev: ${known ? (error as Error).message : (error as Error).stack}\n`)
    process.exit(1)
  })
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  devMain({ redis: !process.argv.includes('--no-redis') })
}
