// A message's timestamp is the record's as Kafka's own consumer reads it: the
// producer's (CreateTime, the default) or the broker's append time on a topic
// set to LogAppendTime, where the broker rewrites only the batch's max
// timestamp and the record's own bytes keep the producer's. Live, from Kafka
// (earliest on a node that never read the topic) and in group mode.
import { test } from 'tap'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { unique } from '../helpers.ts'

// a producer's clock far from the broker's: 2001-09-09T01:46:40Z
const PRODUCER_TIME = 1_000_000_000_000

test('CreateTime gives the producer\'s timestamp, LogAppendTime the broker\'s', async t => {
  const create = unique('ts-create')
  const append = unique('ts-append')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic: create, partitions: 1 }, { topic: append, partitions: 1, config: { 'message.timestamp.type': 'LogAppendTime' } }])
  const live = new Client(`${url}/v1/stream?topics=${create},${append}`)
  await live.opened
  t.teardown(() => live.close())
  await live.next(f => f.op === 'subscribed')

  const before = Date.now()
  for (let i = 0; i < 3; i++) {
    await kafka.produce(create, { value: `"c${i}"`, timestamp: String(PRODUCER_TIME + i) })
    await kafka.produce(append, { value: `"a${i}"`, timestamp: String(PRODUCER_TIME + i) })
  }
  await live.waitMessages(6, 15_000)
  const after = Date.now()

  const other = await streamApp()
  t.teardown(() => other.app.close())
  const earliest = new Client(`${other.url}/v1/stream?topics=${create},${append}&from=earliest`)
  await earliest.opened
  t.teardown(() => earliest.close())
  await earliest.waitMessages(6, 15_000)
  const group = new Client(`${other.url}/v1/stream?topics=${create},${append}&group=${unique('ts-group')}&from=earliest`)
  await group.opened
  t.teardown(() => group.close())
  await group.waitMessages(6, 30_000)

  for (const [who, client] of [['live', live], ['earliest', earliest], ['group', group]] as const) {
    t.same(client.messages(create).map(m => m.timestamp), [0, 1, 2].map(i => PRODUCER_TIME + i), `${who}, CreateTime: the producer's`)
    const appended = client.messages(append).map(m => m.timestamp as number)
    t.equal(appended.length, 3)
    // the broker's clock is this machine's: each append time falls inside the produce calls
    t.ok(appended.every(ts => ts >= before - 1000 && ts <= after + 1000), `${who}, LogAppendTime: the broker's (${appended.join(', ')}, produced ${before}-${after})`)
  }
})
