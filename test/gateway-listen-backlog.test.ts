// server.listenBacklog reaches the listening socket. The kernel shows a listening socket's accept-queue bound
// as its Send-Q in `ss -ltn` (inet_diag; /proc/net/tcp shows 0 there), capped at net.core.somaxconn.
import { test, type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { ConfigError } from '@sluice/config'
import { loadGatewayConfig } from '../apps/gateway/src/config.ts'
import { startGateway } from '../apps/gateway/src/server.ts'
import { kafkaBrokers } from './helpers.ts'

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
