// A transform that throws costs that one message (counted, logged), never the
// socket or the process; a slow one is bounded: a call over its budget costs
// its message, and a module that keeps running over is disabled.
import { test } from 'tap'
import { DEFAULT_TRANSFORM_LIMITS } from '@sluice/compat'
import { gateway, LegacyClient, subscribed, type Gateway } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { unique } from '../helpers.ts'

async function metric (gw: Gateway, name: string, labels: string): Promise<number> {
  const text = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find(l => l.startsWith(`${name}{${labels}}`))
  return line ? Number(line.split(' ').at(-1)) : 0
}

// throws on "boom", anywhere in the value, in both directions
const FRAGILE = `
export default function (m: { value: Buffer | null }) {
  if (m.value?.toString().includes('boom')) throw new Error('this transform does not like booms')
  return m
}
`
// four times the budget on "slow", in the thread's CPU time as the runner measures it: a wait of four budgets
// on the clock got less than one budget of CPU on a loaded CI machine (the clean-clone run of 3b4f518), and the
// message went through
const SLOW = `
const cpuMs = () => {
  const u = typeof process.threadCpuUsage === 'function' ? process.threadCpuUsage() : process.cpuUsage()
  return (u.user + u.system) / 1000
}
export default function (m: { value: Buffer | null }) {
  if (m.value?.toString() === 'slow') {
    const until = cpuMs() + ${DEFAULT_TRANSFORM_LIMITS.budgetMs * 4}
    while (cpuMs() < until) {}
  }
  return m
}
`

test('a throwing transform costs its message, not the socket', async t => {
  const topic = unique('fragile')
  const gw = await gateway(t, {
    files: { 'transforms/fragile.ts': FRAGILE },
    policy: policyYaml({ fragile: { topics: '[{ pattern: "fragile.**", encoding: text }]', transforms: '{ input: transforms/fragile.ts, output: transforms/fragile.ts }', subscribe: ['fragile.**'], publish: ['fragile.**'] } })
  })
  await gw.kafka.ensureTopics([{ topic }])
  const reader = new LegacyClient(gw.url, `topics=${topic}`)
  const writer = new LegacyClient(gw.url, '', 'kafka-binary')
  t.teardown(() => { reader.close(); writer.close() })
  await Promise.all([reader.opened, writer.opened])
  await subscribed(gw, topic, 1)

  writer.sendBinary(topic, Buffer.from('boom on the way in'))
  t.match(await writer.nextError(0), { code: 'SLUICE_COMPAT_TRANSFORM_FAILED', topic, message: /does not like booms/ }, 'the publisher hears why, in a text frame')
  writer.sendBinary(topic, Buffer.from('fine'))
  t.same((await reader.waitMessages(1)).map(r => r.text!.message), ['fine'], 'the next message goes through')

  // the output side: a record the transform throws on is skipped for every socket; the next arrives
  await gw.kafka.produce(topic, { value: 'boom on the way out' })
  await gw.kafka.produce(topic, { value: 'after' })
  t.same((await reader.waitMessages(2)).map(r => r.text!.message), ['fine', 'after'])
  t.same(reader.errors(), [], 'subscribers are not sent errors about records they never see')
  t.equal(await metric(gw, 'sluice_compat_transform_failures_total', 'direction="input",reason="threw"'), 1)
  t.equal(await metric(gw, 'sluice_compat_transform_failures_total', 'direction="output",reason="threw"'), 1)
  t.equal(reader.ws.readyState, reader.ws.OPEN)
  t.equal(writer.ws.readyState, writer.ws.OPEN)
})

test('a slow transform: over its budget a message is skipped; past 10 overruns the transform is disabled', async t => {
  const topic = unique('slow')
  const gw = await gateway(t, {
    files: { 'transforms/slow.ts': SLOW },
    policy: policyYaml({ slow: { topics: '[{ pattern: "slow.**", encoding: text }]', transforms: '{ input: transforms/slow.ts }', subscribe: ['slow.**'], publish: ['slow.**'] } })
  })
  await gw.kafka.ensureTopics([{ topic }])
  const client = new LegacyClient(gw.url, `topics=${topic}`)
  t.teardown(() => client.close())
  await client.opened
  await subscribed(gw, topic, 1)

  client.sendText(topic, 'slow')
  t.match(await client.nextError(0), { code: 'SLUICE_COMPAT_TRANSFORM_SLOW', topic })
  client.sendText(topic, 'fast')
  t.same((await client.waitMessages(1)).map(r => r.text!.message), ['fast'], 'the slow message was skipped, the next one was not')

  for (let i = 1; i < DEFAULT_TRANSFORM_LIMITS.maxOverruns; i++) client.sendText(topic, 'slow')
  await client.nextError(DEFAULT_TRANSFORM_LIMITS.maxOverruns - 1)
  t.equal(client.errors().filter(e => e.code === 'SLUICE_COMPAT_TRANSFORM_SLOW').length, DEFAULT_TRANSFORM_LIMITS.maxOverruns)
  client.sendText(topic, 'fast again')
  t.match(await client.nextError(DEFAULT_TRANSFORM_LIMITS.maxOverruns), { code: 'SLUICE_COMPAT_TRANSFORM_DISABLED', topic }, 'disabled: fail closed, the module is not called')
  t.equal(client.messages().length, 1, 'nothing untransformed got through')
  t.equal(await metric(gw, 'sluice_compat_transform_failures_total', 'direction="input",reason="slow"'), DEFAULT_TRANSFORM_LIMITS.maxOverruns)
  t.equal(client.ws.readyState, client.ws.OPEN, 'the socket stays')
})
