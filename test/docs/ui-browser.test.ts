// /docs in a real browser (Debian's chromium, driven by playwright-core)
// against the real gateway (buildApp) on the real broker: the UI renders the
// gateway's OpenAPI document, "Try it out" on GET /v1/products gets the
// catalogue from the gateway, and the page asks nothing of any other origin
// (its assets come from node_modules through the gateway; its CSP allows only
// 'self').
import { test } from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { existsSync } from 'node:fs'
import { freePort } from '@sluice/stack'
import { startGateway } from '../harness/gateway.ts'

const CHROMIUM = '/usr/bin/chromium'
// a bound on each wait for the page, not a timing assertion
const WAIT_MS = 30_000

test('/docs renders the OpenAPI document, tries GET /v1/products, and fetches nothing from elsewhere', async t => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  await startGateway({
    t,
    port,
    config: { server: { host: '127.0.0.1', port }, policy: { watch: false }, admin: { token: 'docs-ui-suite-admin-token-0123456789' } }
  })

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const requested: string[] = []
  const problems: string[] = []
  page.on('request', request => { requested.push(request.url()) })
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  page.on('console', message => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text())
  })

  await page.goto(`${origin}/docs`)
  // swagger-ui ids operations as operations-<tag>-<operationId>
  const products = page.locator('#operations-catalogue-listProducts')
  await products.waitFor({ timeout: WAIT_MS })
  t.ok(await page.locator('#operations-default-issueKey').count() === 1, 'the admin API is in the document (admin token configured)')
  t.ok(await page.locator('#operations-operations-getReadiness').count() === 1, 'and the operations routes')
  t.match(await page.locator('.info .title').textContent(), /Sluice gateway REST API/)

  // Sluice's mark, name and icon, not Fastify's; no note meant for the repository's readers
  t.equal(await page.title(), 'Sluice gateway REST API', 'the tab says Sluice, not Swagger UI')
  const logo = page.locator('.topbar img')
  await logo.waitFor({ timeout: WAIT_MS })
  const src = String(await logo.getAttribute('src'))
  t.match(src, /^data:image\/svg\+xml;base64,/, 'the top bar\'s logo is an inline SVG')
  const svg = Buffer.from(src.replace(/^data:[^,]*,/, ''), 'base64').toString('utf8')
  t.match(svg, /<title>Sluice<\/title>/, 'and it is Sluice\'s')
  t.notMatch(svg, /fastify/i, 'not Fastify\'s logo')
  // the link swagger-ui puts its own logo in (an inline svg) holds ours alone
  const home = page.locator('.topbar-wrapper > a')
  t.same([await home.locator('img').count(), await home.locator('svg').count()], [1, 0], 'the bar\'s logo link holds our image alone')
  const icons = await page.locator('link[rel="icon"]').evaluateAll(links => links.map(l => l.getAttribute('href')))
  t.ok(icons.length > 0 && icons.every(href => /\/theme\/sluice\.svg$/.test(String(href))), `the favicon is Sluice's: ${icons.join(', ')}`)
  const description = await page.locator('.info .description').innerText()
  t.match(description, /Only \/v1\/me needs a credential/)
  t.notMatch(description, /test\/|\.ts\b|hand-written|\.yaml/, 'no internal note (test files, source files) in the visible description')

  await products.locator('.opblock-summary').click()
  await products.getByRole('button', { name: 'Try it out' }).click()
  await products.getByRole('button', { name: 'Execute' }).click()
  const body = products.locator('.live-responses-table .response-col_description pre').first()
  await body.waitFor({ timeout: WAIT_MS })
  t.match(await products.locator('.live-responses-table tbody .response-col_status').first().textContent(), /200/, 'the gateway answered 200')
  t.match(await body.textContent(), /"products"[\s\S]*"market"/, 'with the catalogue of its policy')

  t.ok(requested.length >= 5, `${requested.length} requests`)
  t.same(requested.filter(url => !url.startsWith(`${origin}/`) && !url.startsWith('data:')), [], 'every request went to the gateway itself')
  t.ok(requested.some(url => url === `${origin}/docs/json`), 'the document came from the gateway')
  t.same(problems, [], 'no page error, nothing refused by the CSP')
})
