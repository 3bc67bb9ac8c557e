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
import { ConfigError } from '@sluice/config'
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
  let closing: Promise<boolean> | undefined
  const shutdown = (signal = 'shutdown'): Promise<boolean> => {
    closing ??= (async () => {
      app.log.info({ signal, deadlineMs: config.server.shutdownTimeoutMs }, 'closing')
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<boolean>(resolve => {
        timer = setTimeout(() => resolve(false), config.server.shutdownTimeoutMs)
      })
      const closed = app.close().then(() => true, err => {
        app.log.error({ err }, 'error while closing')
        return true
      })
      const inTime = await Promise.race([closed, deadline])
      clearTimeout(timer)
      if (!inTime) app.log.error({ deadlineMs: config.server.shutdownTimeoutMs }, 'shutdown deadline passed')
      const unflushed = app.ingest.unflushed
      app.log.info({ unflushed }, unflushed === 0 ? 'closed: every buffered record reached Kafka' : 'closed with records not flushed')
      return inTime && unflushed === 0
    })()
    return closing
  }
  return { app, config, address, shutdown }
}

export function configFileFrom (argv: string[], env: Record<string, string | undefined>): string | undefined {
  const index = argv.indexOf('--config')
  return index >= 0 ? argv[index + 1] : env.SLUICE_CONFIG
}

async function main (): Promise<void> {
  let config: IngestConfig
  try {
    config = loadIngestConfig({ file: configFileFrom(process.argv, process.env), env: process.env })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice ingest: ${err.message}\n`)
      process.exit(78) // EX_CONFIG (sysexits.h)
    }
    throw err
  }
  const ingest = await startIngest(config)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      ingest.shutdown(signal).then(clean => process.exit(clean ? 0 : 1), () => process.exit(1))
    })
  }
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`sluice ingest: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
