// The sluice command as a user runs it: strict flags, the npm wrapper passing
// signals on to the gateway, topics, keys and a dev token against the real stack.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { KafkaClient } from '@sluice/kafka'
import { freePort } from '@sluice/stack'
import { eventually, kafkaBrokers, redisUrl, unique } from '../../../test/helpers.ts'
import { startGateway } from '../../../test/harness/gateway.ts'

const root = join(import.meta.dirname, '..', '..', '..')
const bin = join(root, 'node_modules', '.bin', 'sluice')

function run (cmd: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(cmd, args, { cwd: root, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += chunk })
  child.stderr.on('data', chunk => { stderr += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, exited, out: () => stdout, err: () => stderr }
}

async function sluice (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, out: string, err: string }> {
  const p = run(bin, args, env)
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

test('unknown or misspelled flags and arguments are errors with the usage', async t => {
  for (const args of [['gateway', '--confg', 'x'], ['topics', 'create', '--partitons', '3', 't'], ['frobnicate'], ['policy', 'check'], ['keys', 'issue', '--owner']]) {
    const { code, err } = await sluice(args)
    t.equal(code, 2, `${args.join(' ')}: exit 2`)
    t.match(err, 'usage: sluice <command>', `${args.join(' ')}: the usage`)
  }
  const noConfig = await sluice(['gateway'], { SLUICE_LOG_LEVEL: 'warn' })
  t.equal(noConfig.code, 78, 'no config at all: EX_CONFIG')
  t.match(noConfig.err, 'npm start -- --config FILE', 'and how to give one')
})

test('SIGTERM to the PID of `npm start` drains the gateway and nothing keeps listening', async t => {
  const port = await freePort()
  const npm = run('npm', ['start', '--silent', '--', '--config', join(root, 'apps', 'cli', 'test', 'gateway.yaml')], {
    KAFKA_BROKERS: kafkaBrokers().join(','), SLUICE_PORT: String(port), SLUICE_HOST: '127.0.0.1', SLUICE_DRAIN_MS: '1000', SLUICE_SHUTDOWN_TIMEOUT_MS: '8000'
  })
  t.teardown(() => { npm.child.kill('SIGKILL') })
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, 60_000, 'the gateway answers /healthz')
  // a client holding a socket hears the drain's 1001
  const client = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?access_token=cli-suite-dev-token-0123456789abcdef`, ['sluice.v1'])
  await new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) })
  const closed = new Promise<number>(resolve => client.once('close', code => resolve(code)))

  npm.child.kill('SIGTERM')
  t.equal(await closed, 1001, 'the socket is closed with 1001 (the drain ran)')
  const code = await npm.exited
  t.ok(code === 0 || code === null, `npm exits (${code})`)
  t.match(npm.out(), '"signal":"SIGTERM"', 'the gateway logged the signal it got')
  await eventually(async () => !await listening(port), 5_000, 'nothing listens on the port')
})

test('topics create makes a policy product\'s topics; list and describe show them', async t => {
  const topic = unique('orders')
  const brokers = kafkaBrokers().join(',')
  const created = await sluice(['topics', 'create', topic, '--policy', 'policies', '--partitions', '2', '--brokers', brokers])
  t.equal(created.code, 0, created.err)
  t.match(created.out, `created  ${topic}  (2 partitions)`)
  const again = await sluice(['topics', 'create', topic, '--policy', 'policies', '--brokers', brokers])
  t.match(again.out, `exists   ${topic}`, 'a second create says it exists')
  const outside = await sluice(['topics', 'create', unique('nobody'), '--policy', 'policies', '--brokers', brokers])
  t.equal(outside.code, 1, 'a topic no product has is refused')
  t.match(outside.err, 'no product of policies has this topic')
  const list = await sluice(['topics', 'list', '--brokers', brokers])
  t.ok(list.out.split('\n').includes(topic), 'listed')
  const describe = await sluice(['topics', 'describe', topic, '--brokers', brokers])
  t.match(describe.out, `${topic}: 2 partitions`)
})

test('keys issue, list and revoke through the admin API; the issued key connects; a token from `sluice token` too', async t => {
  const adminToken = 'cli-suite-admin-token-0123456789abcdef'
  const secret = 'cli-suite-hs256-secret-0123456789abcdef'
  const { url: address } = await startGateway({
    t,
    policyDir: join(root, 'policies'),
    config: {
      redis: { url: redisUrl() },
      admin: { token: adminToken },
      auth: { apiKeys: { prefix: unique('sluice-cli') + ':' }, jwt: { audience: ['sluice'], issuers: [{ issuer: 'sluice-dev', algorithms: ['HS256'], secret }] } }
    }
  })
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'cli-suite' })
  t.teardown(() => kafka.close())
  await kafka.ensureTopics([{ topic: 'demo.ticks', partitions: 3 }])
  const env = { SLUICE_ADMIN_TOKEN: adminToken, SLUICE_URL: address }

  const issued = await sluice(['keys', 'issue', '--owner', 'alice', '--product', 'demo', '--plan', 'pro', '--ttl', '600'], env)
  t.equal(issued.code, 0, issued.err)
  const key = issued.out.trim()
  t.match(issued.err, 'it is shown only now')
  const connected = async (headers: Record<string, string>) => {
    const ws = new WebSocket(`${address.replace('http', 'ws')}/v1/stream?topics=demo.ticks`, ['sluice.v1'], { headers })
    const outcome = await new Promise<string>(resolve => {
      ws.once('open', () => resolve('open'))
      ws.once('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`))
      ws.once('error', () => resolve('error'))
    })
    ws.close()
    return outcome
  }
  t.equal(await connected({ 'x-api-key': key }), 'open', 'the issued key connects')
  const list = await sluice(['keys', 'list', '--owner', 'alice'], env)
  const id = list.out.trim().split(/\s+/)[0]!
  t.match(list.out, 'alice  demo  pro')
  const revoked = await sluice(['keys', 'revoke', id], env)
  t.equal(revoked.code, 0, revoked.err)
  await eventually(async () => await connected({ 'x-api-key': key }) === 'HTTP 401', 10_000, 'the revoked key is refused')
  const noToken = await sluice(['keys', 'list'], { SLUICE_URL: address })
  t.equal(noToken.code, 2, 'no admin token: a usage error')

  const jwt = await sluice(['token', '--sub', 'bob', '--ttl', '600'], { SLUICE_JWT_SECRET: secret })
  t.equal(await connected({ authorization: `Bearer ${jwt.out.trim()}` }), 'open', 'the dev token connects')
  const forged = await sluice(['token', '--sub', 'bob'], { SLUICE_JWT_SECRET: 'another secret of enough length 0123456' })
  t.equal(await connected({ authorization: `Bearer ${forged.out.trim()}` }), 'HTTP 401', 'one signed with another secret does not')
})
