// The group-less reader's main fetch parks up to 5 s (reader.ts MAIN_MAX_WAIT_MS):
// a partition it does not carry must not wait for it. A reader started meanwhile,
// and a partition whose batch handler settles meanwhile, are taken by the other main
// client at once: without it they wait up to 5 s, or the start lane polls them every
// 5 ms meanwhile (what 500 ms polls did, ~100 requests each time).
import { test } from 'tap'
import { KafkaClient, type RecordBatch } from '../src/kafka.ts'
import { connectionsTo, eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

// well under the 5 s a parked fetch holds, well over a loaded machine's round trips
const PROMPT_MS = 1500
// the lane's answer to a new reader, and a retry or two; polling every 5 ms sends ~20 in 100 ms
const LANE_FETCHES = 3

function client (): KafkaClient {
  return new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('reader-parked') })
}

test('a reader started while the main fetch is parked gets a record written after its start within 1.5 s, and the lane goes quiet', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const first = unique('reader.parked.a')
  const second = unique('reader.parked.b')
  await kafka.ensureTopics([{ topic: first, partitions: 1 }, { topic: second, partitions: 1 }])
  const a = kafka.reader({ topic: first, onBatch: () => {} })
  await a.start('latest')
  // a's partition caught up and parked in the main fetch
  await new Promise(resolve => setTimeout(resolve, 1500))
  const lane0 = kafka.readerRequests.lane
  let arrived = 0
  const b = kafka.reader({ topic: second, onBatch: () => { arrived ||= performance.now() } })
  await b.start('latest')
  // the lane has answered and b's partition waits to be taken: its next record goes to whichever fetch carries it
  await new Promise(resolve => setTimeout(resolve, 100))
  const t0 = performance.now()
  await kafka.produce(second, { value: 'x', partition: 0 })
  await eventually(() => arrived > 0, 10_000, 'the record of the second reader')
  const ms = arrived - t0
  t.ok(ms < PROMPT_MS, `produce -> delivered ${Math.round(ms)} ms (a parked main fetch holds 5 s)`)
  const lane = kafka.readerRequests.lane - lane0
  t.ok(lane <= LANE_FETCHES, `start-lane fetches from b's start to its record: ${lane} (the other main client took it)`)
  // both partitions are in the main fetch now: nothing left for the lane
  await new Promise(resolve => setTimeout(resolve, 1000))
  const lane1 = kafka.readerRequests.lane
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(kafka.readerRequests.lane - lane1, 0, 'no start-lane fetch once the main fetch carries both')
  await Promise.all([a.stop(), b.stop()])
})

test('a partition whose batch handler settles while the main fetch is parked gets its next record within 1.5 s', async t => {
  const kafka = client()
  t.teardown(() => kafka.close())
  const topic = unique('reader.parked.busy')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  const arrivals: number[] = []
  let release: () => void = () => {}
  const reader = kafka.reader({
    topic,
    // the first batch holds the partition until released: the main fetch parks without it
    onBatch: (_batch: RecordBatch) => {
      arrivals.push(performance.now())
      if (arrivals.length === 1) return new Promise<void>(resolve => { release = resolve })
      return undefined
    }
  })
  await reader.start('latest')
  await kafka.produce(topic, { value: 'first', partition: 0 })
  await eventually(() => arrivals.length === 1, 10_000, 'the first record')
  // a second reader keeps a main fetch parked, so that the first partition's return finds one in flight
  const other = unique('reader.parked.other')
  await kafka.ensureTopics([{ topic: other, partitions: 1 }])
  const keeper = kafka.reader({ topic: other, onBatch: () => {} })
  await keeper.start('latest')
  await new Promise(resolve => setTimeout(resolve, 1500))
  const lane0 = kafka.readerRequests.lane
  release()
  await new Promise(resolve => setTimeout(resolve, 100))
  const t0 = performance.now()
  await kafka.produce(topic, { value: 'second', partition: 0 })
  await eventually(() => arrivals.length === 2, 10_000, 'the second record')
  const ms = arrivals[1]! - t0
  t.ok(ms < PROMPT_MS, `produce -> delivered ${Math.round(ms)} ms after the handler settled (a parked main fetch holds 5 s)`)
  const lane = kafka.readerRequests.lane - lane0
  t.ok(lane <= LANE_FETCHES, `start-lane fetches from the release to the record: ${lane} (the other main client took it)`)
  await Promise.all([reader.stop(), keeper.stop()])
})

test('the main client a join opened is closed once idle for three long polls, with its broker connection, and opened again by the next join', async t => {
  // a 2 s request timeout makes the long poll 1 s (reader.ts: half the timeout at most): idle for 3 s closes it
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('reader-idle-main'), requestTimeoutMs: 2000 })
  t.teardown(() => kafka.close())
  const port = Number(kafkaBrokers()[0]!.split(':').at(-1))
  const names = [unique('reader.idle.a'), unique('reader.idle.b'), unique('reader.idle.c')]
  await kafka.ensureTopics(names.map(topic => ({ topic, partitions: 1 })))
  // the producer's connection is open before the readers start: what changes below is the readers'
  await kafka.produce(names[0]!, { value: 'warm', partition: 0 })
  const seen = new Map<string, string[]>(names.map(n => [n, []]))
  const start = async (topic: string) => {
    const reader = kafka.reader({ topic, onBatch: batch => { for (const r of batch.records) seen.get(topic)!.push(String(r.value)) } })
    await reader.start('latest')
    return reader
  }
  const delivered = async (topic: string, value: string) => {
    const t0 = performance.now()
    await kafka.produce(topic, { value, partition: 0 })
    await eventually(() => seen.get(topic)!.includes(value), 10_000, `${value} on ${topic}`)
    return performance.now() - t0
  }
  const a = await start(names[0]!)
  // a's partition caught up and parked in main client 0's long poll
  await new Promise(resolve => setTimeout(resolve, 600))
  const b = await start(names[1]!)
  await eventually(() => kafka.readerClients === 3, 5000, 'b taken by main client 1 (lane, two main clients)')
  const joined = connectionsTo(port)
  // the same path before the close, for comparison (the producer's latency is in every figure)
  t.comment(`before the close: produce -> delivered ${Math.round(await delivered(names[0]!, 'before-close'))} ms`)
  await eventually(() => kafka.readerClients === 2, 10_000, 'one main client closed once idle')
  t.equal(connectionsTo(port), joined - 1, `broker connections ${joined} -> ${connectionsTo(port)}: the closed client's went with it`)
  // the main client left carries both partitions
  for (const [i, topic] of names.slice(0, 2).entries()) {
    const ms = await delivered(topic, `after-close-${i}`)
    t.ok(ms < PROMPT_MS, `${topic}: produce -> delivered ${Math.round(ms)} ms with one main client`)
  }
  // a join while the main fetch is parked opens the second client again
  await new Promise(resolve => setTimeout(resolve, 600))
  const c = await start(names[2]!)
  const ms = await delivered(names[2]!, 'joined-again')
  t.ok(ms < PROMPT_MS, `a reader started after the close: produce -> delivered ${Math.round(ms)} ms`)
  await eventually(() => kafka.readerClients === 2, 10_000, 'and closed again once idle')
  for (const [i, topic] of names.entries()) {
    await delivered(topic, `end-${i}`)
    const values = seen.get(topic)!
    t.same(values, [...new Set(values)], `${topic}: no record delivered twice (${values.length})`)
  }
  t.same(seen.get(names[0]!), ['before-close', 'after-close-0', 'end-0'], 'a: every record produced after its start, in order')
  t.same(seen.get(names[1]!), ['after-close-1', 'end-1'], 'b: every record produced after its start, in order')
  t.same(seen.get(names[2]!), ['joined-again', 'end-2'], 'c: every record produced after its start, in order')
  await Promise.all([a.stop(), b.stop(), c.stop()])
})
