// plugins/stream/README.md's table of refusals before the upgrade, checked
// against the gateway as buildApp builds it: each row's status and code is what
// a client of /v1/stream really gets, in `{"error":{"code","message"}}`.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { KafkaClient } from '@sluice/kafka'
import { liveGateway } from '../harness/live-route.ts'
import { policyDir } from '../harness/policy.ts'
import { type Client, refusal } from '../harness/client.ts'
import { kafkaBrokers, unique } from '../helpers.ts'

const DEV_TOKEN = 'dev-token-for-the-refusal-body-suite-0123'
const ORIGIN = 'https://app.example.com'
const README = join(import.meta.dirname, '..', '..', 'plugins', 'stream', 'README.md')

/** The README's rows under "Before the upgrade": status -> the codes in its code column. */
function documentedRows (): Map<number, string[]> {
  const text = readFileSync(README, 'utf8')
  const section = text.slice(text.indexOf('## Before the upgrade'), text.indexOf('## Frames'))
  const rows = new Map<number, string[]>()
  for (const m of section.matchAll(/^\| (\d{3}) \| ([^|]+) \|/gm)) {
    rows.set(Number(m[1]), [...m[2]!.matchAll(/`([A-Z_]+)`/g)].map(c => c[1]!))
  }
  return rows
}

test('each refusal before the upgrade has the status and code the stream README documents', async t => {
  const topic = unique('refusal')
  // a plan of one connection, so that the second socket of a subject is refused with 429
  const dir = policyDir(`
version: 1
plans:
  one:
    limits: { connections: 1, connectsPerMinute: 600, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 }
products:
  market:
    plans: [one]
    topics:
      - pattern: refusal.*
        encoding: json
rules:
  - name: prices
    product: market
    plan: one
    subscribe: ['refusal.*']
`)
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'refusal-body-suite' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic, partitions: 1 }])

  const gw = await liveGateway({ policyDir: dir, config: { dev: { token: DEV_TOKEN }, auth: { origins: [ORIGIN] } } })
  t.teardown(() => gw.app.close())
  const dev = { authorization: `Bearer ${DEV_TOKEN}` }
  const stream = (query: string, headers: Record<string, string> = {}): Client => gw.wsAt('/v1/stream', query, { headers, protocols: ['sluice.v1'] })

  const seen = new Map<number, Set<string>>()
  const check = async (what: string, client: Client, status: number, code: string) => {
    const got = await refusal(client)
    t.equal(got.status, status, `${what}: HTTP ${status}`)
    t.equal(got.body.error?.code, code, `${what}: ${code}`)
    t.type(got.body.error?.message, 'string', `${what}: a message`)
    if (!seen.has(got.status)) seen.set(got.status, new Set())
    seen.get(got.status)!.add(String(got.body.error?.code))
  }

  await check('a bad topic name', stream('?topics=no%20spaces', dev), 400, 'BAD_REQUEST')
  await check('no credential', stream(`?topics=${topic}`), 401, 'SLUICE_AUTH_MISSING')
  await check('a wrong dev token', stream(`?topics=${topic}`, { authorization: `Bearer ${DEV_TOKEN}x` }), 401, 'SLUICE_AUTH_INVALID_TOKEN')
  await check('a topic the policy does not allow', stream('?topics=elsewhere.x', dev), 403, 'FORBIDDEN')
  await check('an Origin not allowed', stream(`?topics=${topic}`, { ...dev, origin: 'https://evil.example.net' }), 403, 'SLUICE_AUTH_ORIGIN_FORBIDDEN')
  await check('a topic Kafka does not have', stream(`?topics=${unique('refusal')}`, dev), 404, 'UNKNOWN_TOPIC')

  const plain = await fetch(`${gw.url}/v1/stream`, { headers: dev })
  const plainBody = await plain.json() as { error?: { code?: string } }
  t.equal(plain.status, 426, 'plain HTTP: 426')
  t.equal(plainBody.error?.code, 'BAD_REQUEST', 'plain HTTP: BAD_REQUEST')
  seen.set(426, new Set([String(plainBody.error?.code)]))

  const first = stream(`?topics=${topic}`, dev)
  await first.opened
  await check('a second socket on a plan of one connection', stream(`?topics=${topic}`, dev), 429, 'SLUICE_RATE_CONNECTIONS')
  first.close()
  await first.closed

  // the README's rows name exactly what was seen for these statuses (503 is the drain and a Kafka outage: other suites)
  const documented = documentedRows()
  for (const [status, codes] of seen) {
    t.ok(documented.has(status), `the README has a row for ${status}`)
    for (const code of codes) t.ok(documented.get(status)?.includes(code), `the README's ${status} row names ${code}`)
  }
})
