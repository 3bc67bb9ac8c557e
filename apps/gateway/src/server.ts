// The process entry: load config, build the app, listen, and on SIGTERM/SIGINT
// close within the configured deadline.
//
//   node apps/gateway/src/server.ts [--config gateway.yaml]    (SLUICE_CONFIG also names the file)
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { closeWithin, configFileFrom, runEntry } from '@sluice/config/entry'
import { buildApp, type BuildOptions } from './app.ts'
import { loadGatewayConfig, type GatewayConfig } from './config.ts'
import { listenAll } from './listen.ts'

export interface RunningGateway {
  app: FastifyInstance
  config: GatewayConfig
  address: string
  /** drains, then closes the app, within the configured deadline; resolves false if the deadline passed */
  shutdown (signal?: string): Promise<boolean>
}

export async function startGateway (config: GatewayConfig, options: BuildOptions = {}): Promise<RunningGateway> {
  const app = await buildApp(config, options)
  const { host, port, listenBacklog: backlog, listenSockets: sockets } = config.server
  let address: string
  try {
    address = await listenAll(app, { host, port, backlog, sockets })
  } catch (err) {
    // a port in use (EADDRINUSE): what the app opened (Kafka, Redis, timers) closes, and the caller hears why
    await app.close().catch(() => {})
    throw err
  }
  const shutdown = closeWithin({
    log: app.log,
    // SIGTERM comes from an orchestrator: the sockets are spread over the drain window. SIGINT is someone at a
    // terminal (Ctrl-C): nobody balances their reconnects, so they are all closed at once
    close: async () => {
      await app.drain(lastSignal === 'SIGINT' ? 0 : config.server.drainMs)
      await app.close()
    }
  }, config.server.shutdownTimeoutMs)
  let lastSignal: string | undefined
  return {
    app,
    config,
    address,
    shutdown: signal => {
      lastSignal ??= signal
      return shutdown(signal)
    }
  }
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runEntry('sluice gateway', () => loadGatewayConfig({ file: configFileFrom(process.argv, process.env), env: process.env }), config => startGateway(config))
}
