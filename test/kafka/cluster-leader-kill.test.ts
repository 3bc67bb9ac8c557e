// A partition's leader is killed (SIGKILL) on a three-node cluster (replication
// factor 3, min.insync.replicas 2, Kafka's default group settings) while the
// gateway fans a topic out to 200 sockets, and while 50 sockets resume with
// their cursors; a publisher writes through the gateway at a steady rate
// before, during and after. Every subscriber must receive every record of
// every partition exactly once and in order, and every acked publish, record
// by record. This file starts its own cluster (test/kafka/cluster-harness.ts).
import t, { type Test } from 'tap'
import { formatPositions } from '@sluice/hub'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client, type Frame } from '../harness/client.ts'
import { eventually, unique } from '../helpers.ts'
import { deliveryFaults, Publisher, startKafkaCluster, startOf, waitForPartitions, type PartitionState } from './cluster-harness.ts'

const PARTITIONS = 3
// 40 publishes/s: enough that every phase (a few seconds each) has records on every partition,
// little enough that 200 sockets' frames, parsed in this process, leave the two cores to the cluster
const RATE = 40
// a phase's length: ~80 records at 40/s, ~27 per partition
const PHASE_MS = 2000
// the controller fences a dead broker after broker.session.timeout.ms (9 s, Kafka's default) and elects
// a leader from the in-sync replicas then: 60 s is far past that on a loaded machine
const FAILOVER_TIMEOUT_MS = 60_000

const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms))

const { cluster, startMs } = await startKafkaCluster(t)
t.comment(`three-node cluster ready in ${startMs} ms`)

const allInSync = (states: PartitionState[]) => states.length === PARTITIONS && states.every(p => p.leader >= 0 && p.isr.length === 3)

async function topicEnd (kafka: { topicOffsets (topic: string): Promise<Array<{ partition: number, high: string }>> }, topic: string): Promise<Map<number, bigint>> {
  return new Map((await kafka.topicOffsets(topic)).map(o => [o.partition, BigInt(o.high)]))
}

function total (start: Map<number, bigint>, end: Map<number, bigint>): number {
  let sum = 0n
  for (const [p, high] of end) sum += high - (start.get(p) ?? 0n)
  return Number(sum)
}

/**
 * Kills the leader of partition 0 and starts it again: the publisher's phase is 'during' from the
 * kill until a new leader is elected and `whileElected` has run ('after' from then on, while the
 * node comes back). `whileDown` runs right after the kill. The restart goes on in the background
 * (~10-20 s of JVM start here): the next kill waits for every replica to be in sync again.
 */
async function killLeader (publisher: Publisher, topic: string, whileDown: () => Promise<void>, whileElected: () => Promise<void>) {
  const before = await waitForPartitions(cluster.brokers, topic, allInSync, FAILOVER_TIMEOUT_MS, 'every replica in sync before the kill')
  const victim = before[0]!.leader
  publisher.phase = 'during'
  const killedAt = Date.now()
  await cluster.node(victim).kill()
  const down = whileDown()
  const elected = await waitForPartitions(cluster.brokers, topic, s => s[0]!.leader >= 0 && s[0]!.leader !== victim, FAILOVER_TIMEOUT_MS, `a new leader of partition 0 after node ${victim}`)
  const electedMs = Date.now() - killedAt
  await down
  await whileElected()
  publisher.phase = 'after'
  const back = { ms: 0 }
  // a start cut short by the file's end (teardown kills the node) is no failure of this file
  cluster.node(victim).start().then(() => { back.ms = Date.now() - killedAt }, () => {})
  return { victim, newLeader: elected[0]!.leader, electedMs, back }
}

/** Checks the publisher's answers and every subscriber's deliveries; `received` gives each one's message frames. */
async function checkDeliveries (t: Test, publisher: Publisher, end: Map<number, bigint>, subscribers: Array<{ start: Map<number, bigint>, received: () => Frame[] }>): Promise<void> {
  const acked = publisher.acked()
  t.ok(publisher.acked('before').length > 0, `publishes acked before the kill (${publisher.acked('before').length})`)
  t.ok(publisher.acked('during').length > 0, `publishes acked during the failover (${publisher.acked('during').length})`)
  t.ok(publisher.acked('after').length > 0, `publishes acked after it (${publisher.acked('after').length})`)
  t.equal(new Set(acked.map(p => p.at)).size, acked.length, 'no two publishes acked at the same partition and offset')
  const written = total(new Map(), end)
  t.ok(written >= acked.length, `the topic holds every acked publish (${written} records, ${acked.length} acked)`)
  // bounded wait for the stragglers, then the check itself says what is missing
  await eventually(() => subscribers.every(s => s.received().length >= total(s.start, end)), 60_000, 'every subscriber has every record').catch(() => {})
  await sleep(500)
  const faulty: string[] = []
  for (const [i, s] of subscribers.entries()) {
    const faults = deliveryFaults(s.received(), s.start, end, acked)
    if (faults.length > 0) faulty.push(`#${i}: ${faults.join('; ')}`)
  }
  t.same(faulty.slice(0, 5), [], `every subscriber received every record exactly once, in order per partition, and every acked publish (${faulty.length} of ${subscribers.length} did not)`)
}

/**
 * No subscription refused (1013) or cut short (`lagging`): the deliveries above hold either way,
 * because the subscribers do what the protocol asks, but a node serving the stream should need
 * neither. Before the hub read group-less (3f36d39) this failed on kafkajs's "Consumer group was
 * not initialized, consumer#run must be called first" (a first join on a fresh cluster, a catch-up
 * reader's join: 200 of 200 first subscriptions, 67 of 200 resumes in one run); on the group-less
 * hub, resumes reaching a node whose feed was not running were refused for the whole election
 * (the reader's ListOffsets gave up after 1 s, the upgrade's topic list failed: 250-350 refusals a run).
 */
function noRefusals (t: Test, subscribers: Subscriber[]): void {
  const refusals = subscribers.flatMap(s => s.refusals)
  const lagging = subscribers.flatMap(s => s.lagging)
  const reasons = [...new Set(refusals.map(r => r.replace(/127\.0\.0\.1:\d+/g, '<node>')))].join(' | ')
  t.same({ refused: refusals.length, lagging: lagging.length }, { refused: 0, lagging: 0 },
    `no subscription refused or cut short${refusals.length ? `; ${refusals.length} refused: ${reasons}` : ''}${lagging.length ? `; ${lagging.length} lagging (dropped ${lagging.reduce((n, f) => n + Number(f.dropped), 0)})` : ''}`)
}

t.test('a partition leader killed during fan-out to 200 sockets: every subscriber receives every record exactly once, in order per partition, and every acked publish', async t => {
  const topic = unique('leader-kill.fanout')
  const { app, url, kafka } = await streamApp({ access: allowAll(), brokers: cluster.brokers, nodeId: 'fanout' })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])

  const subscribers = Array.from({ length: 200 }, () => new Subscriber(url, topic))
  t.teardown(() => { for (const s of subscribers) s.client?.ws.terminate() })
  await Promise.all(subscribers.map(s => s.connect()))

  const publisher = new Publisher(url, topic)
  t.teardown(() => publisher.client.ws.terminate())
  await publisher.start(RATE)
  // the phase before the kill counts from the first ack: the gateway's producer connects on the first publish
  await eventually(() => publisher.acked().length > 0, 30_000, 'a first publish acked')
  await sleep(PHASE_MS)
  const kill = await killLeader(publisher, topic, async () => {}, () => sleep(PHASE_MS))
  await sleep(PHASE_MS)
  await publisher.stop()
  const end = await topicEnd(kafka, topic)

  await checkDeliveries(t, publisher, end, subscribers)
  t.equal(subscribers.filter(s => s.client!.ws.readyState !== s.client!.ws.OPEN).length, 0, 'every socket stayed open through the kill')
  noRefusals(t, subscribers)
  t.comment(`node ${kill.victim} (leader of partition 0) killed: node ${kill.newLeader} leads after ${kill.electedMs} ms, node ${kill.victim} ${kill.back.ms ? `back after ${kill.back.ms} ms` : 'still starting'}; ` +
    `${publisher.publishes.length} publishes (${publisher.acked().length} acked, ${publisher.refused().length} refused: ${[...new Set(publisher.refused().map(p => p.refused))].join(',') || '-'}; ${publisher.skipped} ticks skipped at the in-flight bound), ` +
    `${total(new Map(), end)} records, ${total(new Map(), end) * subscribers.length} deliveries checked`)
})

/**
 * A socket that can disconnect and reconnect with the cursor of what it received (`from=<cursor>`),
 * keeping everything it received over all its connections. It does what the protocol asks of a
 * client: a subscription refused with 1013 (try later) is tried again half a second later, and a
 * `lagging` notice (the subscription ended) is answered by subscribing again from its `resume`
 * cursor on the same socket. Each refusal and notice is kept.
 */
class Subscriber {
  readonly #url: string
  readonly #topic: string
  readonly messages: Frame[] = []
  start = new Map<number, bigint>()
  cursor: Map<number, bigint> | undefined
  client: Client | undefined
  resumes = 0
  /** close reasons of the 1013 refusals */
  readonly refusals: string[] = []
  readonly lagging: Frame[] = []

  constructor (url: string, topic: string) {
    this.#url = url
    this.#topic = topic
  }

  async connect (timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const from = this.cursor ? `&from=${encodeURIComponent(formatPositions(this.#topic, this.cursor))}` : ''
      const client = this.client = new Client(`${this.#url}/v1/stream?topics=${this.#topic}${from}`)
      client.ws.on('message', data => {
        const text = data.toString()
        if (!text.includes('"lagging"')) return
        const frame = JSON.parse(text) as Frame
        if (frame.op !== 'lagging') return
        this.lagging.push(frame)
        client.send({ op: 'subscribe', id: `again-${this.lagging.length}`, topics: [this.#topic], from: frame.resume })
      })
      try {
        const subscribed = await client.next(f => f.op === 'subscribed', Math.max(1, deadline - Date.now()))
        if (!this.cursor) {
          this.start = startOf(subscribed, this.#topic)
          this.cursor = new Map(this.start)
        }
        return
      } catch (err) {
        const closed = client.ws.readyState === client.ws.CLOSED ? await client.closed : undefined
        if (closed?.code !== 1013 || Date.now() > deadline) throw err
        this.refusals.push(closed.reason)
        this.#keep(client)
        await sleep(500)
      }
    }
  }

  #keep (client: Client): void {
    for (const m of client.messages(this.#topic)) {
      this.messages.push(m)
      this.cursor?.set(m.partition as number, BigInt(m.offset as string) + 1n)
    }
  }

  /**
   * Drops the connection (no close handshake) and reconnects, `awayMs` later, from the last frame
   * received on each partition.
   */
  async resume (awayMs = 0): Promise<void> {
    const client = this.client!
    client.ws.terminate()
    await client.closed
    this.#keep(client)
    this.resumes++
    if (awayMs > 0) await sleep(awayMs)
    await this.connect()
  }

  received (): Frame[] {
    return [...this.messages, ...(this.client?.messages(this.#topic) ?? [])]
  }
}

t.test('a partition leader killed during 50 resumes: every resuming socket receives every record exactly once, in order per partition, and every acked publish', async t => {
  const topic = unique('leader-kill.resume')
  const { app, url, kafka } = await streamApp({ access: allowAll(), brokers: cluster.brokers, nodeId: 'resume' })
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: PARTITIONS }])

  const resumers = Array.from({ length: 50 }, () => new Subscriber(url, topic))
  t.teardown(() => { for (const r of resumers) r.client?.ws.terminate() })
  await Promise.all(resumers.map(r => r.connect()))

  const publisher = new Publisher(url, topic)
  t.teardown(() => publisher.client.ws.terminate())
  await publisher.start(RATE)
  // the phase before the kill counts from the first ack: the gateway's producer connects on the first publish
  await eventually(() => publisher.acked().length > 0, 30_000, 'a first publish acked')
  const rounds: number[] = []
  const round = async (awayMs = 0) => {
    const started = Date.now()
    await Promise.all(resumers.map(r => r.resume(awayMs)))
    rounds.push(Date.now() - started)
  }
  await sleep(PHASE_MS)
  await round()
  await sleep(PHASE_MS)
  // 50 resumes the moment the leader dies (their gaps include partition 0's), and 50 more once another leads it;
  // the first ones come back after the node's grace (200 ms in streamApp) has stopped the topic's feed, as
  // clients of a drained node arrive at one that does not carry the topic yet. 'During' lasts a phase past
  // the election: publishes sent while no node led partition 0 mostly time out
  const kill = await killLeader(publisher, topic, () => round(500), async () => { await round(); await sleep(PHASE_MS) })
  await sleep(PHASE_MS)
  await round()
  await sleep(PHASE_MS)
  await publisher.stop()
  const end = await topicEnd(kafka, topic)

  await checkDeliveries(t, publisher, end, resumers)
  t.equal(resumers.reduce((n, r) => n + r.resumes, 0), 50 * rounds.length, 'every socket resumed in every round')
  noRefusals(t, resumers)
  t.comment(`node ${kill.victim} (leader of partition 0) killed: node ${kill.newLeader} leads after ${kill.electedMs} ms, node ${kill.victim} ${kill.back.ms ? `back after ${kill.back.ms} ms` : 'still starting'}; ` +
    `${rounds.length} rounds of 50 resumes, each round subscribed in ${rounds.join(', ')} ms; ` +
    `${publisher.publishes.length} publishes (${publisher.acked().length} acked, ${publisher.refused().length} refused: ${[...new Set(publisher.refused().map(p => p.refused))].join(',') || '-'}; ${publisher.skipped} ticks skipped), ` +
    `${total(new Map(), end)} records, ${total(new Map(), end) * resumers.length} deliveries checked`)
})
