// A socket's produces: in frame order, one request per topic in flight,
// batched behind it; a record too large fails alone; reading pauses past the
// pending bound and resumes below half of it.
import { test } from 'tap'
import type { OutgoingRecord } from '@sluice/kafka'
import { PublishQueue } from '../src/publish-queue.ts'

function setup (maxPending = 4, maxBatch = 100) {
  const requests: Array<{ topic: string, values: string[], done: (err?: Error) => void }> = []
  const failures: Array<{ topic: string, code?: string }> = []
  const flow: string[] = []
  const queue = new PublishQueue({
    produceBatch: (topic, records) => new Promise<void>((resolve, reject) => {
      requests.push({ topic, values: records.map(r => String(r.value)), done: err => err ? reject(err) : resolve() })
    }),
    failed: (topic, err) => failures.push({ topic, code: (err as { code?: string }).code }),
    maxPending,
    maxBatch,
    pause: () => flow.push('pause'),
    resume: () => flow.push('resume')
  })
  const record = (value: string): OutgoingRecord => ({ value })
  const tick = () => new Promise(resolve => setImmediate(resolve))
  return { queue, requests, failures, flow, record, tick }
}

test('in order, one request per topic in flight, the rest batched behind it', async t => {
  const { queue, requests, record, tick } = setup(100)
  for (const v of ['a1', 'a2', 'a3']) { queue.reserve(); queue.push('a', record(v)) }
  queue.reserve()
  queue.push('b', record('b1'))
  t.same(requests.map(r => [r.topic, r.values]), [['a', ['a1']], ['b', ['b1']]], 'the first record of each topic goes at once; topics do not wait for each other')
  requests[0]!.done()
  await tick()
  t.same(requests[2]?.values, ['a2', 'a3'], 'what waited goes in one request, in order')
  queue.reserve()
  queue.push('a', record('a4'))
  t.equal(requests.length, 3, 'nothing more while a request for the topic is in flight')
  requests[2]!.done()
  await tick()
  t.same(requests[3]?.values, ['a4'])
  requests[1]!.done()
  requests[3]!.done()
  await tick()
  t.equal(queue.pending, 0)
})

test('a batch is at most maxBatch records', async t => {
  const { queue, requests, record, tick } = setup(1000, 2)
  for (let i = 0; i < 5; i++) { queue.reserve(); queue.push('a', record(`m${i}`)) }
  for (let i = 0; i < 3; i++) {
    requests[i]!.done()
    await tick()
  }
  t.same(requests.map(r => r.values), [['m0'], ['m1', 'm2'], ['m3', 'm4']])
})

test('refusals: every record of a failed request hears it; a record too large fails alone', async t => {
  const { queue, requests, failures, record, tick } = setup(100)
  for (const v of ['x', 'y1', 'y2', 'y3']) { queue.reserve(); queue.push('a', record(v)) }
  requests[0]!.done(Object.assign(new Error('down'), { code: 'SLUICE_KAFKA_UNAVAILABLE' }))
  await tick()
  t.same(failures, [{ topic: 'a', code: 'SLUICE_KAFKA_UNAVAILABLE' }])
  requests[1]!.done(Object.assign(new Error('too large'), { code: 'SLUICE_KAFKA_TOO_LARGE' }))
  await tick()
  t.same(requests.slice(2).map(r => r.values), [['y1']], 'then one by one, in order')
  requests[2]!.done()
  await tick()
  requests[3]!.done(Object.assign(new Error('too large'), { code: 'SLUICE_KAFKA_TOO_LARGE' }))
  await tick()
  requests[4]!.done()
  await tick()
  t.same(requests.slice(2).map(r => r.values), [['y1'], ['y2'], ['y3']])
  t.same(failures.map(f => f.code), ['SLUICE_KAFKA_UNAVAILABLE', 'SLUICE_KAFKA_TOO_LARGE'], 'only y2 is refused for its size')
  t.equal(queue.pending, 0)
})

test('reading pauses at maxPending frames and resumes below half', async t => {
  const { queue, requests, flow, record, tick } = setup(4)
  for (let i = 0; i < 3; i++) queue.reserve()
  t.same(flow, [])
  queue.reserve()
  t.same(flow, ['pause'], 'the fourth frame read pauses reading')
  queue.cancel()
  t.same(flow, ['pause'], '3 pending: not below half yet')
  queue.push('a', record('1'))
  queue.push('a', record('2'))
  requests[0]!.done()
  await tick()
  t.same(flow, ['pause'], '2 pending: not below half yet')
  requests[1]!.done()
  await tick()
  t.same(flow, ['pause', 'resume'], '1 pending, below half: reading resumes')
  queue.cancel()
  t.equal(queue.pending, 0)
})
