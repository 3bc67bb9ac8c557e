// The group-less reader's main fetch parks up to 5 s (reader.ts MAIN_MAX_WAIT_MS):
// a partition it does not carry must not wait for it. A reader started meanwhile,
// and a partition whose batch handler settles meanwhile, are taken by the other main
// client at once: without it they wait up to 5 s, or the start lane polls them every
// 5 ms meanwhile (what 500 ms polls did, ~100 requests each time).
import { test } from 'tap'
import { KafkaClient, type RecordBatch } from '../src/kafka.ts'
import { eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

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
