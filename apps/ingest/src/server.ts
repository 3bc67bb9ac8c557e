// The process entry: load config, build the app, listen, and on SIGTERM/SIGINT
// stop the feeds and flush their buffers to Kafka within the configured deadline.
//
//   node apps/ingest/src/server.ts --config feeds.yaml      (SLUICE_CONFIG also names the file)
//
// Exit codes: 0 after a clean flush; 1 when records were left unflushed or the
// deadline passed; 78 (EX_CONFIG) when the configuration is invalid.
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { closeWithin, configFileFrom, runEntry } from '@sluice/config/entry'
import { buildApp } from './app.ts'
import { loadIngestConfig, type IngestConfig } from './config.ts'

export interface RunningIngest {
  app: FastifyInstance
  config: IngestConfig
  address: string
  /** closes within the deadline; resolves true only if every buffered record reached Kafka in time */
  shutdown (signal?: string): Promise<boolean>
}

export async function startIngest (config: IngestConfig): Promise<RunningIngest> {
  const app = await buildApp(config)
  const address = await app.listen({ host: config.server.host, port: config.server.port })
  const close = closeWithin(app, config.server.shutdownTimeoutMs)
  const shutdown = async (signal = 'shutdown'): Promise<boolean> => {
    const inTime = await close(signal)
    const unflushed = app.ingest.unflushed
    app.log.info({ unflushed }, unflushed === 0 ? 'closed: every buffered record reached Kafka' : 'closed with records not flushed')
    return inTime && unflushed === 0
  }
  return { app, config, address, shutdown }
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runEntry('sluice ingest', () => loadIngestConfig({ file: configFileFrom(process.argv, process.env), env: process.env }), startIngest)
}
