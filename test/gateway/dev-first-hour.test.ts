// A newcomer's first hour, as they would live it: `npm run dev`, then in a
// second terminal `npx sluice topics create` and `npx sluice keys issue`, then
// a client with that key receives records; the banner stays on one screen and
// is still the last thing on it after traffic; SIGTERM to npm stops everything.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { freePort } from '@sluice/stack'
import { eventually, unique } from '../helpers.ts'

const root = join(import.meta.dirname, '..', '..')
// a terminal's first screen: 24 rows
const SCREEN_ROWS = 24

function run (cmd: string, args: string[], env: Record<string, string> = {}) {
  // its own process group: a test that times out kills npm, the gateway, Kafka and Redis together
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += chunk })
  child.stderr.on('data', chunk => { stderr += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, exited, out: () => stdout, err: () => stderr }
}

async function sluice (args: string[]): Promise<{ code: number | null, out: string, err: string }> {
  const p = run(join(root, 'node_modules', '.bin', 'sluice'), args)
  const code = await p.exited
  return { code, out: p.out(), err: p.err() }
}

function listening (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

test('npm run dev, then topics and a key from a second terminal; the key receives records; the banner stays on screen', async t => {
  const port = await freePort()
  const dev = run('npm', ['run', 'dev', '--silent', '--', '--port', String(port)])
  t.teardown(() => { try { process.kill(-dev.child.pid!, 'SIGKILL') } catch {} })
  await eventually(() => dev.out().includes('Ctrl-C stops'), 120_000, 'the dev banner')
  const out = dev.out()
  const bannerStart = out.indexOf('Sluice dev gateway ready')
  const banner = out.slice(bannerStart)
  t.ok(banner.split('\n').length <= SCREEN_ROWS, `the banner fits one screen (${banner.split('\n').length} lines)`)
  const field = (name: string) => new RegExp(`^  ${name} +(\\S+)`, 'm').exec(banner)?.[1]
  const apiKey = field('api key')
  const adminToken = field('admin')
  const brokers = field('kafka')
  t.match(apiKey, /^sk_/, 'an API key is printed')
  t.ok(adminToken, 'and the admin token')

  // the second terminal
  const topic = unique('orders')
  const created = await sluice(['topics', 'create', topic, '--policy', 'policies', '--brokers', brokers!])
  t.equal(created.code, 0, created.err)
  const issued = await sluice(['keys', 'issue', '--owner', 'dev', '--product', 'demo', '--plan', 'pro', '--url', `http://127.0.0.1:${port}`, '--admin-token', adminToken!])
  t.equal(issued.code, 0, issued.err)
  const key = issued.out.trim()

  // 10 s of traffic: a client with the new key on the demo feed, publishing to its own orders topic
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?topics=demo.ticks`, ['sluice.v1'], { headers: { 'x-api-key': key } })
  t.teardown(() => ws.close())
  const frames: Array<{ op: string, id?: string }> = []
  ws.on('message', data => frames.push(JSON.parse(String(data))))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  // the first record and the first ack (a busy machine may take a while to join the demo feed's consumer)
  ws.send(JSON.stringify({ op: 'publish', id: 'first', topic: 'orders.dev', value: { qty: 1 } }))
  await eventually(() => frames.some(f => f.op === 'message') && frames.some(f => f.id === 'first'), 60_000, 'a first record and a first ack')
  const before = frames.length
  const publishes = setInterval(() => ws.send(JSON.stringify({ op: 'publish', id: `p${frames.length}`, topic: 'orders.dev', value: { qty: 1 } })), 200)
  await new Promise(resolve => setTimeout(resolve, 10_000))
  clearInterval(publishes)
  const during = frames.slice(before)
  t.ok(during.filter(f => f.op === 'message').length > 10, `the key receives the demo feed (${during.filter(f => f.op === 'message').length} records in 10 s)`)
  t.ok(during.filter(f => f.op === 'ack').length > 10, `and its publishes are acked (${during.filter(f => f.op === 'ack').length})`)
  const after = dev.out().slice(out.length).split('\n').filter(Boolean)
  const rows = banner.trimEnd().split('\n').length + after.length
  t.ok(rows <= SCREEN_ROWS, `the banner is still on the screen after 10 s of traffic (${rows} rows: ${after.map(line => line.slice(0, 120)).join(' | ')})`)
  t.same(after.filter(line => /"level":(40|50|60)/.test(line)), [], 'no warning or error during ordinary traffic')
  t.notOk((dev.out() + dev.err()).includes('\u001b['), 'no ANSI escapes')

  dev.child.kill('SIGTERM')
  await dev.exited
  await eventually(async () => !await listening(port), 20_000, 'the gateway stopped')
  const kafkaPort = Number(brokers!.split(':').pop())
  await eventually(async () => !await listening(kafkaPort), 30_000, 'Kafka stopped')
})
