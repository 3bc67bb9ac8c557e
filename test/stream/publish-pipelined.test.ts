// /v1/stream publishes pipelined into the node's publish batcher: many sockets
// publishing at once without waiting for acks each get, in the order they sent,
// acks naming exactly where a plain consumer reads their own records; each
// socket's records are in Kafka in its order; and a bad record (a topic Kafka
// does not have, one too large for its topic) among them fails alone.
import { test } from 'tap'
import { streamApp } from '../harness/stream.ts'
import { Client, type Frame } from '../harness/client.ts'
import { readRecords, unique } from '../helpers.ts'

async function answers (client: Client, count: number): Promise<Frame[]> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const got = client.frames.filter(f => f.op === 'ack' || f.op === 'error')
    if (got.length >= count) return got
    if (Date.now() > deadline) throw new Error(`${got.length} of ${count} answers`)
    await client.next(() => true, 1000, client.frames.length).catch(() => {})
  }
}

test('2,000 publishes from 20 sockets at once: each ack, in sending order, is where its own record is', async t => {
  const topic = unique('pipelined')
  const { app, url, kafka } = await streamApp()
  t.teardown(() => app.close())
  await kafka.ensureTopics([{ topic, partitions: 3 }])
  const SOCKETS = 20
  const EACH = 100
  const clients = await Promise.all(Array.from({ length: SOCKETS }, async () => {
    const client = new Client(`${url}/v1/stream`)
    await client.opened
    t.teardown(() => client.close())
    return client
  }))
  // interleaved: each socket sends its i-th publish in turn, none waits for an ack; a key per socket
  for (let i = 0; i < EACH; i++) {
    for (const [s, client] of clients.entries()) {
      // raw text: the big integer reaches Kafka as the frame's bytes
      client.send(`{"op":"publish","id":"${s}-${i}","topic":"${topic}","key":"socket-${s}","value":{"s":${s},"i":${i},"big":12345678901234567890}}`)
    }
  }
  const all = await Promise.all(clients.map(client => answers(client, EACH)))
  const records = await readRecords(t, topic, SOCKETS * EACH)
  const at = new Map(records.map(r => [`${r.partition}/${r.offset}`, r]))
  for (const [s, frames] of all.entries()) {
    t.equal(frames.filter(f => f.op === 'ack').length, EACH, `socket ${s}: every publish acked`)
    t.same(frames.map(f => f.id), Array.from({ length: EACH }, (_, i) => `${s}-${i}`), `socket ${s}: answers in sending order`)
    let misplaced = 0
    for (const [i, ack] of frames.entries()) {
      const record = at.get(`${ack.partition}/${ack.offset}`)
      // the exact bytes of the JSON text in the frame
      if (record?.value?.toString() !== `{"s":${s},"i":${i},"big":12345678901234567890}` || record.key?.toString() !== `socket-${s}`) misplaced++
    }
    t.equal(misplaced, 0, `socket ${s}: each ack names its own record's partition and offset`)
    const offsets = frames.map(f => BigInt(f.offset as string))
    t.equal(new Set(frames.map(f => f.partition)).size, 1, `socket ${s}: one key, one partition`)
    t.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!), `socket ${s}: its records are in Kafka in the order it sent them`)
  }
  t.equal(records.length, SOCKETS * EACH, 'nothing else was written')
})

test('a publish to a missing topic and one too large, among other sockets\' publishes, fail alone', async t => {
  const topic = unique('pipelined-good')
  const small = unique('pipelined-small')
  const { app, url, kafka } = await streamApp({ limits: { maxInflightPublishes: 200 } })
  t.teardown(() => app.close())
  // 100 kB: a 200 kB record is refused by the broker, and the harness's sockets carry it (1 MiB frames)
  await kafka.ensureTopics([{ topic, partitions: 3 }, { topic: small, partitions: 3, config: { 'max.message.bytes': '100000' } }])
  const clients = await Promise.all(Array.from({ length: 4 }, async () => {
    const client = new Client(`${url}/v1/stream`)
    await client.opened
    t.teardown(() => client.close())
    return client
  }))
  // the node knows both topics before the burst
  await kafka.produce(topic, { value: '0' })
  await kafka.produce(small, { value: '0' })
  const [good1, good2, missing, large] = clients as [Client, Client, Client, Client]
  for (let i = 0; i < 100; i++) {
    good1.send({ op: 'publish', id: `a${i}`, topic, key: `k${i % 7}`, value: i })
    good2.send({ op: 'publish', id: `b${i}`, topic: small, key: `k${i % 5}`, value: i })
    if (i === 20) missing.send({ op: 'publish', id: 'missing', topic: unique('missing'), value: 1 })
    if (i === 40) large.send({ op: 'publish', id: 'large', topic: small, key: 'k1', value: 'x'.repeat(200_000) })
  }
  const [a, b, m, l] = await Promise.all([answers(good1, 100), answers(good2, 100), answers(missing, 1), answers(large, 1)])
  t.match(m[0], { op: 'error', id: 'missing', code: 'UNKNOWN_TOPIC' })
  t.match(l[0], { op: 'error', id: 'large', code: 'TOO_LARGE' })
  t.same(a.filter(f => f.op !== 'ack'), [], 'every publish of the first good socket acked')
  t.same(b.filter(f => f.op !== 'ack'), [], 'and of the second, on the topic the large record was refused on')
  // the producer is healthy afterwards on every partition of both topics
  for (let i = 0; i < 20; i++) large.send({ op: 'publish', id: `after${i}`, topic: small, key: `k${i % 5}`, value: i })
  const after = await answers(large, 21)
  t.same(after.slice(1).filter(f => f.op !== 'ack'), [], 'publishes after the refusals are acked')
  const records = await readRecords(t, small, 1 + 100 + 20)
  const at = new Map(records.map(r => [`${r.partition}/${r.offset}`, r.value?.toString()]))
  for (const ack of [...b, ...after.slice(1)]) {
    const i = String(ack.id).replace(/^(b|after)/, '')
    if (at.get(`${ack.partition}/${ack.offset}`) !== i) t.fail(`${String(ack.id)} is not where its ack says`)
  }
  t.equal(records.length, 121, 'nothing else was written')
})
