// The kafka section's TLS and SASL: from the file with the password a ${env:NAME}
// reference, or from the environment alone; a mechanism Kafka does not offer,
// half a SASL section, and a password still shaped like a reference are refused
// with their paths.
import { test } from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '@sluice/config'
import { loadGatewayConfig } from '../src/config.ts'

const ref = (name: string) => '$' + '{env:' + name + '}'
const PASSWORD = 'kafka-password-k4fk4'

function writeConfig (lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-gateway-')), 'gateway.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function problemsOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error('expected a ConfigError')
}

test('from the file: TLS on, SASL with the password from the environment', async t => {
  const file = writeConfig(['kafka:', '  brokers: [broker.example:9092]', '  tls:', '    enabled: true', '  sasl:', '    mechanism: scram-sha-512', '    username: sluice', `    password: ${ref('KAFKA_PASSWORD')}`])
  const config = loadGatewayConfig({ file, env: { KAFKA_PASSWORD: PASSWORD } })
  t.same(config.kafka.tls, { enabled: true, rejectUnauthorized: true })
  t.same(config.kafka.sasl, { mechanism: 'scram-sha-512', username: 'sluice', password: PASSWORD })
})

test('from the environment alone', async t => {
  const config = loadGatewayConfig({ env: { KAFKA_BROKERS: 'broker.example:9092', KAFKA_TLS: 'true', KAFKA_TLS_CA_FILE: '/etc/ca.pem', KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'key', KAFKA_SASL_PASSWORD: PASSWORD } })
  t.same(config.kafka.tls, { enabled: true, caFile: '/etc/ca.pem', rejectUnauthorized: true })
  t.same(config.kafka.sasl, { mechanism: 'plain', username: 'key', password: PASSWORD })
  t.same(loadGatewayConfig({ env: { KAFKA_BROKERS: 'b:9092' } }).kafka.tls, { enabled: false, rejectUnauthorized: true }, 'none: plain TCP')
  t.equal(loadGatewayConfig({ env: { KAFKA_BROKERS: 'b:9092' } }).kafka.sasl, undefined)
})

test('refused, with the path: an unknown mechanism, half a SASL section, a password left as a reference', async t => {
  t.match(problemsOf(() => loadGatewayConfig({ env: { KAFKA_BROKERS: 'b:9092', KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD } })), /\/kafka\/sasl\/mechanism/)
  t.match(problemsOf(() => loadGatewayConfig({ env: { KAFKA_BROKERS: 'b:9092', KAFKA_SASL_USERNAME: 'u' } })), /\/kafka\/sasl/)
  t.match(problemsOf(() => loadGatewayConfig({ env: { KAFKA_BROKERS: 'b:9092', KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: ref('KAFKA_PASSWORD') } })), /\/kafka\/sasl\/password/)
})
