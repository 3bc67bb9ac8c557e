// server.listenBacklog and server.listenSockets reach the listening sockets. The kernel shows a listening
// socket's accept-queue bound as its Send-Q in `ss -ltn` (inet_diag; /proc/net/tcp shows 0 there), capped at
// net.core.somaxconn; and it decides how many connects of a burst the kernel completes while the gateway is not
// accepting: each of the port's sockets (SO_REUSEPORT) has a queue of its own.
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

/** the accept-queue bound of each socket listening on this port, as the kernel reports it */
function acceptQueueBounds (port: number): number[] {
  // -H: no header; a listening socket's line is `LISTEN <Recv-Q> <Send-Q> <local> <peer>`
  const lines = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)
  return lines.map(line => {
    const [state, , sendQ] = line.split(/\s+/)
    if (state !== 'LISTEN') throw new Error(`not a listening socket on port ${port}: ${JSON.stringify(line)}`)
    return Number(sendQ)
  })
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

test('the gateway listens on two sockets of its port with an accept queue of 4096 each by default, not Node\'s one of 511', async t => {
  const port = await listening(t, {})
  const bound = Math.min(4096, somaxconn)
  t.same(acceptQueueBounds(port), [bound, bound], `two listening sockets, Send-Q 4096 each (or net.core.somaxconn, ${somaxconn} here, when lower)`)
})

test('SLUICE_LISTEN_BACKLOG sets the accept queue of each listening socket, SLUICE_LISTEN_SOCKETS how many there are', async t => {
  t.same(acceptQueueBounds(await listening(t, { SLUICE_LISTEN_BACKLOG: '100' })), [100, 100], 'Send-Q is 100 on both')
  t.same(acceptQueueBounds(await listening(t, { SLUICE_LISTEN_SOCKETS: '1', SLUICE_LISTEN_BACKLOG: '100' })), [100], 'one socket')
  t.same(acceptQueueBounds(await listening(t, { SLUICE_LISTEN_SOCKETS: '4', SLUICE_LISTEN_BACKLOG: '100' })), [100, 100, 100, 100], 'four sockets')
})

test('a listen backlog outside 1 to 65,535 and listening sockets outside 1 to 16 are refused with their paths', async t => {
  const refused = (env: Record<string, string>): ConfigError['problems'] => {
    try {
      loadGatewayConfig({ base: { kafka: { brokers: kafkaBrokers() } }, env })
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
    }
    return []
  }
  for (const value of ['0', '70000']) t.match(refused({ SLUICE_LISTEN_BACKLOG: value }), [{ path: '/server/listenBacklog' }], `backlog ${value} is refused`)
  for (const value of ['0', '17']) t.match(refused({ SLUICE_LISTEN_SOCKETS: value }), [{ path: '/server/listenSockets' }], `${value} sockets are refused`)
})

/**
 * A gateway process of its own with a backlog of 8 on `sockets` listening sockets, stopped (SIGSTOP) while 40
 * connects arrive; how many the kernel completed before any SYN retransmit, and whether every one of the 40 is
 * answered once the gateway runs again (each sends a request for /healthz as soon as it is connected).
 */
async function stoppedBurst (t: Test, sockets: number): Promise<{ bounds: number[], completed: number, answered: () => number }> {
  // the gateway as a process of its own, so that it can be stopped (SIGSTOP) while this test connects
  const port = await freePort()
  const entry = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env.PATH ?? '', KAFKA_BROKERS: kafkaBrokers().join(','), SLUICE_HOST: '127.0.0.1', SLUICE_PORT: String(port), SLUICE_LISTEN_BACKLOG: '8', SLUICE_LISTEN_SOCKETS: String(sockets), SLUICE_LOG_LEVEL: 'silent' },
    stdio: 'ignore'
  })
  const open: Socket[] = []
  t.teardown(() => {
    for (const s of open) s.destroy()
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
  await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
    return res?.status === 200
  }, 20_000, 'the gateway answers /healthz')
  const bounds = acceptQueueBounds(port)

  // stopped, the gateway accepts nothing: the kernel completes handshakes until an accept queue is full
  // (Linux holds backlog + 1) and drops the SYNs past it; those clients retry after 1 s, and this test counts
  // before that
  child.kill('SIGSTOP')
  let connected = 0
  let answered = 0
  for (let i = 0; i < 40; i++) {
    const s = connect(port, '127.0.0.1', () => {
      connected++
      s.write('GET /healthz HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n')
    })
    let head = ''
    s.on('data', chunk => {
      if (head.length >= 12) return
      head += String(chunk)
      if (head.startsWith('HTTP/1.1 200')) answered++
    })
    s.on('error', () => {})
    open.push(s)
  }
  await new Promise(resolve => setTimeout(resolve, 500))
  const completed = connected
  child.kill('SIGCONT')
  return { bounds, completed, answered: () => answered }
}

test('a burst past the accept queue waits in the kernel: with the gateway stopped, 9 of 40 connects complete at a backlog of 8 on one socket', async t => {
  const burst = await stoppedBurst(t, 1)
  t.same(burst.bounds, [8], 'one socket, Send-Q 8')
  t.equal(burst.completed, 9, '9 connects completed (backlog 8, plus one)')
  // the others' SYNs are sent again 1 s and then 3 s later
  await eventually(() => burst.answered() === 40, 15_000, 'all 40 answered once the gateway runs')
  t.pass('every connection answered after SYN retransmits')
})

test('two listening sockets queue twice the burst: 18 of 40 connects complete at a backlog of 8, and both sockets\' connections are served', async t => {
  const burst = await stoppedBurst(t, 2)
  t.same(burst.bounds, [8, 8], 'two sockets, Send-Q 8 each')
  // the kernel spreads the connects over the two queues by their addresses: each holds 9 (40 connects leave
  // fewer than 9 on one of them about once in 5,000 runs)
  t.equal(burst.completed, 18, '18 connects completed (two queues of backlog 8, plus one each)')
  await eventually(() => burst.answered() === 40, 15_000, 'all 40 answered once the gateway runs')
  t.pass('every connection answered: those the second socket accepted reach the same HTTP server')
})

test('the app closes with keep-alive connections open on every listening socket', async t => {
  const config = loadGatewayConfig({
    base: { kafka: { brokers: kafkaBrokers() }, log: { level: 'silent' }, policy: { watch: false }, server: { host: '127.0.0.1', port: 0 } }
  })
  const gw = await startGateway(config)
  const port = Number(new URL(gw.address).port)
  // 20 connections, each answered once and left open (HTTP/1.1 keep-alive): the kernel spreads them over both sockets
  const open: Socket[] = []
  t.teardown(() => { for (const s of open) s.destroy() })
  let answered = 0
  for (let i = 0; i < 20; i++) {
    const s = connect(port, '127.0.0.1', () => { s.write('GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n') })
    s.once('data', () => { answered++ })
    s.on('error', () => {})
    open.push(s)
  }
  await eventually(() => answered === 20, 5000, '20 keep-alive connections answered')
  const closedIn = performance.now()
  const closed = await Promise.race([gw.app.close().then(() => true), new Promise(resolve => setTimeout(resolve, 5000, false))])
  t.ok(closed, `the app closed in ${Math.round(performance.now() - closedIn)} ms, with 20 idle connections open`)
  await eventually(() => open.every(s => s.closed || s.readableEnded), 5000, 'the idle connections closed by the app')
  t.pass('every idle connection was closed with the app')
})

test('a second gateway on a port another one serves fails with EADDRINUSE, as with one socket (SO_REUSEPORT does not let it join)', async t => {
  const port = await freePort()
  const config = (sockets: number) => loadGatewayConfig({
    base: { kafka: { brokers: kafkaBrokers() }, log: { level: 'silent' }, policy: { watch: false }, server: { host: '127.0.0.1', port, listenSockets: sockets } }
  })
  const first = await startGateway(config(2))
  t.teardown(() => first.app.close())
  t.same(acceptQueueBounds(port).length, 2, 'the first gateway listens on two sockets')
  for (const sockets of [2, 1]) {
    const second = startGateway(config(sockets))
    await t.rejects(second, { code: 'EADDRINUSE' }, `a second gateway with ${sockets} socket(s) is refused`)
    await second.then(gw => gw.app.close(), () => {})
  }
  t.same(acceptQueueBounds(port).length, 2, 'and the port still has the first gateway\'s two sockets only')
})
