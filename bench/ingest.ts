// Ingest benchmark: the connector's throughput from a local WebSocket feed into
// Kafka against the bare producer (KafkaClient.produceBatch) writing the same
// records in the same run, their ratio, and the feed-to-Kafka latency.
//
//   bash deploy/local/node.sh bench/ingest.ts
//
// Starts its own broker (one partition per topic, acks=all, idempotent). The
// feed runs in a worker thread, so that its sending does not share the
// connector's event loop; latency is measured from the feed's send() to
// Kafka's acknowledgement, on one clock (timeOrigin + now()). Bounded: a fixed
// number of records per round, a fixed rate and duration for the latency run,
// and a deadline on every phase. Not a test: it prints figures.
import { Worker, isMainThread, parentPort } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { WebSocketServer, type WebSocket } from 'ws'

// 100 000 records per round, 3 rounds each, interleaved: enough for steady
// throughput, bounded to seconds; the median absorbs a noisy neighbour
const RECORDS_PER_ROUND = 100_000
const ROUNDS = 3
const WARMUP_RECORDS = 20_000
// the latency run: 10 000 messages/s for 5 s, below saturation, as a busy exchange feed is
const LATENCY_RATE = 10_000
const LATENCY_SECONDS = 5
// the connector's default request size (FEED_DEFAULTS.batch.maxRecords); the bare producer uses the same
const BATCH = 1000
// no phase may take longer than this: a stuck run fails instead of hanging
const PHASE_DEADLINE_MS = 120_000
// the feed stops writing while 8 MiB wait in its socket, as a server respecting TCP backpressure does
const FEED_HIGH_WATER = 8 * 1024 * 1024
const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD']

const now = () => performance.timeOrigin + performance.now()

/** A trade message of ~80 bytes, keyed by symbol; the same bytes for the connector and the bare producer. */
function message (i: number): string {
  return JSON.stringify({ seq: i, sym: SYMBOLS[i % 3], px: 97_000 + (i % 1000) / 100, qty: 0.0123, side: i % 2 ? 'buy' : 'sell' })
}

type FeedCommand =
  | { cmd: 'flood', count: number, offset: number }
  | { cmd: 'paced', count: number, rate: number, offset: number, times: SharedArrayBuffer }

// ---- the feed (worker thread) ------------------------------------------------
function feedWorker (): void {
  const port = parentPort!
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => {
    port.postMessage({ port: (wss.address() as { port: number }).port })
  })
  let client: WebSocket | undefined
  wss.on('connection', ws => {
    client = ws
    port.postMessage({ connected: true })
  })
  port.on('message', (command: FeedCommand) => {
    const ws = client!
    if (command.cmd === 'flood') {
      let i = 0
      const started = now()
      const step = (): void => {
        if (ws.bufferedAmount > FEED_HIGH_WATER) {
          setTimeout(step, 1)
          return
        }
        const end = Math.min(command.count, i + 1000)
        for (; i < end; i++) ws.send(message(command.offset + i))
        if (i < command.count) setImmediate(step)
        else port.postMessage({ flooded: true, started })
      }
      step()
    } else {
      const times = new Float64Array(command.times)
      // 1 ms ticks: messages leave evenly spread, not in 10 ms clumps
      const perTick = command.rate / 1000
      const started = now()
      let i = 0
      const tick = (): void => {
        const due = Math.min(command.count, Math.floor((now() - started) * perTick) + 1)
        for (; i < due; i++) {
          times[i] = now()
          ws.send(message(command.offset + i))
        }
        if (i < command.count) setTimeout(tick, 1)
        else port.postMessage({ paced: true })
      }
      tick()
    }
  })
}

// ---- the connector and the bare producer (main thread) ----------------------
async function main (): Promise<void> {
  const { KafkaBroker } = await import('@sluice/stack')
  const { KafkaClient } = await import('@sluice/kafka')
  const { loadIngestConfig } = await import('@sluice/ingest/config')
  const { Feed } = await import('@sluice/ingest/feed')

  const log = (line: string) => process.stdout.write(line + '\n')
  const broker = new KafkaBroker()
  const worker = new Worker(new URL(import.meta.url))
  // listened for at once: a worker's message with no listener is lost
  const feedListening = once<{ port: number }>(worker, m => 'port' in m)
  const cleanup = async () => {
    await worker.terminate()
    await broker.destroy()
  }
  try {
    await broker.start()
    const kafka = new KafkaClient({ brokers: broker.brokers, clientId: 'bench-ingest' })
    const bareTopic = 'bench.ingest.bare'
    const connectorTopic = 'bench.ingest.connector'
    await kafka.ensureTopics([{ topic: bareTopic }, { topic: connectorTopic }])

    const feedPort = await feedListening
    const connected = once(worker, m => 'connected' in m)
    const [config] = loadIngestConfig({
      base: {
        kafka: { brokers: broker.brokers },
        feeds: [{
          name: 'bench',
          url: `ws://127.0.0.1:${feedPort.port}/`,
          topic: connectorTopic,
          // the key from the message, as a trade feed is configured: the JSON parse is part of the cost
          key: '/sym',
          // a buffer that holds a round: the measurement is throughput, not the overflow policy
          buffer: { capacity: RECORDS_PER_ROUND, pause: true }
        }]
      }
    }).feeds
    const quiet = { debug () {}, info () {}, warn (o: object, m?: string) { log(`warn: ${m} ${JSON.stringify(o)}`) }, error (o: object, m?: string) { log(`error: ${m} ${JSON.stringify(o)}`) } }
    const feed = new Feed({ config: config!, kafka, logger: quiet })
    let acked = 0
    let onAck: ((batch: Array<{ receivedAt: number }>, at: number) => void) | undefined
    feed.on('produced', (batch: Array<{ receivedAt: number }>) => {
      acked += batch.length
      onAck?.(batch, now())
    })
    feed.start()
    await connected

    const bareRound = async (count: number, offset: number): Promise<number> => {
      const records = Array.from({ length: count }, (_v, i) => {
        const text = message(offset + i)
        return { key: SYMBOLS[(offset + i) % 3]!, value: Buffer.from(text), timestamp: String(Date.now()) }
      })
      const started = now()
      for (let i = 0; i < records.length; i += BATCH) await kafka.produceBatch(bareTopic, records.slice(i, i + BATCH))
      return count / ((now() - started) / 1000)
    }

    const connectorRound = async (count: number, offset: number): Promise<number> => {
      const target = acked + count
      let finished = 0
      const done = new Promise<void>(resolve => {
        onAck = (_batch, at) => {
          if (acked >= target) {
            finished = at
            resolve()
          }
        }
      })
      worker.postMessage({ cmd: 'flood', count, offset } satisfies FeedCommand)
      const { started } = await once<{ started: number }>(worker, m => 'flooded' in m)
      await withDeadline(done, 'connector round')
      onAck = undefined
      return count / ((finished - started) / 1000)
    }

    log(`ingest benchmark: Kafka ${broker.brokers.join(',')}, 1 partition, acks=all, idempotent; ` +
      `${RECORDS_PER_ROUND} records of ~${Buffer.byteLength(message(12345))} B per round, ${ROUNDS} rounds each, ${BATCH} records per produce request`)
    await bareRound(WARMUP_RECORDS, 0)
    await connectorRound(WARMUP_RECORDS, 0)

    const bare: number[] = []
    const connector: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      bare.push(await withDeadline(bareRound(RECORDS_PER_ROUND, round * RECORDS_PER_ROUND), 'bare round'))
      connector.push(await withDeadline(connectorRound(RECORDS_PER_ROUND, round * RECORDS_PER_ROUND), 'connector round'))
    }

    // latency: a steady feed below saturation; every record's send() to its ack
    const count = LATENCY_RATE * LATENCY_SECONDS
    const times = new SharedArrayBuffer(count * 8)
    const sentAt = new Float64Array(times)
    const latencies: number[] = []
    // the two legs: the feed's socket into the connector, and the connector's buffer into Kafka
    const toConnector: number[] = []
    const toKafka: number[] = []
    const first = acked
    const allAcked = new Promise<void>(resolve => {
      onAck = (batch, at) => {
        for (let k = 0; k < batch.length; k++) {
          const sent = sentAt[acked - batch.length + k - first]!
          const received = performance.timeOrigin + batch[k]!.receivedAt
          latencies.push(at - sent)
          toConnector.push(received - sent)
          toKafka.push(at - received)
        }
        if (acked - first >= count) resolve()
      }
    })
    worker.postMessage({ cmd: 'paced', count, rate: LATENCY_RATE, offset: 0, times } satisfies FeedCommand)
    await withDeadline(allAcked, 'latency run')
    onAck = undefined

    const dropped = feed.stats.droppedOverflow + feed.stats.droppedTooLarge
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US')
    const pct = (p: number, xs = latencies) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!
    log(`bare producer (KafkaClient.produceBatch):   median ${fmt(med(bare))} records/s   rounds: ${bare.map(fmt).join(', ')}`)
    log(`connector (WebSocket feed -> Kafka):       median ${fmt(med(connector))} records/s   rounds: ${connector.map(fmt).join(', ')}`)
    log(`ratio connector / bare: ${(med(connector) / med(bare)).toFixed(2)} (target >= 0.80)`)
    log(`feed-to-Kafka latency at ${fmt(LATENCY_RATE)} messages/s for ${LATENCY_SECONDS} s (${fmt(latencies.length)} records): ` +
      `p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`)
    log(`  of which feed socket -> connector p99 ${pct(0.99, toConnector).toFixed(1)} ms, connector buffer -> Kafka ack p99 ${pct(0.99, toKafka).toFixed(1)} ms`)
    log(`dropped by the connector: ${dropped}; paused ${feed.stats.pauses} times`)
    await feed.stop(10_000)
    await kafka.close()
  } finally {
    await cleanup()
  }
}

function once<T> (worker: Worker, match: (m: Record<string, unknown>) => boolean): Promise<T> {
  return withDeadline(new Promise<T>(resolve => {
    const listener = (m: Record<string, unknown>) => {
      if (!match(m)) return
      worker.off('message', listener)
      resolve(m as T)
    }
    worker.on('message', listener)
  }), 'the feed worker')
}

function withDeadline<T> (promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${PHASE_DEADLINE_MS} ms`)), PHASE_DEADLINE_MS) })
  ]).finally(() => clearTimeout(timer))
}

if (isMainThread) {
  main().then(() => process.exit(0), err => {
    process.stderr.write(`bench/ingest: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
} else {
  feedWorker()
}
