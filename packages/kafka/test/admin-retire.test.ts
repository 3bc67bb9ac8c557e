// An admin given up after a failed or timed-out call is disconnected once the
// calls still running on it are over (kafka.ts #retire), not under them (a
// disconnect mid-call failed another caller's listTopics with a kafkajs
// TypeError: the clean-clone CI of c02599c, 741 passed, 1 failed): such a call
// finds no connected broker and connects the seed broker again, on an admin
// nobody would disconnect. Seen as a socket to the broker that kept a test
// process open after its gateway closed (test/rate-limit/publish.test.ts, 1
// run in 6). Real broker; the broker connections are counted from the
// process's own handles.
import { test } from 'tap'
import { KafkaClient } from '../src/kafka.ts'
import { KafkaTimeoutError } from '../src/errors.ts'
import { eventually, kafkaBrokers, unique } from '../../../test/helpers.ts'

/** This process's open sockets to the test broker. */
function brokerSockets (): number {
  const ports = new Set(kafkaBrokers().map(b => Number(b.split(':').at(-1))))
  const handles = (process as unknown as { _getActiveHandles (): unknown[] })._getActiveHandles()
  return handles.filter(h => {
    const socket = h as { remotePort?: number, destroyed?: boolean }
    return socket.remotePort !== undefined && ports.has(socket.remotePort) && socket.destroyed !== true
  }).length
}

test('calls that time out while others run on the same admin leave no broker connection once the client is closed', async t => {
  const before = brokerSockets()
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('admin-retire') })
  await kafka.listTopics()
  let timedOut = 0
  for (let round = 0; round < 150; round++) {
    // a call given 1 ms times out and retires the admin while the others are still running on it
    const calls = [kafka.listTopics(5000), kafka.topicOffsets('__consumer_offsets', 5000).catch(() => []), kafka.listTopics(1)]
    const results = await Promise.allSettled(calls)
    if (results[2]!.status === 'rejected' && results[2]!.reason instanceof KafkaTimeoutError) timedOut++
    t.equal(results[0]!.status, 'fulfilled', `round ${round}: the call with time enough is answered`)
  }
  t.ok(timedOut > 0, `the 1 ms calls timed out (${timedOut} of 150)`)
  await kafka.close()
  await eventually(() => brokerSockets() <= before, 10_000, 'the broker connections closed')
  t.equal(brokerSockets(), before, 'no broker connection left after close()')
})
