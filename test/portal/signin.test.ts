// Developer sign-in on the portal, in a real browser (Debian's chromium,
// driven by playwright-core) against the real gateway (buildApp, Redis and
// Kafka of the run) and the local OpenID Connect provider (test/oidc-provider.ts,
// oidc-provider, as dev mode runs it): Sign in through the provider's own login
// page, the portal shows the developer, create an application, subscribe it
// to the free plan (auto), issue a key, use it in the console and receive
// records produced to Kafka; sign out, and the developer API answers 401
// without the cookie. A tampered cookie and a callback with a wrong state are
// refused with their codes. A screenshot is saved under .artifacts/portal/.
import { test } from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { DemoTicker } from '@sluice/gateway/demo-feed'
import { freePort } from '@sluice/stack'
import { KafkaClient } from '@sluice/kafka'
import { kafkaBrokers, redisUrl } from '../helpers.ts'
import { startGateway } from '../harness/gateway.ts'
import { DEMO_DEVELOPER, oidcProvider, portalOidc } from '../oidc-provider.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(ROOT, '.artifacts', 'portal')
// a bound on each wait for the page, not a timing assertion: the first tick
// waits for the hub's consumer to join on a broker that other suites share
const WAIT_MS = 30_000

test('a developer signs in on the portal, makes an application, gets a key and streams with it', async t => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  const suffix = randomBytes(4).toString('hex')
  const ticks = `demo.ticks-${suffix}`
  const example = await readFile(join(ROOT, 'policies', 'example.yaml'), 'utf8')
  const policyDir = await mkdtemp(join(tmpdir(), 'sluice-portal-signin-'))
  t.teardown(() => rm(policyDir, { recursive: true, force: true }))
  await writeFile(join(policyDir, 'example.yaml'), example.replaceAll('demo.ticks', ticks))

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const redirectUrl = `${origin}/portal/callback`
  const provider = await oidcProvider(t, redirectUrl)
  const { app } = await startGateway({
    t,
    policyDir,
    port,
    config: {
      redis: { url: redisUrl() },
      server: { host: '127.0.0.1', port },
      auth: { origins: [origin], apiKeys: { prefix: `portal-signin-${suffix}:` } },
      stream: { consumerGraceMs: 200 },
      portal: { oidc: portalOidc(provider, redirectUrl, randomBytes(32).toString('base64url')) }
    }
  })

  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'portal-signin-suite' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic: ticks, partitions: 1 }])
  const ticker = new DemoTicker(kafka, ticks)
  ticker.start()
  t.teardown(() => ticker.stop())

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ viewport: { width: 1440, height: 1500 } })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })

  // signed out: the panel offers Sign in
  await page.goto(`${origin}/portal`)
  await page.locator('#sign-in').waitFor({ timeout: WAIT_MS })

  // the provider's own login page, then back to the portal, signed in
  await page.click('#sign-in')
  await page.waitForURL(url => url.origin === provider.issuer, { timeout: WAIT_MS })
  await page.fill('input[name="login"]', DEMO_DEVELOPER.email)
  await page.fill('input[name="password"]', provider.password)
  await page.click('button[type="submit"]')
  await page.waitForURL(`${origin}/portal#applications`, { timeout: WAIT_MS })
  const signedInAs = page.locator('#signed-in-as')
  await signedInAs.waitFor({ timeout: WAIT_MS })
  t.equal(await signedInAs.textContent(), `Signed in as ${DEMO_DEVELOPER.email}`, 'the portal shows the developer')
  const cookies = await context.cookies(origin)
  const session = cookies.find(c => c.name === 'sluice_portal_session')
  t.ok(session, 'a session cookie')
  t.equal(session?.httpOnly, true, 'HttpOnly: the page\'s scripts cannot read it')
  t.equal(session?.sameSite, 'Lax')
  t.notOk(cookies.some(c => c.name === 'sluice_portal_sign_in'), 'the sign-in cookie is gone once used')

  // an application, subscribed to the free plan (approved at once), and a key
  await page.fill('#application-name', 'dashboard')
  await page.click('#create-application button[type="submit"]')
  const application = page.locator('li.application[data-name="dashboard"]')
  await application.waitFor({ timeout: WAIT_MS })
  await application.locator('select.plan-choice').selectOption('demo/free')
  await application.locator('button.subscribe').click()
  await application.locator('.app-subscriptions li[data-product="demo"][data-state="active"]').waitFor({ timeout: WAIT_MS })
  t.match(await application.locator('.app-subscriptions').textContent(), /demo: free \(active\)/, 'the free plan, active at once')
  await application.locator('button.issue-key[data-product="demo"]').click()
  const key = await page.locator('#new-key').textContent({ timeout: WAIT_MS })
  t.match(key, /^sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/, 'the key, shown once')

  // the developer API knows the same developer as a token of that issuer would: <iss>|<sub>
  const listed = await page.evaluate('fetch(\'/v1/developer/applications\').then(r => r.json())') as { applications: Array<{ id: string, name: string }> }
  t.same(listed.applications.map(a => a.name), ['dashboard'])
  const owner = (await app.inject({ method: 'GET', url: '/portal/session', headers: { cookie: `sluice_portal_session=${session!.value}` } })).json()
  t.equal(owner.developer.id, `${provider.issuer}|${DEMO_DEVELOPER.email}`, 'developer id <iss>|<sub> of the ID token')

  // the key in the console: records produced to Kafka arrive
  await page.click('#use-key')
  t.equal(await page.inputValue('#credential'), key, 'the key went into the console')
  await page.click('#connect')
  await page.locator('#connection-status[data-state="connected"]').waitFor({ timeout: WAIT_MS }).catch(async (error: Error) => {
    throw new Error(`${error.message}; the console said: ${await page.locator('#events').textContent()}`)
  })
  await page.fill('#subscribe-topic', ticks)
  await page.click('#subscribe-submit')
  const tickRows = page.locator(`#messages li.message[data-topic="${ticks}"]`)
  await tickRows.nth(2).waitFor({ timeout: WAIT_MS })
  t.match(await tickRows.first().textContent(), /"symbol":"(BTC|ETH|SOL)-USD"/, 'a tick, received with the application\'s key')

  await mkdir(ARTIFACTS, { recursive: true })
  await page.evaluate('window.scrollTo(0, 0)')
  await page.screenshot({ path: join(ARTIFACTS, 'portal-signed-in.png') })

  // a request that changes something must come from the portal's origin (the CSRF check)
  const crossOrigin = await app.inject({
    method: 'POST',
    url: '/v1/developer/applications',
    headers: { cookie: `sluice_portal_session=${session!.value}`, origin: 'http://evil.example', 'content-type': 'application/json' },
    payload: { name: 'forged' }
  })
  t.equal(crossOrigin.statusCode, 403)
  t.equal(crossOrigin.json().error.code, 'SLUICE_PORTAL_CROSS_ORIGIN', 'a cross-origin request with the cookie is refused')

  // a tampered cookie: another subject under the same MAC is refused
  const [payload, mac] = session!.value.split('.')
  const forged = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  forged.sub = 'someone-else@sluice.dev'
  const tampered = await app.inject({ method: 'GET', url: '/v1/developer/applications', headers: { cookie: `sluice_portal_session=${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${mac}` } })
  t.equal(tampered.statusCode, 401)
  t.equal(tampered.json().error.code, 'SLUICE_PORTAL_SESSION_INVALID', 'a tampered session cookie is refused')
  t.match(tampered.json().error.message, /not signed by this gateway: sign in again/)

  // a callback whose state is not the one this browser was sent with
  const login = await app.inject({ method: 'GET', url: '/portal/login' })
  t.equal(login.statusCode, 302)
  t.match(login.headers.location, new RegExp(`^${provider.issuer}/auth\\?.*code_challenge_method=S256`), 'to the provider, with a PKCE challenge')
  const signInCookie = String(login.headers['set-cookie']).split(';')[0]
  const wrongState = await app.inject({ method: 'GET', url: '/portal/callback?code=abc&state=not-the-state', headers: { cookie: signInCookie } })
  t.equal(wrongState.statusCode, 400)
  t.equal(wrongState.json().error.code, 'SLUICE_PORTAL_SIGN_IN_STATE', 'a wrong state is refused')
  // the right state but a code the provider never issued: the provider's refusal, named
  const state = new URL(login.headers.location!).searchParams.get('state')!
  const badCode = await app.inject({ method: 'GET', url: `/portal/callback?code=not-a-code&state=${state}&iss=${encodeURIComponent(provider.issuer)}`, headers: { cookie: signInCookie } })
  t.equal(badCode.statusCode, 401)
  t.equal(badCode.json().error.code, 'SLUICE_PORTAL_SIGN_IN_FAILED', 'a code the provider refuses')
  t.notOk(String(badCode.headers['set-cookie'] ?? '').includes('sluice_portal_session='), 'and no session')
  const noCookie = await app.inject({ method: 'GET', url: '/portal/callback?code=abc&state=x' })
  t.equal(noCookie.json().error.code, 'SLUICE_PORTAL_SIGN_IN_STATE', 'a callback without a sign-in started here is refused')

  // sign out: the cookie goes, and the developer API answers 401
  await page.click('#sign-out')
  await page.locator('#sign-in').waitFor({ timeout: WAIT_MS })
  t.notOk((await context.cookies(origin)).some(c => c.name === 'sluice_portal_session'), 'the session cookie is gone')
  const after = await page.evaluate('fetch(\'/v1/developer/applications\').then(async r => ({ status: r.status, body: await r.json() }))') as { status: number, body: { error: { code: string } } }
  t.equal(after.status, 401, 'signed out: the developer API answers 401')
  t.match(after.body.error.code, /^SLUICE_AUTH_/)

  t.same(problems, [], 'no script error on the page')
})
