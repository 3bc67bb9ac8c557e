// server.listenBacklog reaches the listening socket. The kernel shows a listening socket's accept-queue bound
// as its Send-Q in `ss -ltn` (inet_diag; /proc/net/tcp shows 0 there), capped at net.core.somaxconn; and it
// decides how many connects of a burst the kernel completes while the gateway is not accepting.
import { test, type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { ConfigError } from '@sluice/config'
import { loadGatewayConfig } from '@sluice/gateway/config'
import { startGateway } from '@sluice/gateway/server'
import { freePort } from '@sluice/stack'
import { eventually, kafkaBrokers } from '../helpers.ts'

const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))

/** the accept-queue bound of the socket listening on this port, as the kernel reports it */
function acceptQueueBound (port: number): number {
  // -H: no header; a listening socket's line is `LISTEN <Recv-Q> <Send-Q> <local> <peer>`
  const line = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim()
  const [state, , sendQ] = line.split(/\s+/)
  if (state !== 'LISTEN') throw new Error(`no listening socket on port ${port}: ${JSON.stringify(line)}`)
  return Number(sendQ)
}

async function listening (t: Test, env: Record<string, string>): Promise<number> {
  const config = loadGatewayConfig({
    base: { kafka: { brokers: kafkaBrokers() }, log: { level: 'silent' }, policy: { watch: false }, server: { host: '127.0.0.1', port: 0 } },
    env
  })
  const gw = await startGateway(config)
  t.teardown(() => gw.app.close())
  return Number(new URL(gw.address).port)
}

test('the gateway listens with an accept queue of 4096 by default, not Node\'s 511', async t => {
  const port = await listening(t, {})
  t.equal(acceptQueueBound(port), Math.min(4096, somaxconn), `Send-Q is 4096 (or net.core.somaxconn, ${somaxconn} here, when lower)`)
})

test('SLUICE_LISTEN_BACKLOG sets the accept queue of the listening socket', async t => {
  const port = await listening(t, { SLUICE_LISTEN_BACKLOG: '100' })
  t.equal(acceptQueueBound(port), 100, 'Send-Q is 100')
})

test('a listen backlog outside 1 to 65,535 is refused with its path', async t => {
  for (const value of ['0', '70000']) {
    let problems: ConfigError['problems'] = []
    try {
      loadGatewayConfig({ base: { kafka: { brokers: kafkaBrokers() } }, env: { SLUICE_LISTEN_BACKLOG: value } })
    } catch (err) {
      if (err instanceof ConfigError) problems = err.problems
    }
    t.match(problems, [{ path: '/server/listenBacklog' }], `${value} is refused`)
  }
})

test('a burst past the accept queue waits in the kernel: with the gateway stopped, 9 of 40 connects complete at a backlog of 8', async t => {
  // the gateway as a process of its own, so that it can be stopped (SIGSTOP) while this test connects
  const port = await freePort()
  const entry = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env.PATH ?? '', KAFKA_BROKERS: kafkaBrokers().join(','), SLUICE_HOST: '127.0.0.1', SLUICE_PORT: String(port), SLUICE_LISTEN_BACKLOG: '8', SLUICE_LOG_LEVEL: 'silent' },
    stdio: 'ignore'
  })
  const sockets: Socket[] = []
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
  await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
    return res?.status === 200
  }, 20_000, 'the gateway answers /healthz')
  t.equal(acceptQueueBound(port), 8, 'Send-Q is 8')

  // stopped, the gateway accepts nothing: the kernel completes handshakes until its accept queue is full
  // (Linux holds backlog + 1) and drops the SYNs past it; those clients retry after 1 s, and this test looks
  // before that
  child.kill('SIGSTOP')
  let connected = 0
  for (let i = 0; i < 40; i++) {
    const s = connect(port, '127.0.0.1', () => { connected++ })
    s.on('error', () => {})
    sockets.push(s)
  }
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(connected, 9, '9 connects completed (backlog 8, plus one)')
})
