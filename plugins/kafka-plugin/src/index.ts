import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { KafkaClient } from '@sluice/kafka'

declare module 'fastify' {
  interface FastifyInstance {
    kafka: KafkaClient
  }
}

export interface KafkaPluginOptions {
  /** the app's client; the plugin closes it when the app closes */
  client: KafkaClient
  /** how long /readyz waits for a metadata answer */
  pingTimeoutMs?: number
}

async function kafka (fastify: FastifyInstance, opts: KafkaPluginOptions): Promise<void> {
  const client = opts.client
  fastify.decorate('kafka', client)
  fastify.readiness.add('kafka', () => client.ping(opts.pingTimeoutMs ?? 800))
  fastify.addHook('onClose', async () => {
    await client.close()
  })
}

export default fp(kafka, { fastify: '5.x', name: 'sluice-kafka', dependencies: ['sluice-health'] })
