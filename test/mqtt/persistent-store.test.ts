// The sessions store (plugins/mqtt/src/persistence.ts) on the real Kafka,
// without a gateway: what a node killed without warning leaves behind. Its
// records say `connected` and nothing ends them; a live node writes its
// sessions again every heartbeat, so a record past 2.5 heartbeats is a dead
// node's: its session expires from its last write and is tombstoned. The
// heartbeat is shortened here (300 ms) to see it within the test.
import t from 'tap'
import { KafkaClient } from '@sluice/kafka'
import { SessionStore, type Holder, type StoredSession } from '@sluice/mqtt'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const topic = unique('mqtt-store-sessions')
const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: unique('mqtt-store') })
t.teardown(() => kafka.close())
const log = { debug () {}, info () {}, warn () {}, error () {} } as never

function store (): SessionStore {
  const s = new SessionStore({ kafka, topic, log, heartbeatMs: 300, sweepMs: 200, flushMs: 100 })
  s.start()
  t.teardown(() => s.stop())
  return s
}

function session (owner: string, expiry: number): StoredSession {
  return { owner, connected: true, expiry, at: Date.now(), subs: [['sensors/+/temp', 1]], pos: { 'sensors.temp': { 0: '42' } }, inflight: [] }
}

function holder (owner: string, expiry: number): Holder & { takenBy?: string } {
  const h: Holder & { takenBy?: string } = { ownerId: owner, stored: () => session(owner, expiry), takenOver: by => { h.takenBy = by } }
  return h
}

t.test('a session whose node died (no heartbeat for 2.5 of them) expires from its last write and is tombstoned; a live one is kept by its heartbeats', async t => {
  const dying = store()
  t.ok(await dying.ready(20_000), 'the store read its topic')
  const deadId = unique('dead')
  const liveId = unique('live')
  await dying.claim(deadId, session('conn-dead', 1), holder('conn-dead', 1))
  // the node dies: its timers stop, nothing ends the session
  await dying.stop()

  const living = store()
  t.ok(await living.ready(20_000))
  await living.claim(liveId, session('conn-live', 1), holder('conn-live', 1))
  t.ok(living.get(deadId), 'at first the dead node\'s session is there, connected')

  const other = store()
  t.ok(await other.ready(20_000))
  // 2.5 heartbeats (750 ms) and the 1 s expiry after its last write: gone, on a node that never held it
  await eventually(() => other.get(deadId) === undefined, 10_000, 'the dead node\'s session expired')
  const values: Array<string | null> = []
  const reader = kafka.reader({
    topic,
    onBatch: batch => {
      for (const r of batch.records) if (r.key?.toString() === deadId) values.push(r.value === null || r.value.length === 0 ? null : 'state')
    }
  })
  t.teardown(() => reader.stop())
  await reader.start(new Map([[0, 0n]]))
  await eventually(() => values.includes(null), 10_000, `a tombstone for the dead node's session (records: ${values.join(',')})`)
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.ok(other.get(liveId), 'the live one, written every heartbeat, is still there')
  t.equal(other.get(liveId)?.connected, true)
})

t.test('a claim takes over the holder of an older claim of the same client id, on another store (node) [MQTT-3.1.4-3]', async t => {
  const a = store()
  const b = store()
  t.ok(await a.ready(20_000))
  t.ok(await b.ready(20_000))
  const clientId = unique('claim')
  const old = holder('conn-1', 60)
  await a.claim(clientId, session('conn-1', 60), old)
  const asked = Date.now()
  const next = holder('conn-2', 60)
  await b.claim(clientId, session('conn-2', 60), next)
  await eventually(() => old.takenBy !== undefined, 5000, 'the older holder told')
  t.equal(old.takenBy, 'conn-2')
  t.ok(Date.now() - asked < 1000, `within 1 s (${Date.now() - asked} ms)`)
  t.equal(next.takenBy, undefined, 'the new holder is not taken over by its own claim')
})

t.test('a connection that ends while its claim is being written holds nothing after: no heartbeat writes it as connected', async t => {
  // a client that connects and drops at once (a clean session does not even wait for its claim): the
  // store registered the holder after its end, and its heartbeat wrote it `connected` for good (found by
  // heap snapshots of the mqtt-packets fuzz gateway: 78 MqttSessions of 1,267 fuzzed connections held)
  const s = store()
  t.ok(await s.ready(20_000))
  const clientId = unique('ended-mid-claim')
  let heartbeats = 0
  const h: Holder = { ownerId: 'conn-gone', stored: () => { heartbeats++; return session('conn-gone', 60) }, takenOver () {} }
  const claiming = s.claim(clientId, session('conn-gone', 60), h)
  await s.end(clientId, h, { ...session('conn-gone', 60), connected: false })
  await claiming
  // three heartbeats (300 ms each) and a flush
  await new Promise(resolve => setTimeout(resolve, 1200))
  t.equal(heartbeats, 0, 'the ended holder is never asked for its state again')
  t.equal(s.get(clientId)?.connected, false, 'the session is stored as disconnected, as its end wrote it')
})
