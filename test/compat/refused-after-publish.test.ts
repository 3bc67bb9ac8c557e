// On /v2/broker/ with Redis-backed limits, an allowed publish followed at once
// by a frame refused before its first await (a topic the client may read but
// not write, a bad base64 value) left a rejected promise unhandled while the
// first frame waited on Redis, and the process exited. Each refusal is now an
// error frame, in order, and the node goes on.
import { test } from 'tap'
import { gateway, LegacyClient } from '../harness/compat.ts'
import { policyYaml } from '../harness/policy.ts'
import { redisUrl, unique } from '../helpers.ts'

test('a refused frame right behind an allowed publish is an error frame, and the node goes on', async t => {
  const open = unique('refused-open')
  const readOnly = unique('refused-readonly')
  const binary = unique('refused-binary')
  const gw = await gateway(t, {
    policy: policyYaml({
      open: { topics: '[{ pattern: "refused-open.**", encoding: text }]', subscribe: ['refused-open.**'], publish: ['refused-open.**'] },
      ro: { topics: '[{ pattern: "refused-readonly.**", encoding: text }]', subscribe: ['refused-readonly.**'], publish: [] },
      bin: { topics: '[{ pattern: "refused-binary.**", encoding: base64 }]', subscribe: ['refused-binary.**'], publish: ['refused-binary.**'] }
    }),
    config: { redis: { url: redisUrl() }, auth: { apiKeys: { prefix: unique('sluice-refused') + ':' } } }
  })
  await gw.kafka.ensureTopics([{ topic: open }, { topic: readOnly }, { topic: binary }])
  const client = new LegacyClient(gw.url, '', 'kafka-text')
  await client.opened
  t.teardown(() => client.ws.close())
  const ROUNDS = 20
  for (let i = 0; i < ROUNDS; i++) {
    client.sendText(open, `ok ${i}`)
    client.sendText(readOnly, `nope ${i}`)
    client.sendText(open, `ok again ${i}`)
    client.sendText(binary, 'not base64!')
  }
  await client.nextError(ROUNDS * 2 - 1, 20_000)
  const codes = client.errors().map(e => e.code)
  t.equal(codes.filter(c => c === 'SLUICE_COMPAT_FORBIDDEN').length, ROUNDS, 'each write to the read-only topic refused')
  t.equal(codes.filter(c => c === 'SLUICE_COMPAT_BAD_BASE64').length, ROUNDS, 'each bad base64 value refused')
  t.equal(codes.filter(c => c === 'SLUICE_COMPAT_INTERNAL').length, 0, 'none INTERNAL')
  t.equal(client.ws.readyState, client.ws.OPEN, 'the socket stays open')
  t.equal((await gw.app.inject({ url: '/healthz' })).statusCode, 200, 'the node answers')
})
