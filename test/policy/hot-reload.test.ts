// The policy reloads on every way a file changes: an in-place write, an
// atomic rename, and a Kubernetes ConfigMap symlink swap. For each: a valid
// change applies; an invalid one keeps the last good policy and shows in the
// logs, /readyz detail and the sluice_policy_valid metric; a change that
// withdraws access unsubscribes (or, with nothing left, closes with 4003) the
// affected live sockets within 2 s.
import { test } from 'tap'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway, type TestGateway } from '../harness/live-route.ts'
import { TEST_POLICY } from '../harness/policy.ts'
import type { Client } from '../harness/client.ts'
import { DEFAULT_REUSE_MS } from '@sluice/health'

const SECRET = 'hot-reload-suite-hs256-secret-0123456789'
// docs/design.md: a reload that withdraws access reaches live sockets within 2 s
const BOUND_MS = 2000

const V2 = TEST_POLICY
  .replace('      - pattern: orders.*', '      - pattern: news.*\n      - pattern: orders.*')
  .concat(`  - name: news
    product: market
    plan: basic
    subscribe: ['news.*']
`)
// schema-invalid: version must be 1
const INVALID = V2.replace('version: 1', 'version: 2')
// prices and news withdrawn; orders only for tier gold
const V3 = V2
  .replace(/ {2}- name: prices\n(.*\n){3}/, '')
  .replace(/ {2}- name: news\n(.*\n)*$/, '')
  .replace("    plan: gold\n    subscribe: ['orders.{sub}']", "    plan: gold\n    match:\n      claims: { tier: gold }\n    subscribe: ['orders.{sub}']")

interface Layout {
  name: string
  /** creates the directory holding `text` as its policy */
  setup (text: string): string
  write (dir: string, text: string): void
}

let version = 0
const layouts: Layout[] = [
  {
    name: 'in-place write',
    setup (text) {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-inplace-'))
      writeFileSync(join(dir, 'policy.yaml'), text)
      return dir
    },
    write: (dir, text) => writeFileSync(join(dir, 'policy.yaml'), text)
  },
  {
    name: 'atomic rename',
    setup (text) {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-rename-'))
      writeFileSync(join(dir, 'policy.yaml'), text)
      return dir
    },
    write (dir, text) {
      // the temp file starts with a dot: the gateway never reads it half-written
      writeFileSync(join(dir, '.policy.yaml.tmp'), text)
      renameSync(join(dir, '.policy.yaml.tmp'), join(dir, 'policy.yaml'))
    }
  },
  {
    // what the kubelet does: files are symlinks through ..data, which is swapped by rename
    name: 'ConfigMap symlink swap',
    setup (text) {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-configmap-'))
      const first = `..v${++version}`
      mkdirSync(join(dir, first))
      writeFileSync(join(dir, first, 'policy.yaml'), text)
      symlinkSync(first, join(dir, '..data'))
      symlinkSync(join('..data', 'policy.yaml'), join(dir, 'policy.yaml'))
      return dir
    },
    write (dir, text) {
      const next = `..v${++version}`
      mkdirSync(join(dir, next))
      writeFileSync(join(dir, next, 'policy.yaml'), text)
      symlinkSync(next, join(dir, '..data_tmp'))
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
      for (const old of [`..v${version - 1}`]) rmSync(join(dir, old), { recursive: true, force: true })
    }
  }
]

function token (sub: string, claims: Record<string, unknown> = {}): string {
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'internal', aud: 'sluice', sub, exp: nowSeconds() + 600, ...claims }, SECRET)
}

async function subscribeUntil (client: Client, topic: string, want: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let n = 0
  for (;;) {
    const id = `${topic}#${n++}`
    client.send({ op: 'subscribe', id, topics: [topic] })
    const got = (await client.next(f => f.id === id)).op
    if (got === want || Date.now() >= deadline) return got
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function policyCheck (gw: TestGateway): Promise<{ ok: boolean, detail?: string, reason?: string }> {
  // past the window in which probes share the last run of the checks (a /metrics scrape runs them too)
  await new Promise(resolve => setTimeout(resolve, DEFAULT_REUSE_MS + 10))
  const res = await gw.app.inject({ method: 'GET', url: '/readyz' })
  return res.json().checks.policy
}

async function metric (gw: TestGateway, name: string): Promise<string | undefined> {
  const text = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body
  return text.split('\n').find(line => line.startsWith(name + ' ') || line.startsWith(name + '{'))
}

for (const layout of layouts) {
  test(`hot reload: ${layout.name}`, async t => {
    const dir = layout.setup(TEST_POLICY)
    const gw = await liveGateway({
      policyDir: dir,
      captureLogs: true,
      config: { auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'internal', algorithms: ['HS256'], secret: SECRET }] } } }
    })
    t.teardown(() => gw.app.close())
    const alice = gw.ws('?topics=prices.btc', { headers: { authorization: `Bearer ${token('alice', { tier: 'gold' })}` } })
    const bob = gw.ws('?topics=prices.eth', { headers: { authorization: `Bearer ${token('bob')}` } })
    await Promise.all([alice.opened, bob.opened])
    const version1 = gw.app.policy.status().version

    // a valid change applies
    t.equal(await subscribeUntil(alice, 'news.x', 'error', 0), 'error', 'news.* is not granted yet')
    layout.write(dir, V2)
    t.equal(await subscribeUntil(alice, 'news.x', 'subscribed', 5000), 'subscribed', 'the new rule applies to a live socket')
    const version2 = gw.app.policy.status().version
    t.not(version2, version1)
    t.match(await metric(gw, 'sluice_policy_valid'), 'sluice_policy_valid 1')

    // an invalid change keeps the last good policy, and says so
    layout.write(dir, INVALID)
    const deadline = Date.now() + 5000
    let check = await policyCheck(gw)
    while (!check.detail?.includes('last reload failed') && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 100))
      check = await policyCheck(gw)
    }
    t.equal(check.ok, true, '/readyz: still ready, on the last good policy')
    t.match(check.detail, 'the last reload failed', '/readyz detail shows the failed reload')
    t.match(check.detail, '/version', 'naming the path')
    t.match(await metric(gw, 'sluice_policy_valid'), 'sluice_policy_valid 0', 'the metric shows it')
    t.match(await metric(gw, 'sluice_policy_reloads_total{outcome="invalid"}'), / 1$/)
    const logged = gw.logs.map(l => JSON.parse(l) as { level: number, msg: string }).find(l => l.level >= 50 && l.msg.includes('invalid policy'))
    t.ok(logged, 'the logs show it')
    t.match(logged?.msg, 'keeping the last good policy')
    t.match(logged?.msg, /- \/version: .* \(.*policy\.yaml:\d+\)/, 'every problem with its path, file and line')
    t.equal(gw.app.policy.status().version, version2, 'the policy in force is unchanged')
    t.equal(await subscribeUntil(alice, 'news.y', 'subscribed', 0), 'subscribed', 'and still serves')

    // a change that withdraws access: alice loses some topics, bob loses everything
    const started = Date.now()
    layout.write(dir, V3)
    const [bobClosed, unsubscribed] = await Promise.all([
      bob.closed,
      alice.next(f => f.op === 'unsubscribed', 10_000).then(frame => ({ frame, at: Date.now() }))
    ])
    t.equal(bobClosed.code, 4003, 'a socket with no access left is closed with 4003')
    t.equal(bobClosed.reason, 'access withdrawn by a policy change')
    t.ok(bobClosed.at - started <= BOUND_MS, `within ${BOUND_MS} ms (${bobClosed.at - started} ms)`)
    t.same((unsubscribed.frame.topics as string[]).sort(), ['news.x', 'news.y', 'prices.btc'], 'a socket with access left is unsubscribed from what it lost')
    t.equal(unsubscribed.frame.code, 'FORBIDDEN')
    t.ok(unsubscribed.at - started <= BOUND_MS, `within ${BOUND_MS} ms (${unsubscribed.at - started} ms)`)
    t.equal(alice.ws.readyState, alice.ws.OPEN, 'and stays open')
    t.equal(await subscribeUntil(alice, 'orders.alice', 'subscribed', 0), 'subscribed', 'with what it still has')
    t.match(await policyCheck(gw), { ok: true, detail: /^policy [0-9a-f]{12}$/ }, 'the failure is cleared from /readyz')
    alice.close()
  })
}
