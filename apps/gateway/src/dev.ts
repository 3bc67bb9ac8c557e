// Dev mode, the README's first command (`npm run dev`): a local Kafka broker,
// the demo feed, and the gateway on :8080, with a dev credential and a
// copy-paste connect command printed. Ctrl-C stops everything it started.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { KafkaBroker, freePort } from '../../../deploy/local/stack.ts'
import { KafkaClient } from '@sluice/kafka/core'
import { ConfigError } from '@sluice/config'
import { loadGatewayConfig } from './config.ts'
import { startGateway } from './server.ts'
import { DEMO_TOPIC, DemoTicker } from './demo-feed.ts'

const KAFKA_PORT = 9092
// the topic the dev credential may publish to under policies/example.yaml (orders.{sub}, sub = dev)
const DEV_ORDERS_TOPIC = 'orders.dev'
// the repository's commented example policy: demo.ticks for every subject, dev included
const POLICY_DIR = fileURLToPath(new URL('../../../policies/', import.meta.url))

async function portFree (port: number): Promise<boolean> {
  const { createServer } = await import('node:net')
  return new Promise(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

async function main (): Promise<void> {
  const started = Date.now()
  const broker = new KafkaBroker({ port: (await portFree(KAFKA_PORT)) ? KAFKA_PORT : await freePort() })
  const stops: Array<() => Promise<unknown>> = [() => broker.destroy()]
  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    process.stderr.write('\nsluice dev: stopping\n')
    for (const fn of stops.reverse()) await fn().catch(() => {})
    process.exit(code)
  }
  process.once('SIGINT', () => { stop(0) })
  process.once('SIGTERM', () => { stop(0) })

  try {
    process.stderr.write('sluice dev: starting a local Kafka broker\n')
    await broker.start()
    const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'sluice-dev-feed' })
    stops.push(() => kafka.close())
    // 3 partitions: enough to show per-partition offsets and resume cursors. orders.dev: the dev
    // credential's subject is `dev`, and the example policy lets a subject publish to orders.{sub}
    await kafka.ensureTopics([{ topic: DEMO_TOPIC, partitions: 3 }, { topic: DEV_ORDERS_TOPIC, partitions: 1 }])

    const token = process.env.SLUICE_DEV_TOKEN ?? randomBytes(24).toString('base64url')
    const config = loadGatewayConfig({
      env: process.env,
      base: {
        kafka: { brokers: broker.brokers },
        dev: { token },
        server: { host: '127.0.0.1' },
        policy: { dir: POLICY_DIR },
        // the printed browser snippet runs in whatever page the developer has open
        auth: { origins: ['*'] }
      }
    })
    const gateway = await startGateway(config)
    stops.push(() => gateway.shutdown('SIGINT'))

    const ticker = new DemoTicker(kafka)
    ticker.onError = err => gateway.app.log.warn({ err }, 'demo feed could not produce')
    ticker.start()
    stops.push(() => ticker.stop())

    const port = config.server.port
    const ws = `ws://localhost:${port}/v1/stream?topics=${DEMO_TOPIC}`
    process.stdout.write([
      '',
      `Sluice dev gateway ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      `  gateway     http://localhost:${port}   (health: /healthz, readiness: /readyz)`,
      `  portal      http://localhost:${port}/portal   (the products, their AsyncAPI, a live console: paste the credential)`,
      `  kafka       ${broker.brokers.join(',')}   (demo feed -> ${DEMO_TOPIC}, 4 batches/s; ${DEV_ORDERS_TOPIC} takes your publishes)`,
      `  policy      ${POLICY_DIR}   (edit it: the gateway reloads on save)`,
      `  credential  ${token}`,
      '',
      'Connect (a header, as servers and mobile apps do):',
      `  npx -y wscat -H "Authorization: Bearer ${token}" -c '${ws}'`,
      'or from a browser console (query parameter, as browsers must):',
      `  new WebSocket('${ws}&access_token=${token}').onmessage = e => console.log(e.data)`,
      '',
      'Ctrl-C stops the gateway, the feed and Kafka.',
      ''
    ].join('\n'))
  } catch (err) {
    process.stderr.write(`sluice dev: ${err instanceof ConfigError ? err.message : (err as Error).stack}\n`)
    await stop(1)
  }
}

main()
