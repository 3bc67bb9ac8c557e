// What one publish costs the session in promises: at the maximum of
// bench/publish.ts their reactions were ~8 % of the gateway's busy CPU when
// the publish path chained ~15 per publish (session.ts #enqueuePublish says
// how it avoids them). Counted with an async hook around frames whose Kafka
// is the fake one (one promise per produce, the batcher's in the gateway).
import { test } from 'tap'
import { createHook } from 'node:async_hooks'
import { settle, streamSession } from './fake-session.ts'

test('a publish through the session, read, produced and acked, makes at most 3 promises of its own', async t => {
  const { socket, kafka } = streamSession({ limits: { maxInflightPublishes: 1000 } })
  const frames = 200
  // warm: the first frame of a session may build what later ones reuse
  socket.receive({ op: 'publish', id: 'warm', topic: 'ok.a', value: 1 })
  await settle()
  kafka.pending.shift()!.ack(0)
  await settle()
  let promises = 0
  const hook = createHook({ init (_id, type) { if (type === 'PROMISE') promises++ } })
  hook.enable()
  for (let i = 0; i < frames; i++) socket.receive({ op: 'publish', id: `p${i}`, topic: 'ok.a', value: { n: i } })
  for (const [i, pending] of kafka.pending.entries()) pending.ack(i + 1)
  hook.disable()
  const counted = promises
  await settle()
  t.equal(socket.sent.length, frames + 1, 'every publish acked')
  t.same(socket.sent.at(-1), { op: 'ack', id: `p${frames - 1}`, topic: 'ok.a', partition: 0, offset: String(frames) })
  // the fake's produce is one; the reaction on it another (the old path made ~12 more)
  t.ok(counted / frames <= 3, `${(counted / frames).toFixed(1)} promises per publish`)
})
