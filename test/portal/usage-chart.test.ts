// "My applications" draws an application's usage (issue 18) from the
// metering's contract, GET /v1/developer/applications/:id/usage?days=7, in
// headless chromium on the portal the gateway serves (its CSP included).
// Only the developer API's answers are stubbed in the browser (page.route):
// this is the panel's rendering of a contract, whose route another plugin
// serves; test/portal/management.test.ts drives the real routes end to end.
import { test } from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startGateway } from '../harness/gateway.ts'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), '.artifacts', 'portal')
const WAIT_MS = 20_000
const APP = 'app_00112233445566aa'

function day (offset: number): string {
  return new Date(Date.now() - offset * 86_400_000).toISOString().slice(0, 10)
}

const USAGE = {
  application: APP,
  days: [6, 5, 4, 3, 2, 1, 0].map(offset => ({
    date: day(offset),
    delivered: 1000 * (7 - offset) + (offset === 0 ? 234 : 0),
    deliveredBytes: 50_000,
    published: 10 * offset,
    connectionMinutes: 60,
    refused: offset === 2 ? { rate: 3, quota: 1 } : {}
  })),
  today: { date: day(0), delivered: 7234, deliveredBytes: 50_000, published: 0, connectionMinutes: 60, refused: {}, quota: 100_000 }
}

test('My applications shows today\'s deliveries against the quota and draws the last 7 days with uPlot', async t => {
  const gw = await startGateway({ t })
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1440, height: 1200 } })
  const problems: string[] = []
  page.on('pageerror', err => { problems.push(err.message) })
  page.on('console', message => { if (message.type() === 'error') problems.push(message.text()) })
  const json = (body: unknown) => ({ status: 200, contentType: 'application/json', body: JSON.stringify(body) })
  await page.route('**/portal/session', route => route.fulfill(json({ signIn: true, developer: { id: 'dev|ada', name: 'ada@example.com' } })))
  await page.route('**/v1/developer/applications', route => route.fulfill(json({
    applications: [{ id: APP, name: 'board', createdAt: new Date().toISOString(), subscriptions: [{ id: 'sub_1', application: APP, product: 'demo', plan: 'free', state: 'active', createdAt: new Date().toISOString() }] }]
  })))
  await page.route(`**/v1/developer/applications/${APP}/keys`, route => route.fulfill(json({ keys: [] })))
  await page.route(`**/v1/developer/applications/${APP}/usage?days=7`, route => route.fulfill(json(USAGE)))

  await page.goto(`${gw.url}/portal`)
  const usage = page.locator(`li.application[data-application="${APP}"] .app-usage[data-state="available"]`)
  await usage.waitFor({ timeout: WAIT_MS })
  t.equal(await usage.locator('.usage-today').getAttribute('data-delivered'), '7234')
  t.match(await usage.textContent(), /7,234 delivered of 100,000 \(7\.2 % of the daily quota\)/, 'today against the plan\'s daily quota')
  t.equal(await usage.locator('table.usage-days tbody tr').count(), 7, 'a row a day')
  t.equal(await usage.locator('table.usage-days tbody tr').nth(4).locator('td').last().textContent(), '4', 'refusals of a day summed over their reasons')
  await usage.locator('.usage-chart[data-state="drawn"] canvas').waitFor({ timeout: WAIT_MS })
  t.pass('the chart is drawn on a canvas, under the portal\'s CSP')
  await mkdir(ARTIFACTS, { recursive: true })
  await usage.screenshot({ path: join(ARTIFACTS, 'usage-chart.png') })
  const served = await page.evaluate('fetch(\'/portal/uplot.js\').then(async r => ({ status: r.status, type: r.headers.get(\'content-type\'), csp: r.headers.get(\'content-security-policy\'), size: (await r.text()).length }))') as { status: number, type: string, csp: string, size: number }
  t.equal(served.status, 200)
  t.match(served.type, /^text\/javascript/)
  t.match(served.csp, /script-src 'self'/, 'with the portal\'s headers')
  t.ok(served.size < 64 * 1024, `uPlot is small: ${served.size} bytes`)
  t.same(problems, [], 'no script error and nothing the CSP refused')
})
