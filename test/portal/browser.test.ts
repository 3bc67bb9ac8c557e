// The developer portal in a real browser (Debian's chromium, driven by
// playwright-core) against the real gateway (buildApp) on the real broker:
// open /portal, find the demo product, paste the dev credential, subscribe to
// the ticker and see ticks arrive, publish to the tenant's own order topic and
// see the ack with its offset, try the read-only ticker and see the error
// explained. The page must fetch nothing from any other origin. A screenshot
// is saved under .artifacts/portal/ (git-ignored).
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
import { startGateway } from '../harness/gateway.ts'
import { kafkaBrokers } from '../helpers.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(ROOT, '.artifacts', 'portal')
// a bound on each wait for the page, not a timing assertion: the first tick
// waits for the hub's consumer to join on a broker that other suites share
const WAIT_MS = 30_000

test('the portal: catalogue, AsyncAPI and the live console in headless Chromium', async t => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  // the example policy, with topic names of this run's own: suites share one broker
  const suffix = randomBytes(4).toString('hex')
  const ticks = `demo.ticks-${suffix}`
  const orders = `orders-${suffix}`
  const example = await readFile(join(ROOT, 'policies', 'example.yaml'), 'utf8')
  const policyDir = await mkdtemp(join(tmpdir(), 'sluice-portal-'))
  t.teardown(() => rm(policyDir, { recursive: true, force: true }))
  await writeFile(join(policyDir, 'example.yaml'), example.replaceAll('demo.ticks', ticks).replaceAll('orders.', `${orders}.`))

  // the console connects from the gateway's own origin, which must be allowed like any other
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const devToken = randomBytes(24).toString('base64url')
  await startGateway({
    t,
    port,
    policyDir,
    config: { dev: { token: devToken }, server: { host: '127.0.0.1', port }, auth: { origins: [origin] }, stream: { consumerGraceMs: 200 } }
  })

  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'portal-suite' })
  t.teardown(() => kafka.close())
  const ordersTopic = `${orders}.dev` // the dev credential's subject is `dev`
  await kafka.ensureTopics([{ topic: ticks, partitions: 1 }, { topic: ordersTopic, partitions: 1 }])
  const ticker = new DemoTicker(kafka, ticks)
  ticker.start()
  t.teardown(() => ticker.stop())

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1440, height: 1500 } })
  const requested: string[] = []
  const sockets: string[] = []
  const problems: string[] = []
  page.on('request', request => { requested.push(request.url()) })
  page.on('websocket', socket => { sockets.push(socket.url()) })
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  page.on('console', message => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text())
  })

  // the catalogue: the demo product, its plans in words, its topics, its AsyncAPI
  await page.goto(`${origin}/portal`)
  const demo = page.locator('[data-product="demo"]')
  await demo.waitFor({ timeout: WAIT_MS })
  t.match(await demo.locator('h3').textContent(), /Demo market data/, 'the demo product, by its title')
  t.match(await demo.locator('.description').textContent(), /synthetic ticker/)
  t.match(await demo.locator('[data-plan="free"]').textContent(), /2 concurrent connections.*5 messages published a second.*64 KiB delivered a second/s, 'limits in words')
  const tickTopic = demo.locator(`.topic[data-topic="${ticks}"]`)
  t.match(await tickTopic.textContent(), /Ticks for BTC-USD.*JSON.*"symbol"/s, 'the topic, its encoding and its example value')
  const channel = demo.locator(`.channel[data-address="${ticks}"]`)
  await channel.waitFor({ timeout: WAIT_MS })
  const channelText = await channel.textContent()
  t.match(channelText, /Subscribe \(receive\)/, 'AsyncAPI: the operation the rules allow')
  t.notMatch(channelText, /Publish \(send\)/, 'and not the one they do not')
  t.match(channelText, /Payload schema.*"required".*Example.*"symbol"/s, 'AsyncAPI: payload schema and message example')
  t.match(await demo.locator(`.channel[data-address="${orders}.*"]`).textContent(), /Publish \(send\)/, 'the order topics can be published to')

  // a bad credential: the browser only sees 1006; the console asks the gateway why
  await page.fill('#credential', 'not-the-dev-token')
  await page.click('#connect')
  const diagnosis = page.locator('#events .event-diagnosis').first()
  await diagnosis.waitFor({ timeout: WAIT_MS })
  t.match(await diagnosis.textContent(), /HTTP 401 SLUICE_AUTH_/, 'a refused upgrade is explained with the gateway\'s own reason')

  // the dev credential, then the ticker, from the catalogue's own button
  await page.fill('#credential', devToken)
  await page.click('#connect')
  await page.locator('#connection-status[data-state="connected"]').waitFor({ timeout: WAIT_MS })
  await tickTopic.getByRole('button', { name: 'Subscribe in the console' }).click()
  t.equal(await page.inputValue('#subscribe-topic'), ticks, 'the catalogue filled the console')
  await page.click('#subscribe-submit')
  await page.locator(`#subscriptions li[data-topic="${ticks}"]`).waitFor({ timeout: WAIT_MS })
  const tickRows = page.locator(`#messages li.message[data-topic="${ticks}"]`)
  await tickRows.nth(5).waitFor({ timeout: WAIT_MS })
  const tick = await tickRows.first().textContent()
  t.match(tick, new RegExp(`${ticks.replace('.', '\\.')} #0 @\\d+`), 'a tick, with partition and offset')
  t.match(tick, /"symbol":"(BTC|ETH|SOL)-USD","price":[\d.]+/, 'and its value')
  t.match(await page.locator('#message-count').textContent(), /received, the last \d+ shown \(at most 200\)/)
  t.match(await page.locator('#cursor').textContent(), new RegExp(`^${ticks.replace('.', '\\.')}@0:\\d+$`), 'the reader\'s resume cursor')

  // publish where allowed: the ack with partition and offset
  await page.fill('#publish-topic', ordersTopic)
  await page.fill('#publish-key', 'order-1')
  await page.fill('#publish-value', '{"qty": 3, "side": "buy"}')
  await page.click('#publish-submit')
  const ack = page.locator('#events .event-ack').first()
  await ack.waitFor({ timeout: WAIT_MS })
  t.match(await ack.textContent(), new RegExp(`topic ${ordersTopic.replace('.', '\\.')}, partition 0, offset \\d+`), 'the ack, with partition and offset')
  t.match(await ack.getAttribute('data-offset'), /^\d+$/)
  t.match(await page.locator('#publish-result').textContent(), /^Acked p\d+: topic .*, offset \d+$/)

  // the read-only ticker: refused, and explained
  await page.fill('#publish-topic', ticks)
  await page.click('#publish-submit')
  const refused = page.locator('#events .event-error[data-code="FORBIDDEN"]').first()
  await refused.waitFor({ timeout: WAIT_MS })
  const refusedText = await refused.textContent()
  t.match(refusedText, /FORBIDDEN \(p\d+\): Not allowed to publish/, 'the gateway\'s error frame')
  t.match(refusedText, /does not allow this on this topic/, 'explained in words')
  t.match(await page.locator('#publish-result').textContent(), /Refused p\d+: FORBIDDEN/)

  await mkdir(ARTIFACTS, { recursive: true })
  // what a reader sees (the console beside the catalogue), and the whole page
  await page.evaluate('window.scrollTo(0, 0)')
  await page.screenshot({ path: join(ARTIFACTS, 'portal.png') })
  await page.screenshot({ path: join(ARTIFACTS, 'portal-full.png'), fullPage: true })

  // a close is explained too
  await page.click('#disconnect')
  const closed = page.locator('#events .event-close[data-code="1000"]').first()
  await closed.waitFor({ timeout: WAIT_MS })
  t.match(await closed.textContent(), /Closed normally/)

  // the message list keeps the last MAX_MESSAGES rows, newest first (the console's own code, in the page)
  const bounded = await page.evaluate(`import('/portal/console.js').then(({ prepend, MAX_MESSAGES }) => {
    const list = document.createElement('ul')
    for (let i = 0; i < MAX_MESSAGES + 50; i++) prepend(list, Object.assign(document.createElement('li'), { textContent: String(i) }), MAX_MESSAGES)
    return { max: MAX_MESSAGES, rows: list.children.length, newest: list.firstElementChild.textContent, oldest: list.lastElementChild.textContent }
  })`)
  t.same(bounded, { max: 200, rows: 200, newest: '249', oldest: '50' }, 'at most 200 messages on screen, the newest kept')

  // the same page from an origin the gateway does not allow (localhost is not 127.0.0.1):
  // the credential is good, the Origin is not, and the console says so
  const elsewhere = await browser.newPage()
  await elsewhere.goto(`http://localhost:${port}/portal`)
  await elsewhere.fill('#credential', devToken)
  await elsewhere.click('#connect')
  const originDiagnosis = elsewhere.locator('#events .event-diagnosis').first()
  await originDiagnosis.waitFor({ timeout: WAIT_MS })
  t.match(await originDiagnosis.textContent(), /The credential is valid.*Origin is not in its allow-list \(auth\.origins\)/s, 'a refused Origin is named')
  await elsewhere.close()

  t.ok(requested.length > 0)
  t.same(requested.filter(url => new URL(url).origin !== origin), [], 'no request to any other origin')
  t.same(sockets.filter(url => new URL(url).host !== `127.0.0.1:${port}`), [], 'WebSockets only to the gateway')
  t.notOk([...requested, ...sockets].some(url => url.includes(devToken)), 'the token never went into a URL (the bearer subprotocol carried it)')
  t.same(problems, [], 'no script error, nothing blocked by the Content-Security-Policy')
})
