// A record whose frame is larger than a socket's send queue bound (256 KiB by
// default) and within Kafka's default message.max.bytes (1 MiB) reaches every
// kind of reader whole: an idle live subscriber, a client resuming with a
// cursor from before it (its own catch-up reader), a consumer-group socket.
// None of them is told `lagging` or closed, and the node answers /healthz
// within 200 ms throughout. The node runs in a process of its own: a stuck
// event loop there shows as missed probes here, not as a stopped test.
import { test, type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { WebSocket } from 'ws'
import { KafkaClient } from '@sluice/kafka'
import { Client, type Frame } from '../harness/client.ts'
import { eventually, kafkaBrokers, unique } from '../helpers.ts'

const NODE = join(import.meta.dirname, 'large-record-node.ts')
// the node's send queue bound: plugins/stream's default
const MAX_QUEUE = 256 * 1024
// ~600 KB of value: over the queue bound by half again, under Kafka's default message.max.bytes (1 048 588)
const PAD = 600_000
// a health probe is a few ms; 200 ms is what a load balancer's check tolerates before it counts a miss
const HEALTHZ_MS = 200

interface Value { n: number, pad?: string }

function big (n: number): string {
  return JSON.stringify({ n, pad: 'x'.repeat(PAD) })
}

function small (n: number): string {
  return JSON.stringify({ n })
}

async function startNode (t: Test): Promise<{ ws: string, http: string }> {
  const child = spawn(process.execPath, [NODE], { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode !== null) return
    child.kill('SIGTERM')
    // a node stuck in a loop never handles SIGTERM
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  })
  const url = await Promise.race([
    once(createInterface({ input: child.stdout }), 'line').then(([line]) => line as string),
    exited.then(([code]) => { throw new Error(`the node exited (${code}) before listening`) })
  ])
  const http = url.replace(/^ws/, 'http')
  // the first request to a fresh process pays for its compilation (100-150 ms seen): not what is measured
  await fetch(`${http}/healthz`)
  return { ws: url, http }
}

async function topicWithClient (t: Test): Promise<{ kafka: KafkaClient, topic: string }> {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'test-large-record' })
  t.teardown(() => kafka.close())
  const topic = unique('large')
  await kafka.ensureTopics([{ topic, partitions: 1 }])
  return { kafka, topic }
}

interface Health { probes: number, missed: number, slowestMs: number }

/** Asks /healthz every 50 ms until stopped (at the latest by the test's end): how many probes, how many got no 200 within HEALTHZ_MS, the slowest. */
function probeHealth (t: Test, http: string): () => Promise<Health> {
  const stopped = new AbortController()
  const result = { probes: 0, missed: 0, slowestMs: 0 }
  const probing = (async () => {
    while (!stopped.signal.aborted) {
      const started = performance.now()
      const ok = await fetch(`${http}/healthz`, { signal: AbortSignal.timeout(HEALTHZ_MS) }).then(res => res.status === 200, () => false)
      result.probes++
      if (!ok) result.missed++
      result.slowestMs = Math.max(result.slowestMs, Math.round(performance.now() - started))
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })()
  const stop = async () => {
    stopped.abort()
    await probing
    return result
  }
  t.teardown(stop)
  return stop
}

/** The message carrying `n`; a `lagging` notice or a close instead of it fails. */
async function received (c: Client, n: number, timeoutMs = 15_000): Promise<Frame> {
  const frame = await c.next(f => f.op === 'lagging' || (f.op === 'message' && (f.value as Value).n === n), timeoutMs)
  if (frame.op !== 'message') throw new Error(`record ${n} did not come; instead: ${JSON.stringify(frame)}`)
  return frame
}

/**
 * Runs `steps` while /healthz is probed, then checks what `c` received. A step
 * that fails (a record that never comes) is reported with the probes, which
 * say whether the node was stuck meanwhile.
 */
async function deliver (t: Test, http: string, c: Client, ns: number[], steps: () => Promise<void>): Promise<void> {
  const stopProbing = probeHealth(t, http)
  const failure = await steps().then(() => undefined, (err: Error) => err)
  const health = await stopProbing()
  t.error(failure, 'each record came')
  const messages = c.messages()
  t.same(messages.map(f => (f.value as Value).n), ns, 'every record, once, in order')
  const large = messages.find(f => (f.value as Value).pad !== undefined)
  t.equal((large?.value as Value | undefined)?.pad?.length, PAD, 'the large record whole')
  t.ok(large !== undefined && Buffer.byteLength(JSON.stringify(large)) > MAX_QUEUE, 'its frame is larger than the send queue bound')
  t.same(c.frames.filter(f => f.op === 'lagging'), [], 'no lagging')
  t.equal(c.ws.readyState, WebSocket.OPEN, 'the socket stays open')
  t.ok(health.probes > 0, `/healthz asked ${health.probes} times`)
  t.equal(health.missed, 0, `/healthz answered every probe within ${HEALTHZ_MS} ms (${health.missed} of ${health.probes} missed; slowest ${health.slowestMs} ms)`)
}

test('an idle live subscriber gets a record larger than its send queue whole, and the live records after it', async t => {
  const node = await startNode(t)
  const { kafka, topic } = await topicWithClient(t)
  const c = new Client(`${node.ws}/v1/stream?topics=${topic}`)
  t.teardown(() => c.close())
  await c.next(f => f.op === 'subscribed')
  await deliver(t, node.http, c, [0, 1, 2], async () => {
    await kafka.produce(topic, { value: small(0) })
    await received(c, 0)
    await kafka.produce(topic, { value: big(1) })
    await received(c, 1)
    await kafka.produce(topic, { value: small(2) })
    await received(c, 2)
  })
})

test('a client resuming from before a large record gets it replayed, then the live records', async t => {
  const node = await startNode(t)
  const { kafka, topic } = await topicWithClient(t)
  const first = await kafka.produce(topic, { value: small(0) })
  await kafka.produce(topic, { value: big(1) })
  await kafka.produce(topic, { value: small(2) })
  const cursor = `${topic}@0:${BigInt(first.offset) + 1n}`

  const c = new Client(`${node.ws}/v1/stream?topics=${topic}&from=${encodeURIComponent(cursor)}`)
  t.teardown(() => c.close())
  await deliver(t, node.http, c, [1, 2, 3], async () => {
    await c.next(f => f.op === 'subscribed')
    await received(c, 1)
    await received(c, 2)
    await kafka.produce(topic, { value: small(3) })
    await received(c, 3)
  })
})

test('a consumer-group socket gets a record larger than its send queue whole, and the records after it', async t => {
  const node = await startNode(t)
  const { kafka, topic } = await topicWithClient(t)
  const group = unique('large')
  const c = new Client(`${node.ws}/v1/stream?topics=${topic}&group=${group}`)
  t.teardown(() => c.close())
  await c.next(f => f.op === 'subscribed')
  // a new group starts at the end of the topic: produce once the member holds the partition
  let groupId: string | undefined
  await eventually(async () => {
    groupId ??= (await kafka.listGroups()).find(g => g.endsWith(`.${group}`))
    return groupId !== undefined && (await kafka.groupMembers(groupId)).length === 1
  }, 30_000, 'the socket is the group\'s member')
  await new Promise(resolve => setTimeout(resolve, 1000))
  await deliver(t, node.http, c, [1, 2], async () => {
    await kafka.produce(topic, { value: big(1) })
    await received(c, 1)
    await kafka.produce(topic, { value: small(2) })
    await received(c, 2)
  })
})
