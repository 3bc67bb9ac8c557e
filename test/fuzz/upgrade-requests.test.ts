// Fuzzing the upgrade requests of /v1/stream and /v2/broker/: query strings
// built from the parameters the routes read (topics, from, group, group.id)
// and the credentials' (access_token, api_key), given twice, empty, without
// `=`, with values that are near-valid (cursors with huge or negative
// numbers, lists past 100 topics, patterns) or hostile (bad and overlong
// percent escapes, invalid UTF-8, NUL, values of 15 KiB), with and without a valid
// credential, subprotocols and an Origin. Whatever is asked: the process never
// exits, /healthz answers within 200 ms, every upgrade is answered within 5 s,
// with a 101 or with a status and `{"error":{"code","message"}}` whose code the
// docs give that status (plugins/stream/README.md's table for /v1/stream,
// docs/reference.md's catalogue for /v2/broker/), never a 5xx but a 503 with
// Retry-After; after a 101 every text frame is JSON and the close handshake
// ends with a documented code; memory and descriptors come back.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { FuzzGateway, jwt, type Resources } from './gateway.ts'
import { encodeFrame, OP, RawClient, type UpgradeAnswer } from './wire.ts'
import {
  budgetMs, checkAlive, CLOSE_WAIT_MS, DOCUMENTED_CLOSE, fuzzProperty, newStats, preview,
  serverJson, checkHealth, checkRanThroughout, checkResources, collectedResources, serving, summary, Violation
} from './invariants.ts'

const FILE = 'test/fuzz/upgrade-requests.test.ts'
// this file's share of FUZZ_SECONDS (the frame and wire files have theirs)
const SHARE = 0.15
const READ_ONLY = 'demo.ticks'
const WARMUP_RUNS = 24
const ROOT = join(import.meta.dirname, '..', '..')

/** plugins/stream/README.md's "Before the upgrade" table: status -> the codes /v1/stream answers it with. */
function streamRefusals (): Map<number, Set<string>> {
  const text = readFileSync(join(ROOT, 'plugins', 'stream', 'README.md'), 'utf8')
  const section = text.slice(text.indexOf('## Before the upgrade'), text.indexOf('## Frames'))
  const rows = new Map<number, Set<string>>()
  for (const m of section.matchAll(/^\| (\d{3}) \| ([^|]+) \|/gm)) rows.set(Number(m[1]), new Set([...m[2]!.matchAll(/`([A-Z_]+)`/g)].map(c => c[1]!)))
  return rows
}

/** docs/reference.md's catalogue: code -> its HTTP status. */
function catalogue (): Map<string, number> {
  const text = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8')
  const codes = new Map<string, number>()
  for (const m of text.matchAll(/^\| `(SLUICE_[A-Z_]+)` \| (\d{3}) \|/gm)) codes.set(m[1]!, Number(m[2]))
  return codes
}

type Route = '/v1/stream' | '/v2/broker/'
interface Run { route: Route, params: Array<[string, string]>, headers: Array<[string, string]> }

/** A query string as written: each key and value already in the bytes the request carries. */
function queryOf (params: Array<[string, string]>): string {
  if (params.length === 0) return ''
  return '?' + params.map(([k, v]) => v === '\u0000novalue' ? k : `${k}=${v}`).join('&')
}

test('upgrade requests with generated query strings and headers break no invariant', async t => {
  const sub = `fuzz-${randomBytes(4).toString('hex')}`
  const own = `orders.${sub}`
  const token = jwt(sub)
  const gw = new FuzzGateway('upgrade')
  t.teardown(() => gw.stop())
  await gw.start()
  const stats = newStats(FILE)
  const documented = streamRefusals()
  const codes = catalogue()
  t.ok(documented.size >= 6 && codes.size > 50, 'the docs\' tables were read')

  // ---- what a request is made of ------------------------------------------------------

  // every byte of the text's UTF-8 outside [A-Za-z0-9._~-] as %XX (a lone surrogate is U+FFFD's bytes)
  const enc = (text: string) => [...Buffer.from(text, 'utf8')].map(b => /[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
  const bigNumber = fc.constantFrom('0', '1', '00', '-1', '+1', '1e3', '2147483648', '9223372036854775807', '9223372036854775808', '18446744073709551616', '9'.repeat(40), 'NaN', '')
  const topicName = fc.constantFrom(own, own, READ_ONLY, 'orders.someone-else', 'no.such.topic.fuzz', 'orders.*', 'orders.>', '*', '**', '../etc', 'a'.repeat(249), 'a'.repeat(250), ' ', '', `${own} `, 'demo.ticks,demo.ticks')
  const cursorPart = fc.tuple(topicName, fc.array(fc.tuple(bigNumber, bigNumber), { minLength: 0, maxLength: 4 }), fc.boolean())
    .map(([topic, positions, at]) => `${topic}${at ? '@' : ''}${positions.map(([p, o]) => `${p}:${o}`).join(',')}`)
  const cursor = fc.array(cursorPart, { minLength: 1, maxLength: 3 }).map(parts => enc(parts.join(';')))
  const topicList = fc.oneof(
    fc.array(topicName, { minLength: 1, maxLength: 4 }).map(names => enc(names.join(','))),
    fc.integer({ min: 99, max: 130 }).map(n => Array.from({ length: n }, (_v, i) => `orders.t${i}`).join(',')),
    fc.array(topicName, { minLength: 1, maxLength: 3 }).map(names => names.map(enc).join('%2C'))
  )
  const hostile = fc.oneof(
    fc.constantFrom('%', '%Z', '%ZZ', '%C3%28', '%FF%FE', '%00', '%E2%82', '%ED%A0%80', '%2C%2C', '+', '%2B', '%26', '%3D', '%25', '%EF%BB%BF'),
    fc.string({ unit: 'binary', maxLength: 40 }).map(enc),
    fc.constantFrom(1024, 8 * 1024, 15 * 1024).map(n => 'x'.repeat(n)),
    fc.constantFrom(1024, 8 * 1024).map(n => '%41'.repeat(n / 3 | 0))
  )
  const value = fc.oneof(
    { weight: 3, arbitrary: topicList },
    { weight: 2, arbitrary: cursor },
    { weight: 1, arbitrary: fc.constantFrom('latest', 'earliest', 'LATEST', 'g1', 'a.b-c_d', 'x'.repeat(129), '\u0000novalue', '') },
    { weight: 2, arbitrary: hostile }
  )
  const key = fc.constantFrom('topics', 'topics', 'from', 'from', 'group', 'group.id', 'access_token', 'api_key', 'encoding', 'topics[]', '__proto__', 'constructor', '', '%74opics', 'TOPICS')
  const params = fc.array(fc.tuple(key, value), { minLength: 0, maxLength: 6 })
  const header = fc.oneof(
    fc.constantFrom<[string, string]>(['Sec-WebSocket-Protocol', 'sluice.v1'], ['Sec-WebSocket-Protocol', 'kafka-text'], ['Sec-WebSocket-Protocol', 'kafka-binary'],
      ['Sec-WebSocket-Protocol', 'sluice.v1, kafka-text, x'], ['Sec-WebSocket-Protocol', ',,'], ['Origin', 'https://evil.example'], ['Origin', 'null'],
      ['Authorization', 'Bearer junk'], ['Authorization', 'Basic Zm9vOmJhcg=='], ['Authorization', `Bearer ${'A'.repeat(8000)}`], ['Authorization', 'Bearer'],
      ['X-API-Key', 'sk_0000000000000000_xxxxxxxxxxxxxxxx'], ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits']),
    fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.,;=- '.split('')), maxLength: 60 }).map((v): [string, string] => ['Sec-WebSocket-Protocol', v])
  )
  // most requests carry the credential, so that the checks after it see them
  const headers = fc.tuple(fc.integer({ min: 0, max: 9 }), fc.array(header, { maxLength: 2 }))
    .map(([credential, more]): Array<[string, string]> => [...(credential < 8 ? [['Authorization', `Bearer ${token}`] as [string, string]] : []), ...more])
  const arbitrary = fc.record({ route: fc.constantFrom<Route>('/v1/stream', '/v2/broker/'), params, headers })

  // ---- one run ------------------------------------------------------------------------

  /** how often each status answered the generated requests */
  const answers = new Map<number, number>()
  let counting = false

  /** Whether a refusal is what the docs say the route answers with that status. */
  function checkRefusal (route: Route, answer: UpgradeAnswer, request: string): void {
    const { status } = answer
    if (status >= 500 && !(status === 503 && answer.headers['retry-after'])) {
      throw new Violation('no 5xx for an upgrade request (a 503 says Retry-After)', `${answer.statusLine} for ${request}: ${preview(answer.body.toString('utf8'))}`)
    }
    let body: { error?: { code?: unknown, message?: unknown } }
    try {
      body = JSON.parse(answer.body.toString('utf8')) as typeof body
    } catch {
      throw new Violation('a refused upgrade has {"error":{"code","message"}}', `${answer.statusLine} for ${request}: ${preview(answer.body.toString('utf8'))}`)
    }
    const code = body?.error?.code
    if (typeof code !== 'string' || typeof body.error?.message !== 'string' || body.error.message.length === 0) {
      throw new Violation('a refused upgrade has {"error":{"code","message"}}', `${answer.statusLine} for ${request}: ${preview(answer.body.toString('utf8'))}`)
    }
    const allowed = route === '/v1/stream' ? documented.get(status)?.has(code) === true : codes.get(code) === status
    if (!allowed) throw new Violation('a refusal\'s status and code are documented together', `${route}: ${status} ${code} (${preview(body.error.message as string, 120)}) for ${request}`)
  }

  async function run ({ route, params, headers }: Run): Promise<void> {
    await checkAlive(gw)
    const target = route + queryOf(params)
    const request = `${preview(target, 300)} with ${headers.map(([k, v]) => `${k}: ${preview(v, 60)}`).join('; ') || 'no header'}`
    let answer: UpgradeAnswer
    try {
      answer = await RawClient.upgrade(gw.port, target, headers)
    } catch (err) {
      await checkAlive(gw, 200)
      throw new Violation('every upgrade is answered', `${(err as Error).message}: ${request}`)
    }
    if (counting) answers.set(answer.status, (answers.get(answer.status) ?? 0) + 1)
    if (answer.status !== 101) {
      checkRefusal(route, answer, request)
      return
    }
    const client = answer.client!
    // what a resume or a subscribe sends at once (subscribed, replayed records) arrives before the close
    await client.until(() => false, 50)
    await client.write(encodeFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) }))
    const outcome = await client.outcome(CLOSE_WAIT_MS)
    await checkAlive(gw, 200)
    for (const frame of outcome.frames) {
      if (frame.opcode === OP.TEXT) serverJson(frame.payload.toString('utf8'), route)
    }
    if (outcome.hung) throw new Violation('every socket ends', `no close within ${CLOSE_WAIT_MS} ms of the client's: ${request}`)
    if (!DOCUMENTED_CLOSE.has(outcome.code) && outcome.code !== 1005) {
      throw new Violation('each socket ends with a documented close code', `${route} closed with ${outcome.code}: ${request}`)
    }
  }

  const describe = (r: Run) => `${r.route}${preview(queryOf(r.params), 300)} with ${r.headers.map(([k, v]) => `${k}: ${preview(v, 60)}`).join('; ') || 'no header'}`

  // warm-up: upgrades that pass and the common refusals, so that the baseline holds what a gateway in use holds
  const auth: Array<[string, string]> = [['Authorization', `Bearer ${token}`]]
  const warm: Run[] = [
    { route: '/v1/stream', params: [['topics', own]], headers: auth },
    { route: '/v1/stream', params: [['topics', READ_ONLY], ['from', 'earliest']], headers: auth },
    { route: '/v1/stream', params: [['topics', 'bad%20name']], headers: auth },
    { route: '/v1/stream', params: [], headers: [] },
    { route: '/v2/broker/', params: [['topics', own]], headers: auth },
    { route: '/v2/broker/', params: [['topics', 'orders.someone-else']], headers: auth }
  ]
  for (let i = 0; i < WARMUP_RUNS; i++) {
    await serving(gw)
    await run(warm[i % warm.length]!).catch(() => {})
  }
  await serving(gw)
  await new Promise(resolve => setTimeout(resolve, 1000))
  const baseline: Resources = await collectedResources(gw)
  const firstPid = gw.pid
  gw.startProbe()

  counting = true
  await fuzzProperty(t, gw, stats, { name: 'upgrade requests: query strings and headers', arbitrary, run, describe, ms: budgetMs(SHARE) })

  // a fuzzer whose every request is refused at the first check tests one check: some must get through
  t.comment(`answers: ${[...answers].sort((a, b) => a[0] - b[0]).map(([status, n]) => `${status} x${n}`).join(', ')}`)
  const total = [...answers.values()].reduce((a, b) => a + b, 0)
  t.ok((answers.get(101) ?? 0) >= Math.max(5, total * 0.05), `at least 5 % of the generated requests upgrade (${answers.get(101) ?? 0} of ${total})`)
  const health = await gw.stopProbe()
  checkHealth(t, stats, health)
  checkRanThroughout(t, gw)
  const resources = await checkResources(t, gw, baseline, firstPid)
  summary(t, 'upgrade-requests', stats, health, resources)
})
