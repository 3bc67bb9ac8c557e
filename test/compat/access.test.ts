// /v2/broker/ sockets live under the same rules as /v1/stream ones: API keys
// (in the query, as old clients send them) and their revocation, the plan's
// publish rate and connection count (the rate-limit plugin's guard and
// upgrade check), and a policy change that withdraws access reaches them.
import { test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gateway, LegacyClient, subscribed } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { eventually, redisUrl, unique } from '../helpers.ts'
import { groupIdFor } from '@sluice/stream'

const DEV = { kind: 'dev' as const, subject: 'dev', claims: { sub: 'dev' } }
const PRODUCT = { topics: '[{ pattern: "legacy.**", encoding: text }]', subscribe: ['legacy.**'], publish: ['legacy.**'] }

test('the plan\'s publish rate and connection count apply', async t => {
  const RATE = 5
  const topic = unique('legacy.rate')
  const gw = await gateway(t, { policy: policyYaml({ legacy: PRODUCT }, { publishedPerSecond: RATE, connections: 2 }) })
  await gw.kafka.ensureTopics([{ topic }])
  const writer = new LegacyClient(gw.url, `topics=${topic}`)
  t.teardown(() => writer.close())
  await writer.opened
  await subscribed(gw, topic, 1)
  // three seconds' worth at once: the burst goes to Kafka, the rest is refused
  for (let i = 0; i < RATE * 3; i++) writer.sendText(topic, `m${i}`)
  await writer.nextError(RATE * 2 - 2, 15_000)
  const limited = writer.errors().filter(e => e.code === 'SLUICE_COMPAT_RATE_LIMITED')
  t.ok(limited.length >= RATE * 2 - 1, `refused beyond the plan's rate (${limited.length} of ${RATE * 3})`)
  t.ok(limited.every(e => (e.retryAfterMs as number) > 0 && e.topic === topic), 'each with the topic and how long to wait')
  t.equal(writer.ws.readyState, writer.ws.OPEN, 'the socket stays')
  const accepted = RATE * 3 - limited.length
  const delivered = await writer.waitMessages(accepted)
  t.same(delivered.map(r => r.text!.message), Array.from({ length: accepted }, (_v, i) => `m${i}`), 'the first ones, the plan\'s burst, went through')

  const second = new LegacyClient(gw.url, '', 'kafka-binary')
  t.teardown(() => second.close())
  await second.opened
  const third = new LegacyClient(gw.url, '')
  t.teardown(() => third.close())
  const refused = await third.opened.then(() => undefined, (err: { statusCode: number }) => err)
  t.equal(refused?.statusCode, 429, 'a third connection is refused before the upgrade: the plan allows 2')
})

test('a policy change withdraws access from live /v2/broker/ sockets', async t => {
  const kept = unique('legacy.kept')
  const lost = unique('legacy.lost')
  const gw = await gateway(t, { policy: policyYaml({ legacy: PRODUCT }) })
  await gw.kafka.ensureTopics([{ topic: kept }, { topic: lost }])
  const live = new LegacyClient(gw.url, `topics=${kept},${lost}`)
  const grouped = new LegacyClient(gw.url, `topics=${lost}&group.id=g1`, 'kafka-binary')
  t.teardown(() => { live.close(); grouped.close() })
  await Promise.all([live.opened, grouped.opened])
  await subscribed(gw, lost, 1)
  // the group member has joined: closing a socket whose consumer is still joining its group is not what this test is about
  await eventually(async () => (await gw.kafka.groupMembers(groupIdFor(DEV, 'g1'))).length === 1, 30_000, 'the group member joined')

  // the rule now grants the kept topic only
  await writeFile(join(gw.policyDir, 'policy.yaml'), policyYaml({ legacy: { ...PRODUCT, subscribe: [kept] } }))
  const withdrawn = await live.nextError(0, 15_000)
  t.match(withdrawn, { code: 'SLUICE_COMPAT_FORBIDDEN', topics: [lost] }, 'the socket hears which topic it lost')
  t.same(gw.app.sessions.list().find(s => s.topics().includes(kept))?.topics(), [kept], 'and keeps the other')
  t.equal((await grouped.closed).code, 4003, 'a group member cannot leave part of its group: closed with 4003')
  await gw.kafka.produce(kept, { value: 'still here' })
  t.same((await live.waitMessages(1)).map(r => r.text!.message), ['still here'], 'the kept topic flows on')

  // nothing granted at all
  await writeFile(join(gw.policyDir, 'policy.yaml'), policyYaml({ legacy: PRODUCT }).replace('    plan: test\n', '    plan: test\n    match: { kinds: [jwt] }\n'))
  t.equal((await live.closed).code, 4003, 'closed with 4003 once the subject has no access left')
})

test('an API key in the query string: its owner\'s access, and revocation closes the socket with 4001', async t => {
  const ADMIN_TOKEN = 'compat-suite-admin-token-0123456789abcdef'
  const topic = unique('legacy.keyed')
  const gw = await gateway(t, {
    policy: policyYaml({ legacy: PRODUCT }),
    config: { redis: { url: redisUrl() }, admin: { token: ADMIN_TOKEN }, auth: { apiKeys: { prefix: unique('sluice-compat') + ':' } } }
  })
  await gw.kafka.ensureTopics([{ topic }])
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
  const issued = await gw.app.inject({ method: 'POST', url: '/admin/keys', headers: admin, payload: { owner: 'erin', product: 'legacy', plan: 'test' } })
  t.equal(issued.statusCode, 201)
  const { key, id } = issued.json() as { key: string, id: string }

  const client = new LegacyClient(gw.url, `topics=${topic}`, undefined, `api_key=${key}`)
  t.teardown(() => client.close())
  await client.opened
  await subscribed(gw, topic, 1)
  t.equal(gw.app.sessions.list().find(s => s.route === '/v2/broker/')?.identity.subject, 'erin', 'the socket acts as the key\'s owner')
  client.sendText(topic, 'with a key')
  t.same((await client.waitMessages(1)).map(r => r.text!.message), ['with a key'])

  const wrong = new LegacyClient(gw.url, `topics=${topic}`, undefined, 'api_key=sk_0123456789abcdef_' + 'x'.repeat(43))
  t.match(await wrong.opened.catch((err: unknown) => err), { statusCode: 401, body: { error: { code: 'SLUICE_AUTH_INVALID_API_KEY' } } }, 'an unknown key: 401 before the upgrade')

  t.equal((await gw.app.inject({ method: 'DELETE', url: `/admin/keys/${id}`, headers: admin })).statusCode, 204)
  t.equal((await client.closed).code, 4001, 'revoked: closed with 4001')
})
