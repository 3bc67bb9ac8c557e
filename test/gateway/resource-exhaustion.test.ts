// The gateway as a process at its open-files limit: before new connections are
// reset, /readyz turns 503 with the reason, one warn line tells it and the
// metrics show it; it turns ready again once the connections close.
// The limit is lowered to 256 for this process (ulimit -n) so that a few
// hundred kept-alive HTTP connections reach it.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { freePort } from '@sluice/stack'
import { eventually, kafkaBrokers, metricSum } from '../helpers.ts'

const entry = join(import.meta.dirname, '..', '..', 'apps', 'gateway', 'src', 'server.ts')
const FD_LIMIT = 256

/** A connection that has had one answer and is kept alive by the server (Fastify keeps one 72 s). */
function keptAlive (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let answer = ''
    socket.setEncoding('utf8')
    socket.on('error', reject)
    socket.on('close', () => reject(new Error(`closed by the gateway before an answer (${answer.length} bytes)`)))
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n'))
    socket.on('data', (chunk: string) => {
      answer += chunk
      if (answer.includes('"status":"ok"')) {
        socket.removeAllListeners('close')
        resolve(socket)
      }
    })
  })
}

test('at 90 % of its open-files limit the gateway is not ready, logs it once and counts it; below 80 % it is ready again', async t => {
  const port = await freePort()
  const env = { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', KAFKA_BROKERS: kafkaBrokers().join(','), SLUICE_PORT: String(port), SLUICE_HOST: '127.0.0.1' }
  const child = spawn('bash', ['-c', `ulimit -n ${FD_LIMIT} && exec "$0" "$1"`, process.execPath, entry], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.resume()
  const exited = new Promise(resolve => child.on('exit', resolve))
  const sockets: Socket[] = []
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    child.kill('SIGKILL')
    await exited
  })
  const base = `http://127.0.0.1:${port}`
  const readyz = async () => {
    const res = await fetch(`${base}/readyz`)
    return { status: res.status, body: await res.json() as { checks: Record<string, { ok: boolean, reason?: string }> } }
  }
  const scrape = async () => await (await fetch(`${base}/metrics`)).text()

  await eventually(async () => (await readyz().catch(() => undefined))?.status === 200, 30_000, 'the gateway is ready')
  t.equal(metricSum(await scrape(), 'sluice_fd_limit'), FD_LIMIT, 'the metric shows the soft limit of the process')
  const atRest = metricSum(await scrape(), 'sluice_open_fds')
  t.ok(atRest > 10 && atRest < FD_LIMIT * 0.8, `${atRest} descriptors open at rest`)

  // one connection at a time, each answered before the next: every one of them must be
  // served, and /readyz must say 503 before the table is full (231 of 256)
  let down: Awaited<ReturnType<typeof readyz>> | undefined
  while (sockets.length < FD_LIMIT) {
    sockets.push(await keptAlive(port))
    // a run of the checks serves /readyz for 100 ms and the watch reuses a read for 100 ms
    if (sockets.length % 5 === 0) {
      await new Promise(resolve => setTimeout(resolve, 220))
      const probe = await readyz()
      if (probe.status === 503) { down = probe; break }
    }
  }
  t.ok(down, `not ready after ${sockets.length} connections, all of them served`)
  t.match(down?.body.checks.fds, { ok: false, reason: /of 256 file descriptors open \(9\d %\); ready again below 80 %/ })
  t.equal(down?.body.checks.kafka?.ok, true, 'the dependencies are fine: only the node is full')

  const metrics = await scrape()
  t.equal(metricSum(metrics, 'sluice_resource_exhaustions_total', { resource: 'fds' }), 1, 'the episode is counted')
  t.equal(metricSum(metrics, 'sluice_resource_exhausted', { resource: 'fds' }), 1)
  t.ok(metricSum(metrics, 'sluice_open_fds') >= FD_LIMIT * 0.9, 'the gauge moved past 90 %')
  await eventually(() => stdout.includes('"level":40'), 5000, 'a warn line')
  const warns = stdout.split('\n').filter(l => l.includes('"level":40'))
  t.equal(warns.length, 1, 'one warn line for the episode')
  t.match(JSON.parse(warns[0]!), { resource: 'fds', limit: FD_LIMIT, msg: /not ready: \d+ of 256 file descriptors open/ })

  for (const s of sockets.splice(0)) s.destroy()
  await eventually(async () => (await readyz()).status === 200, 10_000, 'ready again once the connections are closed')
  t.equal(metricSum(await scrape(), 'sluice_resource_exhausted', { resource: 'fds' }), 0)
  t.equal(stdout.split('\n').filter(l => l.includes('"level":40')).length, 1, 'still one warn line')
})
