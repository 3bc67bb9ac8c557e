// `sluice topics create|list|describe`: a product's topics on Kafka. Outside dev
// mode nothing creates a topic (brokers run with auto-create off), so this is
// how an operator makes the topics a policy's products name.
import { readFileSync } from 'node:fs'
import { KafkaClient, securityFromConfig, type KafkaSecurity, type SaslMechanism } from '@sluice/kafka'
import { integer, parse, UsageError, type Io } from './main.ts'

// Kafka's default for a new topic is 1 partition; 3 lets a product's consumers and resume cursors
// show per-partition order from the start, and is what dev mode gives demo.ticks
const DEFAULT_PARTITIONS = 3

function brokersFrom (flag: string | undefined, env: Record<string, string | undefined>): string[] {
  return (flag ?? env.KAFKA_BROKERS ?? 'localhost:9092').split(',').map(b => b.trim()).filter(Boolean)
}

const MECHANISMS: SaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512']

/** TLS and SASL from the variables the gateway reads (docs/deploy.md, managed Kafka): the same cluster, the same settings. */
function securityFrom (env: Record<string, string | undefined>): KafkaSecurity | undefined {
  const mechanism = env.KAFKA_SASL_MECHANISM
  const sasl = [mechanism, env.KAFKA_SASL_USERNAME, env.KAFKA_SASL_PASSWORD]
  if (sasl.some(v => v !== undefined) && sasl.some(v => v === undefined || v === '')) {
    throw new UsageError('KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD come together')
  }
  if (mechanism !== undefined && !MECHANISMS.includes(mechanism as SaslMechanism)) {
    throw new UsageError(`KAFKA_SASL_MECHANISM must be one of ${MECHANISMS.join(', ')}`)
  }
  const caFile = env.KAFKA_TLS_CA_FILE
  return securityFromConfig({
    tls: { enabled: env.KAFKA_TLS === 'true', ...(caFile ? { caFile } : {}) },
    ...(mechanism ? { sasl: { mechanism: mechanism as SaslMechanism, username: env.KAFKA_SASL_USERNAME!, password: env.KAFKA_SASL_PASSWORD! } } : {})
  }, readFileSync)
}

function kafkaFrom (flag: string | undefined, env: Record<string, string | undefined>): KafkaClient {
  return new KafkaClient({ brokers: brokersFrom(flag, env), clientId: 'sluice-cli', security: securityFrom(env) })
}

/** The exact topic names of a policy's products (patterns such as orders.* need names: give them), and which product a topic is of. */
async function policyTopics (dir: string) {
  const { loadPolicyDir } = await import('@sluice/policy')
  const { productTopics } = await import('@sluice/policy/product-topics')
  const result = await loadPolicyDir(dir)
  if (!result.policy) throw new Error(`${dir}: the policy is invalid (sluice policy check ${dir} lists the problems)`)
  return productTopics(result.policy.document)
}

export async function runTopics (args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args
  if (sub === 'create') {
    const { values, positionals } = parse('topics create', rest, {
      policy: { type: 'string' }, partitions: { type: 'string' }, replication: { type: 'string' }, brokers: { type: 'string' }
    }, { min: 0, max: 1000 })
    const partitions = integer('topics create', 'partitions', values.partitions) ?? DEFAULT_PARTITIONS
    const replicationFactor = integer('topics create', 'replication', values.replication)
    let names = positionals
    if (values.policy !== undefined) {
      const topics = await policyTopics(values.policy)
      const outside = names.filter(name => topics.productOf(name) === undefined)
      if (outside.length > 0) throw new Error(`${outside.join(', ')}: no product of ${values.policy} has this topic (add it to a product first)`)
      if (names.length === 0) names = topics.exact
    }
    if (names.length === 0) throw new UsageError('sluice topics create: name the topics, or give --policy DIR to create every exact topic of its products')
    const kafka = kafkaFrom(values.brokers, io.env)
    try {
      const existing = new Set(await kafka.listTopics())
      await kafka.ensureTopics(names.map(topic => ({ topic, partitions, replicationFactor })))
      for (const name of names) io.out.write(`${existing.has(name) ? 'exists ' : 'created'}  ${name}${existing.has(name) ? '' : `  (${partitions} partition${partitions === 1 ? '' : 's'})`}\n`)
    } finally {
      await kafka.close()
    }
    return 0
  }
  if (sub === 'list') {
    const { values } = parse('topics list', rest, { brokers: { type: 'string' } }, { min: 0, max: 0 })
    const kafka = kafkaFrom(values.brokers, io.env)
    try {
      for (const name of (await kafka.listTopics()).filter(t => !t.startsWith('__')).sort()) io.out.write(`${name}\n`)
    } finally {
      await kafka.close()
    }
    return 0
  }
  if (sub === 'describe') {
    const { values, positionals } = parse('topics describe', rest, { brokers: { type: 'string' } }, { min: 1, max: 1 })
    const kafka = kafkaFrom(values.brokers, io.env)
    try {
      const offsets = await kafka.topicOffsets(positionals[0]!)
      io.out.write(`${positionals[0]}: ${offsets.length} partition${offsets.length === 1 ? '' : 's'}\n`)
      for (const p of offsets.sort((a, b) => a.partition - b.partition)) io.out.write(`  partition ${p.partition}  offsets ${p.low} to ${p.high}  (${BigInt(p.high) - BigInt(p.low)} records)\n`)
    } finally {
      await kafka.close()
    }
    return 0
  }
  throw new UsageError(`sluice topics: ${sub === undefined ? 'a subcommand is required' : `unknown subcommand "${sub}"`} (create, list, describe)`)
}
