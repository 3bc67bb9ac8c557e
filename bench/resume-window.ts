// Resumes served from the hub's window of recent records (issue 14), against
// resumes whose gap is older than the window (a group-less catch-up reader) and
// against a bare reader of the same partitions, in the same run:
//   1. one resume inside the window, one after another: subscribed -> first replayed record
//      (target p99 <= 20 ms; the replay is written on the turn after the subscribed frame, so the
//      two usually arrive in one read), open -> first and -> last of the gap;
//   2. the same outside the window (target <= 100 ms);
//   3. a bare KafkaClient.reader() from the same cursor: start -> first record;
//   4. 50 and 500 resumes at once inside the window: subscribed -> first replayed record, all done.
// The gateway is the test harness's app (test/harness/stream.ts: hub, /v1/stream, dev identity,
// no auth, policy or rate limits) in this process, the clients too; loopback; bounded waits.
//
//   bash deploy/local/node.sh bench/resume-window.ts [--runs 20] [--brokers host:port]
//
// Without --brokers it starts a broker of its own with Kafka's default group settings
// (~10-20 s); the window's path sends Kafka nothing, so the broker's settings only touch 2 and 3.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { KafkaClient } from '@sluice/kafka'
import { KafkaBroker } from '@sluice/stack'
import { allowAll, streamApp } from '../test/harness/stream.ts'
import { Client } from '../test/harness/client.ts'

const PARTITIONS = 3
// per partition: 150 before the node reads the topic (outside the window), 300 after (inside it, ~200 KiB with frames)
const HISTORY = 450
const LIVE = 900
const WAIT_MS = 30_000

function pct (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

function summary (values: number[]): string {
  const r = (n: number) => n < 10 ? n.toFixed(2) : String(Math.round(n))
  return `p50 ${r(pct(values, 50))} ms, p99 ${r(pct(values, 99))} ms, max ${r(Math.max(...values))} (n=${values.length})`
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, brokers: { type: 'string' } } })
  const runs = Number(values.runs)
  let broker: KafkaBroker | undefined
  let brokers: string[]
  if (values.brokers) {
    brokers = values.brokers.split(',')
  } else {
    broker = new KafkaBroker()
    await broker.start()
    brokers = broker.brokers
  }
  const run = randomBytes(3).toString('hex')
  const setup = new KafkaClient({ brokers, clientId: 'bench-setup' })
  const gw = await streamApp({ access: allowAll(), brokers, nodeId: `bench-${run}` })
  const out: Record<string, string | number> = {}
  const sockets: Client[] = []
  try {
    const topic = `bench.window.${run}`
    await setup.ensureTopics([{ topic, partitions: PARTITIONS }], 120_000)
    const produce = (from: number, count: number) => setup.produceBatch(topic, Array.from({ length: count }, (_v, i) => ({ value: JSON.stringify({ n: from + i }), partition: (from + i) % PARTITIONS })))
    await produce(0, HISTORY)
    // the node starts reading here: what follows is in its window
    const holder = new Client(`${gw.url}/v1/stream?topics=${topic}`)
    sockets.push(holder)
    await holder.next(f => f.op === 'subscribed', WAIT_MS)
    await produce(HISTORY, LIVE)
    await holder.waitMessages(LIVE, WAIT_MS)
    const perPartition = (n: number) => Array.from({ length: PARTITIONS }, (_v, p) => `${p}:${n}`).join(',')
    // inside: the middle of what the node read; outside: the middle of what came before
    const inside = `${topic}@${perPartition(HISTORY / PARTITIONS + LIVE / PARTITIONS / 2)}`
    const outside = `${topic}@${perPartition(HISTORY / PARTITIONS / 2)}`
    const gapOf = (cursor: string) => cursor === inside ? LIVE / 2 : (HISTORY / 2 + LIVE)

    const resume = async (cursor: string): Promise<{ subToFirst: number, openToFirst: number, openToLast: number }> => {
      const t0 = performance.now()
      const c = new Client(`${gw.url}/v1/stream?topics=${topic}&from=${encodeURIComponent(cursor)}`)
      const times: number[] = []
      c.ws.on('message', () => { times.push(performance.now()) })
      await c.next(f => f.op === 'message', WAIT_MS)
      const subscribed = c.frames.findIndex(f => f.op === 'subscribed')
      const first = c.frames.findIndex(f => f.op === 'message')
      await c.waitMessages(gapOf(cursor), WAIT_MS)
      const t3 = performance.now()
      c.ws.terminate()
      return { subToFirst: times[first]! - times[subscribed]!, openToFirst: times[first]! - t0, openToLast: t3 - t0 }
    }
    const readers0 = gw.app.hub.stats.catchUps
    const replays0 = gw.app.hub.stats.windowReplays
    const insideRuns = []
    for (let i = 0; i < runs; i++) insideRuns.push(await resume(inside))
    out['1. inside the window: subscribed -> first replayed'] = summary(insideRuns.map(r => r.subToFirst))
    out['1. inside the window: open -> first replayed'] = summary(insideRuns.map(r => r.openToFirst))
    out[`1. inside the window: open -> last of ${LIVE / 2} replayed`] = summary(insideRuns.map(r => r.openToLast))
    out['1. Kafka readers started for them'] = gw.app.hub.stats.catchUps - readers0
    out['1. served from the window'] = gw.app.hub.stats.windowReplays - replays0

    const outsideRuns = []
    for (let i = 0; i < runs; i++) outsideRuns.push(await resume(outside))
    out['2. outside the window: subscribed -> first replayed'] = summary(outsideRuns.map(r => r.subToFirst))
    out['2. outside the window: open -> first replayed'] = summary(outsideRuns.map(r => r.openToFirst))
    out[`2. outside the window: open -> last of ${HISTORY / 2 + LIVE} replayed`] = summary(outsideRuns.map(r => r.openToLast))

    const bare: number[] = []
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now()
      let first = 0
      await new Promise<void>((resolve, reject) => {
        const reader = setup.reader({
          topic,
          onBatch: () => {
            if (first === 0) {
              first = performance.now()
              resolve()
              setImmediate(() => { reader.stop().catch(() => {}) })
            }
          },
          onError: reject
        })
        reader.start(new Map(Array.from({ length: PARTITIONS }, (_v, p) => [p, BigInt(HISTORY / PARTITIONS + LIVE / PARTITIONS / 2)]))).catch(reject)
      })
      bare.push(first - t0)
    }
    out['3. bare reader from the inside cursor: start -> first record'] = summary(bare)

    for (const n of [50, 500]) {
      const t = performance.now()
      const burst = await Promise.all(Array.from({ length: n }, () => resume(inside)))
      out[`4. ${n} resumes at once inside the window: subscribed -> first replayed`] = summary(burst.map(r => r.subToFirst))
      out[`4. ${n} resumes at once inside the window: open -> first replayed`] = summary(burst.map(r => r.openToFirst))
      out[`4. ${n} resumes at once: all done (ms)`] = Math.round(performance.now() - t)
    }
    out['window bytes on the node'] = gw.app.hub.windows.bytes
  } finally {
    for (const c of sockets) c.ws.terminate()
    await gw.app.close()
    await setup.close()
    await broker?.destroy()
  }
  process.stdout.write(`\nresume-window bench: node ${process.version}, broker ${brokers.join(',')}${broker ? ' (own, Kafka\'s default group settings)' : ''}, ${runs} runs\n`)
  for (const [k, v] of Object.entries(out)) process.stdout.write(`${k}: ${v}\n`)
}

main().catch(err => {
  process.stderr.write(`[bench] ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
