// How the clients reach a secured cluster. Managed Kafka (Confluent Cloud, MSK, Aiven, Redpanda
// Cloud) takes TLS and SASL: PLAIN or SCRAM-SHA-256/512 on top of TLS (SASL_SSL), or SASL over
// plain TCP (SASL_PLAINTEXT) inside a private network. One description, given to both client
// libraries in the shape each takes; every connection a KafkaClient opens (readers, group
// members, the shared producer, kafkajs's admin) uses it.
import type { ConnectionOptions } from 'node:tls'
import type { SASLOptions as KjsSasl } from 'kafkajs'

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512'

export interface KafkaTls {
  /** PEM: the CAs to trust instead of the system's (a private CA) */
  ca?: string | Buffer
  /** PEM: a client certificate and its key, for brokers that ask for one (mTLS) */
  cert?: string | Buffer
  key?: string | Buffer
  /** false accepts any certificate: never in production; true unless told */
  rejectUnauthorized?: boolean
}

export interface KafkaSasl {
  mechanism: SaslMechanism
  username: string
  password: string
}

export interface KafkaSecurity {
  /** TLS to every broker; {} trusts the system's CAs */
  tls?: KafkaTls
  sasl?: KafkaSasl
}

function tlsOptions (tls: KafkaTls): ConnectionOptions {
  const out: ConnectionOptions = { rejectUnauthorized: tls.rejectUnauthorized ?? true }
  if (tls.ca !== undefined) out.ca = tls.ca
  if (tls.cert !== undefined) out.cert = tls.cert
  if (tls.key !== undefined) out.key = tls.key
  return out
}

const PLT_MECHANISMS = { plain: 'PLAIN', 'scram-sha-256': 'SCRAM-SHA-256', 'scram-sha-512': 'SCRAM-SHA-512' } as const

/**
 * @platformatic/kafka's connection options (producer, readers, group members). tlsServerName: each
 * broker's host as the TLS server name (SNI), which the library sends only when told and kafkajs
 * always sends: a cluster that routes by it (Confluent Cloud) answered kafkajs's admin and would
 * not have answered the readers and the producer.
 */
export function platformaticSecurity (security: KafkaSecurity | undefined): { tls?: ConnectionOptions, tlsServerName?: true, sasl?: { mechanism: (typeof PLT_MECHANISMS)[SaslMechanism], username: string, password: string } } {
  if (!security) return {}
  return {
    ...(security.tls ? { tls: tlsOptions(security.tls), tlsServerName: true as const } : {}),
    ...(security.sasl ? { sasl: { mechanism: PLT_MECHANISMS[security.sasl.mechanism], username: security.sasl.username, password: security.sasl.password } } : {})
  }
}

/** kafkajs's (its admin and classic group consumers) */
export function kafkajsSecurity (security: KafkaSecurity | undefined): { ssl?: ConnectionOptions, sasl?: KjsSasl } {
  if (!security) return {}
  const sasl = security.sasl
  return {
    ...(security.tls ? { ssl: tlsOptions(security.tls) } : {}),
    ...(sasl ? { sasl: { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as KjsSasl } : {})
  }
}

/** The `kafka` section's tls and sasl, as both apps' configs hold them (@sluice/config/schemas). */
export interface KafkaSecurityConfig {
  tls?: { enabled?: boolean, caFile?: string, certFile?: string, keyFile?: string, rejectUnauthorized?: boolean }
  sasl?: KafkaSasl
}

/**
 * The config's TLS and SASL with the PEM files read; undefined for plain TCP. Throws, naming the
 * setting, for a file that cannot be read or settings that contradict each other: a gateway must
 * not start on a connection other than the one its operator wrote.
 */
export function securityFromConfig (config: KafkaSecurityConfig, read: (file: string) => Buffer): KafkaSecurity | undefined {
  const tls = config.tls ?? {}
  const files = (['caFile', 'certFile', 'keyFile'] as const).filter(name => tls[name] !== undefined)
  if (!tls.enabled && (files.length > 0 || tls.rejectUnauthorized === false)) {
    throw new Error(`kafka.tls.${files[0] ?? 'rejectUnauthorized'} is set but kafka.tls.enabled is not: set kafka.tls.enabled: true (or KAFKA_TLS=true) for TLS to the brokers`)
  }
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new Error('kafka.tls.certFile and kafka.tls.keyFile come together: a client certificate needs its key')
  }
  const load = (name: 'caFile' | 'certFile' | 'keyFile'): Buffer | undefined => {
    const file = tls[name]
    if (file === undefined) return undefined
    try {
      return read(file)
    } catch (err) {
      throw new Error(`kafka.tls.${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
    }
  }
  const security: KafkaSecurity = {}
  if (tls.enabled) {
    const ca = load('caFile')
    const cert = load('certFile')
    const key = load('keyFile')
    security.tls = {
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      rejectUnauthorized: tls.rejectUnauthorized ?? true
    }
  }
  if (config.sasl) security.sasl = { ...config.sasl }
  return security.tls || security.sasl ? security : undefined
}
