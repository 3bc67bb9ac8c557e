// The process entry: load config, build the app, listen, and on SIGTERM/SIGINT
// close within the configured deadline.
//
//   node apps/gateway/src/server.ts [--config gateway.yaml]    (SLUICE_CONFIG also names the file)
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { ConfigError } from '@sluice/config'
import { buildApp } from './app.ts'
import { loadGatewayConfig, type GatewayConfig } from './config.ts'

export interface RunningGateway {
  app: FastifyInstance
  config: GatewayConfig
  address: string
  /** closes the app within the configured deadline; resolves false if the deadline passed */
  shutdown (signal?: string): Promise<boolean>
}

export async function startGateway (config: GatewayConfig): Promise<RunningGateway> {
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
      return inTime
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
  let config: GatewayConfig
  try {
    config = loadGatewayConfig({ file: configFileFrom(process.argv, process.env), env: process.env })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice gateway: ${err.message}\n`)
      process.exit(78) // EX_CONFIG (sysexits.h)
    }
    throw err
  }
  const gateway = await startGateway(config)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      gateway.shutdown(signal).then(inTime => process.exit(inTime ? 0 : 1), () => process.exit(1))
    })
  }
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`sluice gateway: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
