// The hub reads Kafka without consumer groups (issue 14): subscribing at latest,
// resuming with a cursor, from=earliest and a pattern create no consumer group on
// the broker (each used to: sluice-hub.<node>.<topic>.* per topic and node,
// sluice-catchup.* per resume, kept by the broker for 7 days). Only group mode
// (group=) joins one, the group the client named.
import { test } from 'tap'
import { allowAll, streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { eventually, unique } from '../helpers.ts'

test('subscribe at latest, a resume with a cursor, from=earliest and a pattern create no consumer group; group mode creates the one it names', async t => {
  const base = unique('nogroups')
  const nodeId = `ng-${base.split('.').pop()!}`
  const [live, resumed, early, patA, patLater] = [`${base}.live`, `${base}.resume`, `${base}.early`, `${base}.pat.a`, `${base}.pat.b`]
  const { app, url, kafka } = await streamApp({ access: allowAll(), nodeId })
  t.teardown(() => app.close())
  await kafka.ensureTopics([live, resumed, early, patA].map(topic => ({ topic, partitions: 2 })))
  // other suites share the broker and make groups of their own: only ours count
  const ours = (groups: string[]) => groups.filter(g => g.includes(base) || g.includes(nodeId) || g.endsWith('.no-group'))
  const before = new Set(await kafka.listGroups())

  // 1. at latest: the subscription starts at the end; a record written after it arrives live
  const c = new Client(`${url}/v1/stream?topics=${live}`)
  t.teardown(() => c.close())
  await c.next(f => f.op === 'subscribed')
  await kafka.produceBatch(live, [{ value: JSON.stringify({ n: 1 }), partition: 0 }, { value: JSON.stringify({ n: 2 }), partition: 1 }])
  await c.waitMessages(2, 15_000, live)

  // 2. a resume with a cursor from before what is in the topic: the gap is replayed, then live
  await kafka.produceBatch(resumed, Array.from({ length: 20 }, (_v, i) => ({ value: JSON.stringify({ n: i }), partition: i % 2 })))
  const r = new Client(`${url}/v1/stream?topics=${resumed}&from=${encodeURIComponent(`${resumed}@0:5,1:5`)}`)
  t.teardown(() => r.close())
  await r.next(f => f.op === 'subscribed')
  const replayed = await r.waitMessages(10, 15_000, resumed)
  t.same(replayed.map(f => Number(f.offset)).sort((a, b) => a - b), [5, 5, 6, 6, 7, 7, 8, 8, 9, 9], 'offsets 5-9 of both partitions replayed')

  // 3. from=earliest: the whole topic
  await kafka.produceBatch(early, Array.from({ length: 6 }, (_v, i) => ({ value: JSON.stringify({ n: i }), partition: i % 2 })))
  const e = new Client(`${url}/v1/stream`)
  t.teardown(() => e.close())
  await e.opened
  e.send({ op: 'subscribe', id: 'e', topics: [early], from: 'earliest' })
  await e.next(f => f.id === 'e')
  await e.waitMessages(6, 15_000, early)

  // 4. a pattern: a topic that matches now, and one created after the subscription
  const p = new Client(`${url}/v1/stream`)
  t.teardown(() => p.close())
  await p.opened
  p.send({ op: 'subscribe', id: 'p', topics: [`${base}.pat.*`] })
  await p.next(f => f.op === 'subscribed' && f.id === 'p')
  await kafka.ensureTopics([{ topic: patLater }])
  await p.next(f => f.op === 'subscribed' && Array.isArray(f.topics) && (f.topics as string[]).includes(patLater), 15_000)
  await kafka.produceBatch(patA, [{ value: JSON.stringify({ n: 'a' }) }])
  await kafka.produceBatch(patLater, [{ value: JSON.stringify({ n: 'b' }) }])
  await p.waitMessages(2, 15_000)

  // the resume started its topic's feed, which read the gap into its window first (unless that was cut short)
  t.equal(app.hub.stats.backfills + app.hub.stats.backfillsCut, 1, 'the resume\'s feed read its gap first')
  t.equal(app.hub.stats.catchUps, 1 + app.hub.stats.backfillsCut, 'earliest was replayed by a catch-up reader')
  t.equal(app.hub.consumers, 5, 'a live reader per topic')
  t.same(ours((await kafka.listGroups()).filter(g => !before.has(g))), [], 'no consumer group on the broker for any of it')

  // group mode is the one place that needs a real group: exactly the one the client named
  const group = `${base}.workers`
  const g = new Client(`${url}/v1/stream?topics=${live}&group=${encodeURIComponent(group)}`)
  t.teardown(() => g.close())
  await g.next(f => f.op === 'subscribed')
  let created: string[] = []
  // the join runs on after the subscribed frame
  await eventually(async () => {
    created = ours((await kafka.listGroups()).filter(x => !before.has(x)))
    return created.length > 0
  }, 15_000, 'a group on the broker')
  t.equal(created.length, 1, 'group mode created one group')
  t.ok(created[0]!.endsWith(`.${group}`), `the one it names, namespaced by subject (${created[0]})`)
})
