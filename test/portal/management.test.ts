// API management in a real browser (issue 18): Debian's chromium driven by
// playwright-core against the shipped gateway on the run's Kafka and Redis,
// signed in through the local OpenID Connect provider (test/oidc-provider.ts).
// A developer creates an application, subscribes it to the free plan (auto),
// issues a key (the catalogue's browser snippet of the topic, which now
// carries it, receives a record as pasted) and receives records with it in
// the console; today's usage is shown moving (the metering). They ask for
// the pro plan (manual): pending. An admin approves it on /portal/admin.html,
// and the console's open socket, the same session, gets pro's deliveries: a
// burst that free's 5 a second cut short (`lagging`) now arrives whole. The
// key is rotated with a grace of a few seconds: the old and new keys both
// open sockets meanwhile, then the console's socket (old key) closes with
// 4001 and the new key's socket stays, until the admin kicks it (1008).
// Screenshots under .artifacts/portal/.
import { test } from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { freePort } from '@sluice/stack'
import { startGateway } from '../harness/gateway.ts'
import { policyDir } from '../harness/policy.ts'
import { Client } from '../harness/client.ts'
import { eventually, redisUrl } from '../helpers.ts'
import { DEMO_DEVELOPER, oidcProvider, portalOidc } from '../oidc-provider.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(ROOT, '.artifacts', 'portal')
// a bound on each wait for the page, not a timing assertion: the first record
// waits for the hub's consumer to join on a broker that other suites share
const WAIT_MS = 30_000
const ADMIN_TOKEN = 'admin-token-for-the-portal-management-suite-0123'
// free's deliveries (5 a second) cut a burst of 40 short; pro's (1000) do not
const BURST = 40
// the rotated key's grace: long enough to open a socket with each key, short enough for the suite
const GRACE_S = 6

function managementPolicy (topic: string): string {
  return `
version: 1
plans:
  free:
    approval: auto
    limits: { connections: 10, connectsPerMinute: 120, deliveredPerSecond: 5, publishedPerSecond: 5, bytesPerSecond: 1000000, dailyQuota: 1000000 }
  pro:
    approval: manual
    limits: { connections: 10, connectsPerMinute: 120, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 }
products:
  market:
    title: Market data
    plans: [free, pro]
    topics:
      - pattern: ${topic}
        encoding: json
        slowClient: lagging
rules:
  - name: market-feed
    product: market
    plan: free
    subscribe: ['${topic}']
`
}

/** The console's message rows of one burst (values {"batch":n,...}). */
async function rowsOf (page: Page, batch: number): Promise<number> {
  return page.locator('#messages li.message').filter({ hasText: `"batch":${batch},` }).count()
}

test('a developer upgrades a live socket\'s plan through the portal and the admin page, then rotates its key', async t => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  const suffix = randomBytes(4).toString('hex')
  const topic = `mgmt.${suffix}`
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const redirectUrl = `${origin}/portal/callback`
  const provider = await oidcProvider(t, redirectUrl)
  const prefix = `portal-mgmt-${suffix}:`
  const gw = await startGateway({
    t,
    port,
    policyDir: policyDir(managementPolicy(topic)),
    config: {
      redis: { url: redisUrl() },
      admin: { token: ADMIN_TOKEN },
      // buckets of its own: the per-address upgrade limit is otherwise shared with every suite on 127.0.0.1
      rateLimit: { prefix: `${prefix}rl:` },
      auth: { origins: [origin], apiKeys: { prefix } },
      stream: { consumerGraceMs: 200 },
      // usage written to Redis every half second (5 s by default): the page's Refresh sees it move sooner
      usage: { prefix: `${prefix}usage:`, topic: `usage-${prefix.replace(/[^a-z0-9-]/gi, '-')}`, flushMs: 500 },
      portal: { oidc: portalOidc(provider, redirectUrl, randomBytes(32).toString('base64url')) }
    }
  })
  await gw.app.kafka.ensureTopics([{ topic, partitions: 1 }])
  const produce = async (batch: number, n: number) => {
    for (let i = 0; i < n; i++) await gw.app.kafka.produce(topic, { key: 'k', value: JSON.stringify({ batch, i }) })
  }

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ viewport: { width: 1440, height: 1500 } })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', err => { problems.push(`portal: ${err.message}`) })

  // sign in at the provider
  await page.goto(`${origin}/portal`)
  await page.click('#sign-in', { timeout: WAIT_MS })
  await page.waitForURL(url => url.origin === provider.issuer, { timeout: WAIT_MS })
  await page.fill('input[name="login"]', DEMO_DEVELOPER.email)
  await page.fill('input[name="password"]', provider.password)
  await page.click('button[type="submit"]')
  await page.locator('#signed-in-as').waitFor({ timeout: WAIT_MS })

  // an application on the free plan (approved at once) and its key
  await page.fill('#application-name', 'ticker-board')
  await page.click('#create-application button[type="submit"]')
  const application = page.locator('li.application[data-name="ticker-board"]')
  await application.locator('select.plan-choice').selectOption('market/free', { timeout: WAIT_MS })
  await application.locator('button.subscribe').click()
  await application.locator('.app-subscriptions li[data-plan="free"][data-state="active"]').waitFor({ timeout: WAIT_MS })
  await application.locator('button.issue-key[data-product="market"]').click()
  const oldKey = (await page.locator('#new-key').textContent({ timeout: WAIT_MS }))!
  t.match(oldKey, /^sk_[0-9a-f]{16}_/, 'a key, shown once')
  const oldKeyId = oldKey.split('_')[1]!
  await application.locator(`tr.key[data-key="${oldKeyId}"][data-plan="free"]`).waitFor({ timeout: WAIT_MS })
  const appId = (await application.getAttribute('data-application'))!

  // the topic's browser snippet has the key filled in, and works as pasted
  const snippet = (await page.locator(`details.snippets[data-topic="${topic}"] code[data-snippet="browser"]`).textContent({ timeout: WAIT_MS }))!
  t.match(snippet, oldKey, 'the catalogue\'s snippets carry the reader\'s key')
  await page.evaluate(`window.snippetFrames = []; (() => { ${snippet}
    ws.addEventListener('message', event => { window.snippetFrames.push(JSON.parse(event.data)); if (JSON.parse(event.data).op === 'message') ws.close() }) })()`)
  await eventually(async () => await page.evaluate('window.snippetFrames.some(f => f.op === \'subscribed\')') as boolean, WAIT_MS, 'the snippet subscribed')
  await produce(0, 1)
  await eventually(async () => await page.evaluate('window.snippetFrames.some(f => f.op === \'message\')') as boolean, WAIT_MS, 'a record through the snippet')
  t.pass('the browser snippet, run as pasted, received a record')

  // the key in the console: records arrive
  await page.click('#use-key')
  await page.click('#connect')
  await page.locator('#connection-status[data-state="connected"]').waitFor({ timeout: WAIT_MS })
  const subscribe = async () => {
    const before = await page.locator('#events .event-subscribed').count()
    await page.fill('#subscribe-topic', topic)
    await page.click('#subscribe-submit')
    await eventually(async () => await page.locator('#events .event-subscribed').count() > before, WAIT_MS, 'subscribed')
  }
  await page.locator('#identity-plan[data-plan="free"]').waitFor({ timeout: WAIT_MS })
  await subscribe()
  await produce(10, 2)
  await eventually(async () => await rowsOf(page, 10) === 2, WAIT_MS, 'the first records in the console')
  t.pass('records received in the console with the application\'s key')

  // today's usage moves (the metering, plugins/usage: each node writes its counts every usage.flushMs)
  const usage = await page.evaluate(`fetch('/v1/developer/applications/${appId}/usage?days=7').then(r => r.status)`) as number
  t.equal(usage, 200, 'the application\'s usage')
  const delivered = async () => Number(await page.locator('li.application[data-name="ticker-board"] .usage-today').getAttribute('data-delivered', { timeout: WAIT_MS }))
  const first = await delivered()
  await produce(9, 1)
  await eventually(async () => await rowsOf(page, 9) === 1, WAIT_MS, 'one more record')
  await eventually(async () => {
    await page.locator('li.application[data-name="ticker-board"] button.refresh-usage').click()
    return await delivered() > first
  }, WAIT_MS, 'today\'s deliveries move')
  t.pass(`today's deliveries moved from ${first} to ${await delivered()}`)

  // free's limit on the live socket: a burst is cut short
  await produce(1, BURST)
  await page.locator('#events .event-lagging').first().waitFor({ timeout: WAIT_MS })
  const onFree = await rowsOf(page, 1)
  t.ok(onFree < BURST, `on the free plan the console got ${onFree} of a burst of ${BURST}, then lagging`)

  // ask for pro: it waits for an admin
  await page.locator('li.application[data-name="ticker-board"] select.plan-choice').selectOption('market/pro')
  await page.locator('li.application[data-name="ticker-board"] button.subscribe').click()
  await page.locator('li.application[data-name="ticker-board"] .app-subscriptions li[data-plan="pro"][data-state="pending"]').waitFor({ timeout: WAIT_MS })
  t.match(await page.locator('#developer-status').textContent(), /waits for an admin's approval/)

  // the admin page: the pending request and the open socket, then the approval
  const adminPage = await context.newPage()
  adminPage.on('pageerror', err => { problems.push(`admin: ${err.message}`) })
  await adminPage.goto(`${origin}/portal/admin.html`)
  await adminPage.fill('#admin-token', ADMIN_TOKEN)
  await adminPage.click('#admin-token-form button[type="submit"]')
  const pending = adminPage.locator(`tr.pending[data-application="${appId}"][data-plan="pro"]`)
  await pending.waitFor({ timeout: WAIT_MS })
  await adminPage.locator(`tr.admin-application[data-application="${appId}"]`).waitFor({ timeout: WAIT_MS })
  t.pass('the application is listed')
  const socket = adminPage.locator(`tr.session[data-key="${oldKeyId}"]`)
  const sessionId = await socket.getAttribute('data-session', { timeout: WAIT_MS })
  t.ok(sessionId, 'the console\'s socket is listed')
  await pending.locator('button.approve').click()
  await pending.waitFor({ state: 'detached', timeout: WAIT_MS })
  // the page says so once its refresh after the action is done (the pending list is redrawn before the rest)
  await adminPage.locator('#admin-status', { hasText: /^Approved/ }).waitFor({ timeout: WAIT_MS })
  t.match(await adminPage.locator('#admin-status').textContent(), /^Approved/, 'approved, no longer pending')
  await eventually(() => gw.app.sessions.list().some(s => s.identity.keyId === oldKeyId && s.identity.claims.plan === 'pro'), 5000, 'the open socket on pro')

  // the same socket, not reconnected, gets pro's deliveries: `lagging` ended its subscription, so subscribe again
  await subscribe()
  await produce(2, BURST)
  await eventually(async () => await rowsOf(page, 2) === BURST, WAIT_MS, 'the whole burst')
  t.pass(`after the approval the console received all ${BURST} records of a burst`)
  t.equal(await page.locator('#events .event-close').count(), 0, 'the console\'s socket was never closed')
  t.equal(await page.getAttribute('#connection-status', 'data-state'), 'connected')
  await adminPage.click('#admin-refresh')
  await adminPage.locator(`tr.session[data-session="${sessionId}"]`).waitFor({ timeout: WAIT_MS })
  t.pass('the admin page lists the same session')
  await page.click('#refresh-applications')
  await page.locator('li.application[data-name="ticker-board"] .app-subscriptions li[data-plan="pro"][data-state="active"]').waitFor({ timeout: WAIT_MS })
  await page.locator(`li.application[data-name="ticker-board"] tr.key[data-key="${oldKeyId}"][data-plan="pro"]`).waitFor({ timeout: WAIT_MS })
  await page.locator('#identity-plan[data-plan="pro"]').waitFor({ timeout: WAIT_MS })
  t.equal(await page.locator('#identity-plan').textContent(), 'pro', 'the console says the socket\'s plan is pro now')

  // rotate with a short grace: both keys work, then the old key's socket closes with 4001
  const oldRow = page.locator(`li.application[data-name="ticker-board"] tr.key[data-key="${oldKeyId}"]`)
  await oldRow.locator('input.grace-seconds').fill(String(GRACE_S))
  await oldRow.locator('button.rotate-key').click()
  await eventually(async () => (await page.locator('#new-key').textContent()) !== oldKey, WAIT_MS, 'the new key shown')
  const newKey = (await page.locator('#new-key').textContent())!
  t.match(newKey, /^sk_[0-9a-f]{16}_/, 'a new key')
  const withNew = new Client(`${gw.wsUrl}/v1/stream?topics=${topic}`, { headers: { 'x-api-key': newKey } })
  t.teardown(() => withNew.close())
  const withOld = new Client(`${gw.wsUrl}/v1/stream?topics=${topic}`, { headers: { 'x-api-key': oldKey } })
  t.teardown(() => withOld.close())
  await Promise.all([withNew.opened, withOld.opened])
  await withNew.next(f => f.op === 'subscribed', WAIT_MS)
  await withOld.next(f => f.op === 'subscribed', WAIT_MS)
  t.pass('during the grace period both keys open a socket')
  t.equal(await page.getAttribute('#connection-status', 'data-state'), 'connected', 'and the console\'s socket is still open')

  const closed = page.locator('#events .event-close[data-code="4001"]')
  await closed.waitFor({ timeout: GRACE_S * 1000 + WAIT_MS })
  t.pass('then the console\'s socket (the old key) closed with 4001')
  t.equal((await withOld.closed).code, 4001, 'as did the other socket of the old key')
  await produce(3, 1)
  await withNew.waitMessages(1, WAIT_MS, topic)
  t.equal(withNew.ws.readyState, withNew.ws.OPEN, 'the new key\'s socket stays and receives')

  // the admin kicks the new key's socket from the admin page: closed with 1008
  const newKeyId = newKey.split('_')[1]!
  await adminPage.click('#admin-refresh')
  await adminPage.locator(`tr.session[data-key="${newKeyId}"] button.kick`).click({ timeout: WAIT_MS })
  t.equal((await withNew.closed).code, 1008, 'kicked from the admin page: 1008')
  await adminPage.locator(`tr.session[data-key="${newKeyId}"]`).waitFor({ state: 'detached', timeout: WAIT_MS })

  await mkdir(ARTIFACTS, { recursive: true })
  await page.evaluate('window.scrollTo(0, 0)')
  await page.screenshot({ path: join(ARTIFACTS, 'portal-management.png') })
  await adminPage.screenshot({ path: join(ARTIFACTS, 'portal-admin.png') })
  t.same(problems, [], 'no script error on either page')
})
