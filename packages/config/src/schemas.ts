// JSON Schema pieces both apps' configs share: where they listen, how they
// log, how they reach Kafka. Defaults live here, with their reasons.

export function serverSchema (defaultPort: number, extra: Record<string, object> = {}) {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      host: { type: 'string', minLength: 1, default: '0.0.0.0' },
      port: { type: 'integer', minimum: 0, maximum: 65535, default: defaultPort },
      // long enough to close thousands of sockets and flush produces; Kubernetes' default grace is 30 s
      shutdownTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 10_000 },
      ...extra
    }
  }
}

export const logSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' }
  }
}

export function kafkaSchema (clientId: string) {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    required: ['brokers'],
    properties: {
      brokers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$' } },
      clientId: { type: 'string', minLength: 1, default: clientId },
      connectionTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 3000 },
      requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 300_000, default: 10_000 }
    }
  }
}
