// First-record latencies of the gateway's hub (issue 14), on a broker with Kafka's
// default group settings (group.initial.rebalance.delay.ms 3 s), where a hub that
// joins a consumer group per topic and per resume waits >= 3 s for each:
//   1. first subscriber of a topic: socket open -> first live record (the record is
//      produced once `subscribed` arrives), and produce -> delivery;
//   2. one resume on a topic the node already reads: subscribed -> first replayed record;
//   3. one cold resume (a topic the node does not read yet): the same;
//   4. 50 resumes at once: p50 / p99 of subscribed -> first replayed record;
//   5. N topics x 1 subscriber: subscribe all, the node's broker connections, groups left on the broker.
// The gateway is the test harness's app (test/harness/stream.ts: hub, /v1/stream, dev identity,
// no auth, policy or rate limits) in this process, the clients too; loopback; bounded waits.
//
//   bash deploy/local/node.sh bench/first-record.ts [--runs 10] [--topics 200] [--brokers host:port] [--idle 5] [--profile idle.cpuprofile]
//
// --idle sets 5.'s idle seconds: the reader re-reads every topic's metadata every 30 s, so
// a window of 30 s or more counts that in proportion (5 s catches it or not).
// --profile writes a CPU profile of 5.'s idle seconds (open it in Chrome's DevTools): what an idle node
// spends its CPU on; the sampling adds to the idle CPU figure, so take that from a run without it.
// --expose-gc (a node flag, before the script) makes the RSS figure leave out garbage.
//
// Without --brokers it starts a broker of its own with Kafka's default group settings
// (KafkaBroker(), ~10-20 s). With --brokers, that broker's
// settings are what is measured (comparing two trees on one broker: start it once, pass it to both).
// The topics a run creates stay on a broker passed with --brokers: --topics 1000 leaves 1,000+ a
// run, and the shared dev broker ran out of its heap at ~12,000 partitions (512 MiB then, 1 GiB since 1c6477c).
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { parseArgs } from 'node:util'
import { KafkaClient } from '@sluice/kafka'
import { KafkaBroker } from '@sluice/stack'
import { allowAll, streamApp } from '../test/harness/stream.ts'
import { Client } from '../test/harness/client.ts'
import { connectionsTo } from '../test/helpers.ts'

const PARTITIONS = 3
// 300 per partition; a resume starts at 150 of each: 450 replayed
const RESUME_RECORDS = 900
const CONCURRENT_RESUMES = 50
const WAIT_MS = 30_000

function pct (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

function summary (values: number[]): string {
  const r = (n: number) => Math.round(n)
  return `p50 ${r(pct(values, 50))} ms, p99 ${r(pct(values, 99))} ms, min ${r(Math.min(...values))}, max ${r(Math.max(...values))} (n=${values.length})`
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, topics: { type: 'string', default: '200' }, brokers: { type: 'string' }, profile: { type: 'string' }, idle: { type: 'string', default: '5' } } })
  const runs = Number(values.runs)
  const topicCount = Number(values.topics)
  const idleMs = Number(values.idle) * 1000
  let broker: KafkaBroker | undefined
  let brokers: string[]
  if (values.brokers) {
    brokers = values.brokers.split(',')
  } else {
    broker = new KafkaBroker()
    const t = Date.now()
    await broker.start()
    brokers = broker.brokers
    process.stderr.write(`[bench] broker ${brokers[0]} (Kafka's default group settings) ready in ${Date.now() - t} ms\n`)
  }
  const port = Number(brokers[0]!.split(':').pop())
  const run = randomBytes(3).toString('hex')
  const setup = new KafkaClient({ brokers, clientId: 'bench-setup' })
  const gw = await streamApp({ access: allowAll(), brokers, nodeId: `bench-${run}` })
  const out: Record<string, string | number> = {}
  const first = Array.from({ length: runs }, (_v, i) => `bench.first.${run}.${i}`)
  const cold = Array.from({ length: runs }, (_v, i) => `bench.cold.${run}.${i}`)
  const warm = `bench.resume.${run}`
  const burst = `bench.burst.${run}`
  const many = Array.from({ length: topicCount }, (_v, i) => `bench.many.${run}.${i}`)
  try {
    await setup.ensureTopics([...first, ...cold, warm, burst].map(topic => ({ topic, partitions: PARTITIONS })), 120_000)
    await setup.ensureTopics(many.map(topic => ({ topic, partitions: 1 })), 300_000)
    for (const topic of [warm, burst, ...cold]) {
      await setup.produceBatch(topic, Array.from({ length: RESUME_RECORDS }, (_v, n) => ({ value: JSON.stringify({ n }), partition: n % PARTITIONS })))
    }
    const groupsBefore = new Set(await setup.listGroups())
    const cursor = (topic: string) => encodeURIComponent(`${topic}@` + Array.from({ length: PARTITIONS }, (_v, p) => `${p}:${RESUME_RECORDS / PARTITIONS / 2}`).join(','))

    // 1. first subscriber of a topic
    const openToFirst: number[] = []
    const produceToDelivery: number[] = []
    const openToSubscribed: number[] = []
    for (const topic of first) {
      const t0 = performance.now()
      const c = new Client(`${gw.url}/v1/stream?topics=${topic}`)
      await c.next(f => f.op === 'subscribed', WAIT_MS)
      const t1 = performance.now()
      await setup.produce(topic, { value: JSON.stringify({ n: 0 }), partition: 0 })
      const t2 = performance.now()
      await c.next(f => f.op === 'message', WAIT_MS)
      const t3 = performance.now()
      openToSubscribed.push(t1 - t0)
      produceToDelivery.push(t3 - t2)
      openToFirst.push(t3 - t0)
      c.ws.terminate()
    }
    out['1. first subscriber: open -> first live record'] = summary(openToFirst)
    out['1. first subscriber: open -> subscribed'] = summary(openToSubscribed)
    out['1. first subscriber: produce acked -> delivered'] = summary(produceToDelivery)

    // 2. resume on a topic the node reads (an idle subscriber keeps its live feed)
    const holder = new Client(`${gw.url}/v1/stream?topics=${warm}`)
    await holder.next(f => f.op === 'subscribed', WAIT_MS)
    const resume = async (topic: string): Promise<{ subToFirst: number, openToLast: number }> => {
      const t0 = performance.now()
      const c = new Client(`${gw.url}/v1/stream?topics=${topic}&from=${cursor(topic)}`)
      await c.next(f => f.op === 'subscribed', WAIT_MS)
      const t1 = performance.now()
      await c.next(f => f.op === 'message', WAIT_MS)
      const t2 = performance.now()
      await c.waitMessages(RESUME_RECORDS / 2, WAIT_MS)
      const t3 = performance.now()
      c.ws.terminate()
      return { subToFirst: t2 - t1, openToLast: t3 - t0 }
    }
    const warmRuns = []
    for (let i = 0; i < runs; i++) warmRuns.push(await resume(warm))
    out['2. resume (topic read on the node): subscribed -> first replayed'] = summary(warmRuns.map(r => r.subToFirst))
    out['2. resume: open -> last of 450 replayed'] = summary(warmRuns.map(r => r.openToLast))

    // 3. cold resume: the node does not read the topic yet
    const coldRuns = []
    for (const topic of cold) coldRuns.push(await resume(topic))
    out['3. cold resume: subscribed -> first replayed'] = summary(coldRuns.map(r => r.subToFirst))
    out['3. cold resume: open -> last of 450 replayed'] = summary(coldRuns.map(r => r.openToLast))

    // 4. 50 resumes at once, on a topic the node reads
    const burstHolder = new Client(`${gw.url}/v1/stream?topics=${burst}`)
    await burstHolder.next(f => f.op === 'subscribed', WAIT_MS)
    const t = performance.now()
    const burstRuns = await Promise.all(Array.from({ length: CONCURRENT_RESUMES }, () => resume(burst)))
    out['4. 50 resumes at once: subscribed -> first replayed'] = summary(burstRuns.map(r => r.subToFirst))
    out['4. 50 resumes at once: all 50 done (ms)'] = Math.round(performance.now() - t)

    // 5. many topics x 1 subscriber (one socket each), all opened at once
    const before = connectionsTo(port)
    // RSS the topics add: after a GC before and after, so garbage of 1-4 does not count
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const rss0 = process.memoryUsage().rss
    const t5 = performance.now()
    const sockets = many.map(topic => new Client(`${gw.url}/v1/stream?topics=${topic}`))
    await Promise.all(sockets.map(c => c.next(f => f.op === 'subscribed', 120_000)))
    out[`5. ${topicCount} topics x 1 subscriber: all subscribed (ms)`] = Math.round(performance.now() - t5)
    out['5. broker connections the hub added'] = connectionsTo(port) - before
    out['5. broker connections of the process (gateway and the setup client)'] = connectionsTo(port)
    out['5. hub live readers'] = gw.app.hub.consumers
    // idle: the topics' live readers parked, nothing produced (kafkajs: a heartbeat and a 5 s fetch per topic)
    await new Promise(resolve => setTimeout(resolve, 1000))
    gc?.()
    const rss = process.memoryUsage().rss - rss0
    out[`5. RSS added by ${topicCount} topics, their readers, sockets and clients (KiB per topic${gc ? '' : ', without --expose-gc'})`] = (rss / 1024 / topicCount).toFixed(1)
    let session: Session | undefined
    if (values.profile) {
      session = new Session()
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.start')
    }
    const cpu0 = process.cpuUsage()
    const elu0 = performance.eventLoopUtilization()
    const requests0 = gw.kafka.readerRequests
    await new Promise(resolve => setTimeout(resolve, idleMs))
    const cpu = process.cpuUsage(cpu0)
    const elu = performance.eventLoopUtilization(elu0)
    const requests = gw.kafka.readerRequests
    if (session && values.profile) {
      const { profile } = await session.post('Profiler.stop')
      await writeFile(values.profile, JSON.stringify(profile))
      session.disconnect()
    }
    out[`5. fetch requests while idle (main, start lane, over ${idleMs / 1000} s)`] = `${requests.main - requests0.main}, ${requests.lane - requests0.lane}`
    out[`5. process CPU while idle, ${topicCount} topics read (% of a core over ${idleMs / 1000} s)`] = ((cpu.user + cpu.system) / 1000 / idleMs * 100).toFixed(1)
    out['5. of which user / system (ms)'] = `${Math.round(cpu.user / 1000)} / ${Math.round(cpu.system / 1000)}`
    // the main thread's share (JavaScript and its I/O callbacks); the rest is V8's and libuv's helper threads
    out['5. event loop busy while idle (% of the time)'] = (elu.utilization * 100).toFixed(1)
    const groups = (await setup.listGroups()).filter(g => !groupsBefore.has(g))
    out['groups created on the broker during 1-5'] = groups.length
    for (const c of [...sockets, holder, burstHolder]) c.ws.terminate()
  } finally {
    await gw.app.close()
    // on a shared broker (--brokers) the run's topics go with it: a broker keeps files open per partition
    if (!broker) await setup.deleteTopics([...first, ...cold, warm, burst, ...many], 120_000).catch(err => process.stderr.write(`[bench] deleting the run's topics: ${String(err)}\n`))
    await setup.close()
    await broker?.destroy()
  }
  process.stdout.write(`\nfirst-record bench: node ${process.version}, broker ${brokers.join(',')}${broker ? ' (own, Kafka\'s default group settings)' : ''}, ${runs} runs\n`)
  for (const [k, v] of Object.entries(out)) process.stdout.write(`${k}: ${v}\n`)
}

main().catch(err => {
  process.stderr.write(`[bench] ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
