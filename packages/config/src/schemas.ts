// JSON Schema pieces both apps' configs share: where they listen, how they
// log, how they reach Kafka. Defaults live here, with their reasons.
// Written `as const`: the apps' config types are derived from them (FromSchema).
import { schemaDefaults } from './defaults.ts'
import type { EnvBinding } from './load.ts'

// An app adds keys or overrides one as `{ ...serverSchema(port), properties: { ...serverSchema(port).properties, ... } }`:
// a spread of known keys keeps each key's type (a generic `extra` spread would intersect an overridden key's two schemas).
export function serverSchema (defaultPort: number) {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      host: { type: 'string', minLength: 1, default: '0.0.0.0' },
      port: { type: 'integer', minimum: 0, maximum: 65535, default: defaultPort },
      // long enough to close thousands of sockets and flush produces; Kubernetes' default grace is 30 s
      shutdownTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 10_000 }
    }
  } as const
}

export const logSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' }
  }
} as const

export function kafkaSchema (clientId: string) {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    required: ['brokers'],
    properties: {
      brokers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$' } },
      clientId: { type: 'string', minLength: 1, default: clientId },
      // TCP connect: a broker on the same network answers in far less than 3 s
      connectionTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 3000 },
      // per request: 10 s leaves room for a slow produce with acks=all
      requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 300_000, default: 10_000 },
      // TLS to every broker (managed Kafka: Confluent Cloud, MSK, Aiven): the system's CAs unless caFile
      // names a PEM; certFile and keyFile for brokers that ask for a client certificate
      tls: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          enabled: { type: 'boolean', default: false },
          caFile: { type: 'string', minLength: 1 },
          certFile: { type: 'string', minLength: 1 },
          keyFile: { type: 'string', minLength: 1 },
          // false accepts any certificate: a test cluster's, never production's
          rejectUnauthorized: { type: 'boolean', default: true }
        }
      },
      // SASL on every connection (over TLS with tls.enabled, as managed Kafka requires); the password a `${env:NAME}`
      sasl: {
        type: 'object',
        additionalProperties: false,
        required: ['mechanism', 'username', 'password'],
        properties: {
          mechanism: { enum: ['plain', 'scram-sha-256', 'scram-sha-512'] },
          username: { type: 'string', minLength: 1, maxLength: 1024 },
          password: { type: 'string', minLength: 1, maxLength: 4096 }
        }
      }
    }
  } as const
}

/** The Kafka section's environment variables, the same in both apps. */
export const kafkaEnvBindings: Record<string, EnvBinding> = {
  KAFKA_BROKERS: { path: '/kafka/brokers', type: 'list' },
  KAFKA_CLIENT_ID: { path: '/kafka/clientId', type: 'string' },
  KAFKA_TLS: { path: '/kafka/tls/enabled', type: 'boolean' },
  KAFKA_TLS_CA_FILE: { path: '/kafka/tls/caFile', type: 'string' },
  KAFKA_SASL_MECHANISM: { path: '/kafka/sasl/mechanism', type: 'string' },
  KAFKA_SASL_USERNAME: { path: '/kafka/sasl/username', type: 'string' },
  KAFKA_SASL_PASSWORD: { path: '/kafka/sasl/password', type: 'string' }
}

/** The Kafka section's defaults (the client ID aside, each app names its own), for the client used without config. */
export const kafkaDefaults = schemaDefaults(kafkaSchema('sluice'))
