// The gateway's configuration as a process reads it: the environment variables
// that override the file, where `${env:NAME}` is resolved, the checks a schema
// cannot express, and the loader. The schema itself (every key, its default and
// the reason for it) and the GatewayConfig type derived from it are
// packages/config/src/gateway.ts: defaults are written there once, and plugins
// used without a loaded config fall back on its `gatewayDefaults`.
import { createPublicKey } from 'node:crypto'
import { ConfigError, loadConfig, type ConfigProblem, type EnvBinding, type ReferenceField } from '@sluice/config'
import { gatewayConfigSchema, type GatewayConfig } from '@sluice/config/gateway'
import { kafkaEnvBindings } from '@sluice/config/schemas'
import { TrustedIssuers } from '@sluice/auth'

export { gatewayConfigSchema, gatewayDefaults, type GatewayConfig } from '@sluice/config/gateway'

export const gatewayEnvBindings: Record<string, EnvBinding> = {
  SLUICE_HOST: { path: '/server/host', type: 'string' },
  SLUICE_PORT: { path: '/server/port', type: 'integer' },
  SLUICE_SHUTDOWN_TIMEOUT_MS: { path: '/server/shutdownTimeoutMs', type: 'integer' },
  SLUICE_DRAIN_MS: { path: '/server/drainMs', type: 'integer' },
  SLUICE_LISTEN_BACKLOG: { path: '/server/listenBacklog', type: 'integer' },
  SLUICE_LISTEN_SOCKETS: { path: '/server/listenSockets', type: 'integer' },
  SLUICE_LOG_LEVEL: { path: '/log/level', type: 'string' },
  ...kafkaEnvBindings,
  REDIS_URL: { path: '/redis/url', type: 'string' },
  SLUICE_DEV_TOKEN: { path: '/dev/token', type: 'string' },
  SLUICE_AUTH_ORIGINS: { path: '/auth/origins', type: 'list' },
  SLUICE_JWT_AUDIENCE: { path: '/auth/jwt/audience', type: 'list' },
  SLUICE_JWT_CLOCK_SKEW_SECONDS: { path: '/auth/jwt/clockSkewSeconds', type: 'integer' },
  SLUICE_POLICY_DIR: { path: '/policy/dir', type: 'string' },
  SLUICE_POLICY_WATCH: { path: '/policy/watch', type: 'boolean' },
  SLUICE_ADMIN_TOKEN: { path: '/admin/token', type: 'string' },
  SLUICE_PUBLIC_URL: { path: '/docs/publicUrl', type: 'string' },
  SLUICE_RATE_LIMIT_FAILURE: { path: '/rateLimit/failure', type: 'string' },
  SLUICE_MQTT_TCP_PORT: { path: '/mqtt/tcpPort', type: 'integer' }
}

// Where the file may say `${env:NAME}` (Kafka Connect's syntax, as the ingest app's feeds): each secret, and
// who is trusted to sign tokens. A list may be one whole reference: issuers as a JSON array, audience as
// JSON or comma-separated. Resolved once, never in an env-bound value (SLUICE_ADMIN_TOKEN='${env:X}' is refused).
export const gatewayReferenceFields: ReferenceField[] = [
  { path: '/redis/url', type: 'string' },
  { path: '/kafka/sasl/username', type: 'string' },
  { path: '/kafka/sasl/password', type: 'string' },
  { path: '/dev/token', type: 'string' },
  { path: '/admin/token', type: 'string' },
  { path: '/auth/jwt/audience', type: 'list' },
  // every string inside: issuer, jwksUri, publicKey, secret
  { path: '/auth/jwt/issuers', type: 'list' }
]

// A secret shaped like an unexpanded reference would be used as written: refused, wherever it came from.
// The Redis URL carries its password (redis://:password@host:6379).
export const gatewaySecretFields = ['/redis/url', '/kafka/sasl/password', '/dev/token', '/admin/token', '/auth/jwt/issuers/*/secret']

// after the drain, a close needs time of its own: the last sockets' close frames, Kafka's and Redis's goodbyes
const CLOSE_AFTER_DRAIN_MS = 1000

/** The shutdown deadline covers the drain and the close after it. */
function shutdownProblems (config: GatewayConfig): ConfigProblem[] {
  const { drainMs, shutdownTimeoutMs } = config.server
  if (shutdownTimeoutMs >= drainMs + CLOSE_AFTER_DRAIN_MS) return []
  return [{
    path: '/server/shutdownTimeoutMs',
    message: `must exceed /server/drainMs (${drainMs}) by ${CLOSE_AFTER_DRAIN_MS} at least: the deadline covers the drain and the close after it`
  }]
}

/** What the schema cannot say about JWT issuers: one key source each, keys that fit the algorithms. */
function authProblems (config: GatewayConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  const jwt = config.auth.jwt
  if (jwt.issuers.length > 0 && jwt.audience.length === 0) {
    problems.push({ path: '/auth/jwt/audience', message: 'is required when issuers are configured (tokens must name this gateway)' })
  }
  const seen = new Set<string>()
  jwt.issuers.forEach((issuer, i) => {
    const path = `/auth/jwt/issuers/${i}`
    if (seen.has(issuer.issuer)) problems.push({ path: `${path}/issuer`, message: `"${issuer.issuer}" is configured twice` })
    seen.add(issuer.issuer)
    const sources = (['jwksUri', 'publicKey', 'secret'] as const).filter(k => issuer[k] !== undefined)
    if (sources.length !== 1) {
      problems.push({ path, message: 'needs exactly one of jwksUri, publicKey or secret' })
      return
    }
    const hs = issuer.algorithms.filter(a => a.startsWith('HS'))
    if (issuer.secret !== undefined) {
      if (hs.length !== issuer.algorithms.length) problems.push({ path: `${path}/algorithms`, message: 'a secret verifies HS256, HS384 and HS512 only' })
      if (issuer.secret.includes('-----BEGIN')) problems.push({ path: `${path}/secret`, message: 'looks like a PEM key: a public key is never an HMAC secret' })
    } else if (hs.length > 0) {
      problems.push({ path: `${path}/algorithms`, message: `${hs.join(', ')} needs a secret; a public key or JWKS never verifies HS*` })
    }
    if (issuer.publicKey !== undefined) {
      try {
        createPublicKey(issuer.publicKey)
      } catch (err) {
        problems.push({ path: `${path}/publicKey`, message: `not a public key: ${(err as Error).message}` })
        return
      }
      try {
        // the auth plugin's own check: the key's type decides what it can verify
        new TrustedIssuers({ ...jwt, issuers: [issuer] }) // eslint-disable-line no-new
      } catch (err) {
        problems.push({ path: `${path}/algorithms`, message: (err as Error).message })
      }
    }
  })
  return problems
}

export interface LoadGatewayConfigOptions {
  file?: string
  env?: Record<string, string | undefined>
  base?: Record<string, unknown>
}

/** Throws ConfigError naming every problem with its path and where it came from. */
export function loadGatewayConfig (options: LoadGatewayConfigOptions = {}): GatewayConfig {
  const config = loadConfig<GatewayConfig>({
    schema: gatewayConfigSchema,
    file: options.file,
    base: options.base,
    env: options.env,
    envBindings: gatewayEnvBindings,
    references: gatewayReferenceFields,
    secrets: gatewaySecretFields
  })
  const problems = [...shutdownProblems(config), ...authProblems(config)]
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
