// The gateway's configuration: a JSON Schema (defaults live here, nowhere else),
// the environment variables that override the file, and the loader.
import { createPublicKey } from 'node:crypto'
import { ConfigError, loadConfig, type ConfigProblem, type EnvBinding, type ReferenceField } from '@sluice/config'
import { kafkaSchema, logSchema, serverSchema } from '@sluice/config/schemas'
import { TrustedIssuers } from '@sluice/auth'
import { DEFAULT_NODE_WINDOW_BYTES, DEFAULT_WINDOW_BOUNDS } from '@sluice/hub/window'

export interface GatewayConfig {
  server: { host: string, port: number, shutdownTimeoutMs: number, drainMs: number, handshakeTimeoutMs: number, listenBacklog: number }
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' }
  kafka: { brokers: string[], clientId: string, connectionTimeoutMs: number, requestTimeoutMs: number }
  redis?: { url: string, timeoutMs: number }
  dev?: { token: string }
  auth: {
    origins: string[]
    jwt: {
      audience: string[]
      clockSkewSeconds: number
      issuers: Array<{ issuer: string, algorithms: string[], jwksUri?: string, publicKey?: string, secret?: string }>
      jwks: { cooldownMs: number, maxAgeMs: number, timeoutMs: number }
    }
    apiKeys: { prefix: string, recheckIntervalMs: number }
  }
  policy: { dir: string, watch: boolean, pollIntervalMs: number }
  admin?: { token: string }
  docs: { publicUrl?: string }
  rateLimit: {
    enabled: boolean
    failure: 'fail-open' | 'fail-closed'
    prefix: string
    decisionTimeoutMs: number
    probeIntervalMs: number
    leaseMs: number
    connectionTtlMs: number
    abuse: { burst: number, leakPerSecond: number }
    unplanned: { connections: number, connectsPerMinute: number }
    http: {
      enabled: boolean
      upgrade: { max: number, timeWindowMs: number }
      admin: { max: number, timeWindowMs: number }
      public: { max: number, timeWindowMs: number }
    }
  }
  stream: {
    nodeId?: string
    maxFrameBytes: number
    maxQueueBytes: number
    keepaliveMs: number
    idleTimeoutMs: number
    invalidFrameBurst: number
    maxInflightPublishes: number
    publishTimeoutMs: number
    consumerGraceMs: number
    topicRefreshMs: number
    resumeWindowBytes: number
    resumeWindowMs: number
    resumeWindowNodeBytes: number
  }
  mqtt: {
    tcpPort: number
  }
}

const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']

export const gatewayConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: serverSchema(8080, {
      // SIGTERM: the drain (drainMs), then what is still in flight (publishes wait up to stream.publishTimeoutMs)
      // and closing Kafka and Redis; 25 s stays under Kubernetes' default grace of 30 s before its SIGKILL
      shutdownTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 25_000 },
      // SIGTERM closes the sockets with 1001 spread over this window: 10 s turns 10,000 sockets into
      // 1,000 reconnects a second on the other nodes rather than 10,000 at once; 0 closes them all at once
      drainMs: { type: 'integer', minimum: 0, maximum: 300_000, default: 10_000 },
      // a client has this long to send its request (or upgrade) headers: a real one needs milliseconds; a slowloris holds a socket
      handshakeTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: 10_000 },
      // connections the kernel completes before the gateway accepts them. A node's clients reconnect at once when
      // another node dies (SIGKILL, a crash: no drain spreads them): Node's default of 511 overflows and the
      // rest wait for SYN retransmits (1 s, then 3 s). 4096 is Linux's net.core.somaxconn default since 5.4,
      // which also caps it: past that sysctl the kernel quietly uses the sysctl's value. At most 65,535: older
      // kernels kept it in 16 bits, where a larger one wrapped (262,144 became 0)
      listenBacklog: { type: 'integer', minimum: 1, maximum: 65_535, default: 4096 }
    }),
    log: logSchema,
    kafka: kafkaSchema('sluice-gateway'),
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
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // browser Origins allowed on authenticated routes; none by default (clients without Origin are not browsers)
        origins: {
          type: 'array',
          default: [],
          maxItems: 100,
          items: { type: 'string', pattern: '^(\\*|null|[a-z][a-z0-9+.-]*://(\\*\\.)?[^/\\s*]+)$' }
        },
        jwt: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            audience: { type: 'array', default: [], maxItems: 20, items: { type: 'string', minLength: 1, maxLength: 1024 } },
            // small: exp and nbf are trusted this far past; beyond 5 minutes the clocks are broken, not skewed
            clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300, default: 30 },
            issuers: {
              type: 'array',
              default: [],
              // a gateway trusts a handful of IdPs; each one is a key source to keep fresh
              maxItems: 20,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['issuer', 'algorithms'],
                properties: {
                  issuer: { type: 'string', minLength: 1, maxLength: 1024 },
                  algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: JWT_ALGORITHMS } },
                  // https, or http on loopback only (local IdPs in tests): keys over plain HTTP can be swapped on the way
                  jwksUri: { type: 'string', pattern: '^(https://|http://(127\\.0\\.0\\.1|localhost|\\[::1\\])[:/])' },
                  publicKey: { type: 'string', minLength: 1 },
                  secret: { type: 'string', minLength: 32 }
                }
              }
            },
            jwks: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                // an unknown kid refetches at most this often (jose's default)
                cooldownMs: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: 30_000 },
                // known keys are refreshed in the background past this age (jose's default)
                maxAgeMs: { type: 'integer', minimum: 10_000, maximum: 86_400_000, default: 600_000 },
                // an upgrade waits at most this long for an IdP; they answer JWKS in well under a second
                timeoutMs: { type: 'integer', minimum: 100, maximum: 30_000, default: 3000 }
              }
            }
          }
        },
        apiKeys: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            // Redis key prefix, so that two gateways (or test suites) can share a Redis
            prefix: { type: 'string', pattern: '^[A-Za-z0-9:._-]{0,64}$', default: 'sluice:' },
            // the safety net behind pub/sub revocation; 4 s keeps docs/design.md's 5 s bound when a message is lost
            recheckIntervalMs: { type: 'integer', minimum: 500, maximum: 60_000, default: 4000 }
          }
        }
      }
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // relative to the working directory
        dir: { type: 'string', minLength: 1, default: 'policies' },
        watch: { type: 'boolean', default: true },
        // the poll behind inotify; 1 s keeps a withdrawal within docs/design.md's 2 s when no event arrives
        pollIntervalMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 }
      }
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      required: ['token'],
      properties: {
        // the admin API exists only with a token; 32 characters of it at least
        token: { type: 'string', minLength: 32 }
      }
    },
    docs: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // where clients reach /v1/stream, for the AsyncAPI document's server: ws(s)://host[:port] as seen
        // from outside (a load balancer's name); default ws://localhost:<server.port>
        publicUrl: { type: 'string', maxLength: 300, pattern: '^wss?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$' }
      }
    },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // plans are limits sold to clients: off only for benchmarks and trusted single-tenant setups
        enabled: { type: 'boolean', default: true },
        // Redis unreachable: fail-open keeps serving under each node's local buckets (same limits, not shared);
        // fail-closed refuses (503 before the upgrade, 1013 after) until Redis answers again
        failure: { enum: ['fail-open', 'fail-closed'], default: 'fail-open' },
        prefix: { type: 'string', pattern: '^[A-Za-z0-9:._-]{0,64}$', default: 'sluice:rl:' },
        // docs/design.md: the failure mode applies within 500 ms; 300 leaves room for the decision itself
        decisionTimeoutMs: { type: 'integer', minimum: 20, maximum: 500, default: 300 },
        // after a Redis error decisions stay local this long, then Redis is asked again
        probeIntervalMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 },
        // a delivery lease holds this much of the plan's per-second rates (fewer Redis calls vs tokens a node may hoard)
        leaseMs: { type: 'integer', minimum: 50, maximum: 5000, default: 500 },
        // a dead node's connections free themselves after this (live nodes refresh every third of it)
        connectionTtlMs: { type: 'integer', minimum: 3000, maximum: 600_000, default: 30_000 },
        abuse: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            // publishes sent while told to wait before the socket is closed with 4029
            burst: { type: 'integer', minimum: 1, maximum: 100_000, default: 50 },
            leakPerSecond: { type: 'number', minimum: 0, maximum: 100_000, default: 5 }
          }
        },
        // a subject no policy rule grants anything: it may hold this many sockets (and do nothing with them)
        unplanned: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            connections: { type: 'integer', minimum: 0, maximum: 1000, default: 1 },
            connectsPerMinute: { type: 'integer', minimum: 0, maximum: 100_000, default: 6 }
          }
        },
        // @fastify/rate-limit per client address on upgrade requests and the admin API
        http: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: true },
            upgrade: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                max: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 600 },
                timeWindowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 }
              }
            },
            admin: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                max: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 300 },
                timeWindowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 }
              }
            },
            // the other public routes (catalogue, API documents, /docs, /portal); probes and /metrics never
            public: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                max: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 1200 },
                timeWindowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 }
              }
            }
          }
        }
      }
    },
    stream: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // names this node in the hub's logs and in its rate-limit leases in Redis (default: the host name)
        nodeId: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
        // docs/design.md: 1 MiB by default; a larger frame closes with 1009
        maxFrameBytes: { type: 'integer', minimum: 1024, maximum: 16 * 1024 * 1024, default: 1024 * 1024 },
        // per-socket send queue; see DEFAULT_LIMITS in plugins/stream for the arithmetic
        maxQueueBytes: { type: 'integer', minimum: 16 * 1024, maximum: 64 * 1024 * 1024, default: 256 * 1024 },
        keepaliveMs: { type: 'integer', minimum: 1000, maximum: 300_000, default: 30_000 },
        idleTimeoutMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 300_000 },
        invalidFrameBurst: { type: 'integer', minimum: 1, maximum: 1000, default: 20 },
        maxInflightPublishes: { type: 'integer', minimum: 1, maximum: 10_000, default: 64 },
        publishTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: 10_000 },
        consumerGraceMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 5000 },
        // how soon a new topic reaches pattern subscriptions: one Metadata request per node per period
        topicRefreshMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 5000 },
        // bytes of each topic's window of recent records, which a resume or earliest inside it is served from
        // with no Kafka request (plugins/hub/src/window.ts gives the defaults' reasons); 0 keeps none
        resumeWindowBytes: { type: 'integer', minimum: 0, maximum: 1024 * 1024 * 1024, default: DEFAULT_WINDOW_BOUNDS.maxBytes },
        // how long a record stays in its topic's window after the live feed dispatched it
        resumeWindowMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: DEFAULT_WINDOW_BOUNDS.maxAgeMs },
        // all topics' windows together on one node: past it, the node's oldest records go first, whatever their topic
        resumeWindowNodeBytes: { type: 'integer', minimum: 0, maximum: 64 * 1024 * 1024 * 1024, default: DEFAULT_NODE_WINDOW_BYTES }
      }
    },
    // MQTT (plugins/mqtt): GET /mqtt is always there; plain TCP only on a port of its own
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // MQTT over plain TCP on this port (1883 is MQTT's registered one), on server.host; 0: no listener.
        // TLS (8883) is the platform's, as for the other routes
        tcpPort: { type: 'integer', minimum: 0, maximum: 65_535, default: 0 }
      }
    }
  }
} as const

export const gatewayEnvBindings: Record<string, EnvBinding> = {
  SLUICE_HOST: { path: '/server/host', type: 'string' },
  SLUICE_PORT: { path: '/server/port', type: 'integer' },
  SLUICE_SHUTDOWN_TIMEOUT_MS: { path: '/server/shutdownTimeoutMs', type: 'integer' },
  SLUICE_DRAIN_MS: { path: '/server/drainMs', type: 'integer' },
  SLUICE_LISTEN_BACKLOG: { path: '/server/listenBacklog', type: 'integer' },
  SLUICE_LOG_LEVEL: { path: '/log/level', type: 'string' },
  KAFKA_BROKERS: { path: '/kafka/brokers', type: 'list' },
  KAFKA_CLIENT_ID: { path: '/kafka/clientId', type: 'string' },
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
  { path: '/dev/token', type: 'string' },
  { path: '/admin/token', type: 'string' },
  { path: '/auth/jwt/audience', type: 'list' },
  // every string inside: issuer, jwksUri, publicKey, secret
  { path: '/auth/jwt/issuers', type: 'list' }
]

// A secret shaped like an unexpanded reference would be used as written: refused, wherever it came from.
// The Redis URL carries its password (redis://:password@host:6379).
export const gatewaySecretFields = ['/redis/url', '/dev/token', '/admin/token', '/auth/jwt/issuers/*/secret']

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
