// The gateway's configuration: a JSON Schema (defaults live here, nowhere else),
// the environment variables that override the file, and the loader.
import { loadConfig, type EnvBinding } from '@sluice/config'

export interface GatewayConfig {
  server: { host: string, port: number, shutdownTimeoutMs: number }
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' }
  kafka: { brokers: string[], clientId: string, connectionTimeoutMs: number, requestTimeoutMs: number }
  redis?: { url: string, timeoutMs: number }
  dev?: { token: string }
}

export const gatewayConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', minLength: 1, default: '0.0.0.0' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        // long enough to close thousands of sockets and flush produces; Kubernetes' default grace is 30 s
        shutdownTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 10_000 }
      }
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' }
      }
    },
    kafka: {
      type: 'object',
      additionalProperties: false,
      default: {},
      required: ['brokers'],
      properties: {
        brokers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$' } },
        clientId: { type: 'string', minLength: 1, default: 'sluice-gateway' },
        connectionTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 3000 },
        requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 300_000, default: 10_000 }
      }
    },
    redis: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^rediss?://' },
        timeoutMs: { type: 'integer', minimum: 50, maximum: 10_000, default: 500 }
      }
    },
    dev: {
      type: 'object',
      additionalProperties: false,
      required: ['token'],
      properties: {
        // 32 characters at least: a dev credential is still a credential
        token: { type: 'string', minLength: 32 }
      }
    }
  }
} as const

export const gatewayEnvBindings: Record<string, EnvBinding> = {
  SLUICE_HOST: { path: '/server/host', type: 'string' },
  SLUICE_PORT: { path: '/server/port', type: 'integer' },
  SLUICE_SHUTDOWN_TIMEOUT_MS: { path: '/server/shutdownTimeoutMs', type: 'integer' },
  SLUICE_LOG_LEVEL: { path: '/log/level', type: 'string' },
  KAFKA_BROKERS: { path: '/kafka/brokers', type: 'list' },
  KAFKA_CLIENT_ID: { path: '/kafka/clientId', type: 'string' },
  REDIS_URL: { path: '/redis/url', type: 'string' },
  SLUICE_DEV_TOKEN: { path: '/dev/token', type: 'string' }
}

export interface LoadGatewayConfigOptions {
  file?: string
  env?: Record<string, string | undefined>
  base?: Record<string, unknown>
}

/** Throws ConfigError naming every problem with its path and where it came from. */
export function loadGatewayConfig (options: LoadGatewayConfigOptions = {}): GatewayConfig {
  return loadConfig<GatewayConfig>({
    schema: gatewayConfigSchema,
    file: options.file,
    base: options.base,
    env: options.env,
    envBindings: gatewayEnvBindings
  })
}
