// Producer clients: CPU µs per record and records/s of one idempotent
// producer (acks from all in-sync replicas, one request at a time, as the
// gateway's shared producer) sending batches of 50 to 1,024 small records,
// kafkajs `sendBatch` against @platformatic/kafka `send`, on the same broker.
// Why: at the maximum of bench/publish.ts the gateway's event loop is busy
// 92-97 % of the time, so its CPU per publish bounds the publish rate, and the
// Kafka client's share of it is what this measures (kafkajs's part shows in a
// CPU profile of that bench as encoding, a Buffer per record, and grouping by
// partition).
//
//   KAFKA_BROKERS=127.0.0.1:19092 bash deploy/local/node.sh bench/producer-clients.ts
//
// Uses the Kafka it is given (a topic of 3 partitions of its own); starts none.
// Bounded: 40,000 records per client and batch size, a warm-up round first,
// each send with the clients' own timeouts: well under a minute on loopback.
// Not a test: it prints figures. On these figures the gateway's shared producer
// moved to @platformatic/kafka (packages/kafka/src/producer.ts; bench/README.md).
import { randomBytes } from 'node:crypto'
import { Kafka, Partitioners, logLevel } from 'kafkajs'
import { Producer, ProduceAcks } from '@platformatic/kafka'
// kafkajs as the gateway ran it: without its fix of 2.2.4's idle loop (packages/kafka/src/kafkajs-idle.ts) each
// connection runs a 1 ms timer for good once it has an answer
import '@sluice/kafka/kafkajs-idle'

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',')
// bench/publish.ts's value: a small trade, 57 bytes of JSON
const VALUE = Buffer.from('{"sym":"BTC-USD","px":97123.45,"qty":0.0123,"side":"buy"}')
// the gateway's 256 (publish-batcher.ts MAX_RECORDS) and around it
const BATCHES = [50, 100, 256, 512, 1024]
// enough requests per size (40 to 800) for the CPU figure to settle, few enough to stay bounded
const RECORDS = 40_000

type Send = (count: number) => Promise<void>

async function measure (name: string, send: Send): Promise<string[]> {
  const lines: string[] = []
  for (const round of ['warm-up', 'measured']) {
    for (const batch of BATCHES) {
      const started = performance.now()
      const cpu = process.cpuUsage()
      for (let sent = 0; sent < RECORDS; sent += batch) await send(batch)
      const used = process.cpuUsage(cpu)
      const ms = performance.now() - started
      if (round === 'measured') lines.push(`  ${name.padEnd(20)} batches of ${String(batch).padStart(4)}: ${(RECORDS / ms * 1000).toFixed(0).padStart(7)}/s  ${((used.user + used.system) / RECORDS).toFixed(2)} µs CPU/record`)
    }
  }
  return lines
}

async function main (): Promise<void> {
  const kafka = new Kafka({ brokers, clientId: 'bench-producer-clients', logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const topic = `bench.producers-${randomBytes(4).toString('hex')}`
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
  await admin.disconnect()
  const lines = [`${RECORDS} records of ${VALUE.length} bytes per batch size, one idempotent producer, acks all, one request at a time (2 shared cores: figures move with others' load)`]

  const kjs = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
  await kjs.connect()
  try {
    lines.push(...await measure('kafkajs', async count => {
      await kjs.sendBatch({ topicMessages: [{ topic, messages: Array.from({ length: count }, () => ({ value: VALUE })) }], acks: -1 })
    }))
  } finally {
    await kjs.disconnect()
  }

  // idempotent: the client sets acks all and one request in flight itself
  const plt = new Producer({ clientId: 'bench-producer-clients', bootstrapBrokers: brokers, idempotent: true, acks: ProduceAcks.ALL, autocreateTopics: false })
  let next = 0
  try {
    lines.push(...await measure('@platformatic/kafka', async count => {
      // round robin, as kafkajs's partitioner does for records without a key
      await plt.send({ messages: Array.from({ length: count }, () => ({ topic, value: VALUE, partition: next++ % 3 })) })
    }))
  } finally {
    await plt.close()
  }
  process.stdout.write(lines.join('\n') + '\n')
}

main().then(() => process.exit(0), err => { process.stderr.write(`${(err as Error).stack}\n`); process.exit(1) })
