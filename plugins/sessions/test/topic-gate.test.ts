// The upgrade's existence check while Kafka cannot list its topics: during a
// partition leader's failover every metadata request that reaches the dead
// broker fails, for 8-13 s on the three-node suite, and resumes were refused
// with 503 for topics that exist. The last list Kafka gave serves for a minute.
import { test } from 'tap'
import type { KafkaClient } from '@sluice/kafka'
import type { AccessControl } from '@sluice/policy/access'
import type { Identity } from '@sluice/protocol/identity'
import { isRefusal, TopicGate } from '../src/topic-gate.ts'

const WHO: Identity = { kind: 'dev', subject: 'dev', claims: { sub: 'dev' } }
const ALLOW: AccessControl = {
  authorize: () => ({ allowed: true, product: 'p', plan: 'free', encoding: 'json', slowClient: 'lagging' }),
  onChange: () => () => {}
}

/** A KafkaClient whose listTopics answers with `topics`, or fails while `down` is set (a fake: this is the gate's logic alone). */
function kafka (topics: string[]): { client: KafkaClient, down: boolean, calls: number } {
  const state = {
    down: false,
    calls: 0,
    client: {
      listTopics: async () => {
        state.calls++
        if (state.down) throw new Error('Connection refused: the broker is gone')
        return topics
      }
    } as unknown as KafkaClient
  }
  return state
}

test('while Kafka cannot list its topics, the last list it gave answers for a minute, then 503', async t => {
  let now = 1_000_000
  const k = kafka(['orders'])
  const gate = new TopicGate(k.client, ALLOW, () => now)
  t.notOk(isRefusal(await gate.check(WHO, ['orders'])), 'Kafka up: the topic exists')

  k.down = true
  now += 3000 // past the 2 s cache: Kafka is asked again, and fails
  t.notOk(isRefusal(await gate.check(WHO, ['orders'])), 'Kafka down: the list of 3 s ago says the topic exists')
  t.match(await gate.check(WHO, ['nope']), { status: 404, code: 'UNKNOWN_TOPIC' }, 'and that another does not')
  const asked = k.calls
  now += 57_000
  t.notOk(isRefusal(await gate.check(WHO, ['orders'])), '60 s after the last answer, still served from it')
  t.ok(k.calls > asked, 'Kafka was asked again each time the cache was stale')

  now += 1001
  t.match(await gate.check(WHO, ['orders']), { status: 503, code: 'UNAVAILABLE', retryAfter: 5 }, 'past a minute: Kafka is unavailable')

  k.down = false
  now += 3000
  t.notOk(isRefusal(await gate.check(WHO, ['orders'])), 'Kafka back: answered from it again')
})

test('a node that never had a list from Kafka refuses with 503 while it is down', async t => {
  const k = kafka(['orders'])
  k.down = true
  const gate = new TopicGate(k.client, ALLOW)
  t.match(await gate.check(WHO, ['orders']), { status: 503, code: 'UNAVAILABLE' })
})
