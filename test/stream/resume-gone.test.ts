// A cursor older than what Kafka still holds: retention (or DeleteRecords)
// removed the start of the client's gap while it was away. The replay cannot
// bring those records back; the client is told which ones it will not get (a
// `gap` frame, before any later record), then gets every record Kafka holds,
// once, and joins the live stream. Before, it got the rest with no word: an
// offset jump it could not tell from a commit marker's.
import { test } from 'tap'
import { Admin } from '@platformatic/kafka'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { kafkaBrokers, metricSum, unique } from '../helpers.ts'

test('a resume whose gap Kafka no longer holds says which records are gone, then replays the rest exactly once', async t => {
  const topic = unique('resume-gone')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  for (let i = 0; i < 20; i++) await kafka.produce(topic, { value: `{"n":${i}}`, partition: i % 2 })

  // the client had read offsets 0 and 1 of each partition; then partition 0 lost offsets below 6
  const admin = new Admin({ clientId: 'test-delete-records', bootstrapBrokers: kafkaBrokers() })
  t.teardown(() => admin.close())
  await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset: 6n }] }] })

  const client = new Client(`${url}/v1/stream?topics=${topic}&from=${encodeURIComponent(`${topic}@0:2,1:2`)}`)
  await client.opened
  t.teardown(() => client.close())
  await client.waitMessages(4 + 8, 15_000, topic)
  await kafka.produce(topic, { value: '{"n":20}', partition: 0 })
  await client.waitMessages(4 + 8 + 1, 15_000, topic)
  await new Promise(resolve => setTimeout(resolve, 300))

  const gaps = client.frames.filter(f => f.op === 'gap')
  t.same(gaps, [{ op: 'gap', topic, partition: 0, from: '2', to: '6' }], 'one gap frame: partition 0, offsets 2 to 5')
  const p0 = client.frames.filter(f => (f.op === 'gap' || f.op === 'message') && f.partition === 0)
  t.equal(p0[0]?.op, 'gap', 'the gap frame comes before partition 0\'s records')
  t.same(client.messages(topic).filter(m => m.partition === 0).map(m => m.offset), ['6', '7', '8', '9', '10'], 'partition 0: what Kafka holds, then live')
  t.same(client.messages(topic).filter(m => m.partition === 1).map(m => m.offset), ['2', '3', '4', '5', '6', '7', '8', '9'], 'partition 1, which lost nothing: its gap whole')

  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(metricSum(metrics.body, 'sluice_hub_records_gone_total'), 4, 'the metric counts the 4 records gone')
})
