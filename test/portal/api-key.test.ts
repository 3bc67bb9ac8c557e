// The first hour with an API key: an operator runs `sluice topics create` and
// `sluice keys issue` as a user would; the developer pastes the key into the
// portal (headless Chromium), subscribes to the pattern product and publishes
// the example to their own orders.<subject>, filled in by the page.
import { test } from 'tap'
import { chromium } from 'playwright-core'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { freePort } from '@sluice/stack'
import { kafkaBrokers, redisUrl, unique } from '../helpers.ts'
import { startGateway } from '../harness/gateway.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHROMIUM = '/usr/bin/chromium'
// a bound on each wait for the page, not a timing assertion
const WAIT_MS = 30_000

async function sluice (args: string[], env: Record<string, string>): Promise<string> {
  const child = spawn(join(ROOT, 'node_modules', '.bin', 'sluice'), args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', chunk => { out += chunk })
  child.stderr.on('data', chunk => { err += chunk })
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
  if (code !== 0) throw new Error(`sluice ${args.join(' ')}: exit ${code}: ${err}`)
  return out.trim()
}

test('a key from `sluice keys issue` subscribes to a pattern product in the portal and publishes the example to its own topic', async t => {
  const suffix = randomBytes(4).toString('hex')
  const orders = `orders-${suffix}`
  const example = await readFile(join(ROOT, 'policies', 'example.yaml'), 'utf8')
  const policyDir = await mkdtemp(join(tmpdir(), 'sluice-portal-key-'))
  t.teardown(() => rm(policyDir, { recursive: true, force: true }))
  await writeFile(join(policyDir, 'example.yaml'), example.replaceAll('demo.ticks', `demo.ticks-${suffix}`).replaceAll('orders.', `${orders}.`))

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const adminToken = randomBytes(24).toString('base64url')
  await startGateway({
    t,
    policyDir,
    port,
    config: {
      redis: { url: redisUrl() },
      admin: { token: adminToken },
      server: { host: '127.0.0.1', port },
      auth: { origins: [origin], apiKeys: { prefix: unique('sluice-portal-key') + ':' } },
      stream: { consumerGraceMs: 200 }
    }
  })

  // the operator's terminal
  const mine = `${orders}.alice`
  t.match(await sluice(['topics', 'create', mine, '--policy', policyDir, '--partitions', '1', '--brokers', kafkaBrokers().join(',')], {}), `created  ${mine}`)
  const key = await sluice(['keys', 'issue', '--owner', 'alice', '--product', 'demo', '--plan', 'pro'], { SLUICE_URL: origin, SLUICE_ADMIN_TOKEN: adminToken })
  t.match(key, /^sk_/)

  // the developer's browser
  const userDataDir = await mkdtemp(join(tmpdir(), 'sluice-chromium-'))
  t.teardown(() => rm(userDataDir, { recursive: true, force: true }))
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(`${origin}/portal`)
  const demo = page.locator('[data-product="demo"]')
  await demo.waitFor({ timeout: WAIT_MS })
  await page.fill('#credential', key)
  await page.click('#connect')
  await page.locator('#connection-status[data-state="connected"]').waitFor({ timeout: WAIT_MS })
  await page.locator('#identity-subject').waitFor({ timeout: WAIT_MS })
  t.equal(await page.locator('#identity-subject').textContent(), 'alice', 'the key\'s subject is shown')
  t.equal(await page.locator('#identity-plan').getAttribute('data-plan'), 'pro', 'and its plan')

  const ordersTopic = demo.locator(`.topic[data-topic="${orders}.*"]`)
  await ordersTopic.getByRole('button', { name: 'Subscribe in the console' }).click()
  await page.click('#subscribe-submit')
  await page.locator(`#subscriptions li[data-topic="${orders}.*"]`).waitFor({ timeout: WAIT_MS })
  t.equal(await page.locator('#events .event-error').count(), 0, 'the pattern subscription is taken')

  await ordersTopic.getByRole('button', { name: 'Publish the example' }).click()
  t.equal(await page.inputValue('#publish-topic'), mine, 'the example is filled in with the key\'s subject')
  await page.click('#publish-submit')
  const ack = page.locator('#events .event-ack').first()
  await ack.waitFor({ timeout: WAIT_MS })
  const offset = await ack.getAttribute('data-offset')
  await page.locator(`#messages li.message[data-topic="${mine}"][data-offset="${offset}"]`).waitFor({ timeout: WAIT_MS })
  t.pass('the published example arrived through the pattern subscription')
})
