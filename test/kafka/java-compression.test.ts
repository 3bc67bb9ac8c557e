// Production's producers are mostly Kafka's Java client, and many compress:
// lz4, zstd and snappy as often as gzip. Records written by Kafka's own
// command-line producer with each codec, batched (linger.ms), reach a live
// subscriber and one from earliest whole: keys, values and order.
import { test } from 'tap'
import { Admin } from '@platformatic/kafka'
import { consoleProducer } from '@sluice/stack'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { kafkaBrokers, unique } from '../helpers.ts'

// 'none' is the yardstick the others' log sizes are held against
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const
const RECORDS = 200

test('records a Java producer compressed with gzip, snappy, lz4 or zstd arrive whole', async t => {
  const prefix = unique('java-codec')
  const topics = CODECS.map(codec => `${prefix}.${codec}`)
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics(topics.map(topic => ({ topic, partitions: 1 })))
  const live = new Client(`${url}/v1/stream?topics=${topics.join(',')}`)
  await live.opened
  t.teardown(() => live.close())
  await live.next(f => f.op === 'subscribed')

  // values that compress (a repeated pad) and that differ (n), keys parsed from "key|value"
  const lines = (codec: string): string[] => Array.from({ length: RECORDS }, (_, n) => `${codec}-${n}|{"codec":"${codec}","n":${n},"pad":"${'ab'.repeat(100)}"}`)
  await Promise.all(CODECS.map((codec, i) => consoleProducer([
    '--bootstrap-server', kafkaBrokers().join(','), '--topic', topics[i]!,
    '--compression-codec', codec,
    '--producer-property', 'linger.ms=200', '--producer-property', 'batch.size=1048576',
    '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=|'
  ], lines(codec).join('\n') + '\n')))

  const check = (client: Client, who: string): void => {
    for (const [i, codec] of CODECS.entries()) {
      const got = client.messages(topics[i])
      t.equal(got.length, RECORDS, `${who}, ${codec}: every record`)
      t.same(got.map(m => m.key), lines(codec).map(line => line.slice(0, line.indexOf('|'))), `${who}, ${codec}: keys, in order`)
      t.same(got.map(m => m.value), lines(codec).map(line => JSON.parse(line.slice(line.indexOf('|') + 1))), `${who}, ${codec}: values`)
    }
  }
  await live.waitMessages(RECORDS * CODECS.length, 30_000)
  check(live, 'live')

  // a node that never read these topics reads them from Kafka
  const other = await streamApp()
  t.teardown(() => other.app.close())
  const earliest = new Client(`${other.url}/v1/stream?topics=${topics.join(',')}&from=earliest`)
  await earliest.opened
  t.teardown(() => earliest.close())
  await earliest.waitMessages(RECORDS * CODECS.length, 30_000)
  check(earliest, 'earliest')

  // the codecs are really in the log: each topic's partition on disk is a fraction of the uncompressed one's
  const admin = new Admin({ clientId: 'test-log-dirs', bootstrapBrokers: kafkaBrokers() })
  t.teardown(() => admin.close())
  const dirs = await admin.describeLogDirs({ topics: topics.map(name => ({ name, partitions: [0] })) })
  const sizes = new Map<string, bigint>()
  for (const broker of dirs) for (const dir of broker.results) for (const topic of dir.topics) for (const p of topic.partitions) sizes.set(topic.name, p.partitionSize)
  const none = sizes.get(topics[0]!)!
  t.ok(none > BigInt(RECORDS * 200), `uncompressed: ${none} bytes`)
  for (const [i, codec] of CODECS.entries()) {
    if (codec === 'none') continue
    const size = sizes.get(topics[i]!)!
    t.ok(size * 4n < none, `${codec}: ${size} bytes on disk, against ${none} uncompressed`)
  }
})
