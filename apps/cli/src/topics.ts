// `sluice topics create|list|describe`: a product's topics on Kafka. Outside dev
// mode nothing creates a topic (brokers run with auto-create off), so this is
// how an operator makes the topics a policy's products name.
import { readFileSync } from 'node:fs'
import { loadConfig } from '@sluice/config'
import { kafkaEnvBindings, kafkaSchema } from '@sluice/config/schemas'
import { KafkaClient, securityFromConfig, type KafkaSecurityConfig } from '@sluice/kafka'
import { integer, parse, UsageError, type Io } from './main.ts'

// Kafka's default for a new topic is 1 partition; 3 lets a product's consumers and resume cursors
// show per-partition order from the start, and is what dev mode gives demo.ticks
const DEFAULT_PARTITIONS = 3

function brokersFrom (flag: string): string[] {
  return flag.split(',').map(b => b.trim()).filter(Boolean)
}

// the apps' kafka section and its variables (KAFKA_BROKERS, KAFKA_TLS, KAFKA_SASL_*: docs/deploy.md), checked as theirs are
const CLI_KAFKA_SCHEMA = { type: 'object', additionalProperties: false, properties: { kafka: kafkaSchema('sluice-cli') } }

function kafkaFrom (flag: string | undefined, env: Record<string, string | undefined>): KafkaClient {
  const { kafka } = loadConfig<{ kafka: KafkaSecurityConfig & { brokers: string[] } }>({
    schema: CLI_KAFKA_SCHEMA,
    base: { kafka: { brokers: ['localhost:9092'] } },
    env,
    envBindings: kafkaEnvBindings,
    secrets: ['/kafka/sasl/password']
  })
  return new KafkaClient({ brokers: flag === undefined ? kafka.brokers : brokersFrom(flag), clientId: 'sluice-cli', security: securityFromConfig(kafka, readFileSync) })
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
