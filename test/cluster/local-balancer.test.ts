// The local layer-4 balancer the cluster suites stand behind: round robin,
// a refused backend skipped, a backend whose /readyz is not 200 taken out of
// rotation (and back in once it is), bytes piped intact both ways, and both
// sides closed when one goes.
import { test, type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import { Balancer } from '@sluice/stack/balancer'

interface Backend {
  name: string
  port: number
  ready: boolean
  server: http.Server
}

async function backend (name: string): Promise<Backend> {
  const b: Backend = { name, port: 0, ready: true, server: http.createServer() }
  b.server.on('request', (req, res) => {
    if (req.url === '/readyz') {
      res.writeHead(b.ready ? 200 : 503).end()
      return
    }
    if (req.method === 'POST') {
      // echo: the body streams back as it comes, with backpressure both ways
      res.writeHead(200, { 'x-backend': name })
      req.pipe(res)
      return
    }
    res.writeHead(200, { 'x-backend': name }).end(name)
  })
  await new Promise<void>(resolve => b.server.listen(0, '127.0.0.1', () => resolve()))
  b.port = (b.server.address() as net.AddressInfo).port
  return b
}

/** One request on a connection of its own (no keep-alive: each one is a new TCP connection through the balancer). */
function get (port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false }, res => {
      let body = ''
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

async function start (t: Test, balancer: Balancer): Promise<number> {
  const { port } = await balancer.start()
  t.teardown(() => balancer.stop())
  return port
}

test('round robin, a refused backend skipped, an unready one out of rotation until ready again', async t => {
  const backends = await Promise.all(['a', 'b', 'c'].map(backend))
  t.teardown(() => { for (const b of backends) b.server.close() })
  // health checks only when the test asks (checkHealth): no timing in this suite
  const balancer = new Balancer({ backends: backends.map(b => ({ host: '127.0.0.1', port: b.port })), healthIntervalMs: 3_600_000 })
  const port = await start(t, balancer)

  const six = []
  for (let i = 0; i < 6; i++) six.push(await get(port))
  t.same(six, ['a', 'b', 'c', 'a', 'b', 'c'], 'each connection to the next backend')

  backends[2]!.ready = false
  await balancer.checkHealth()
  t.same(balancer.healthy, [true, true, false], 'c answers 503 on /readyz: out of rotation')
  const four = []
  for (let i = 0; i < 4; i++) four.push(await get(port))
  t.notOk(four.includes('c'), `no connection to c (${four.join(',')})`)

  backends[2]!.ready = true
  await balancer.checkHealth()
  const three = []
  for (let i = 0; i < 3; i++) three.push(await get(port))
  t.same(new Set(three), new Set(['a', 'b', 'c']), 'c is back')

  // b goes away; before any health check notices, its connections go to the next backend
  const servedByB = balancer.accepted[1]
  await new Promise<void>(resolve => backends[1]!.server.close(() => resolve()))
  const after = []
  for (let i = 0; i < 6; i++) after.push(await get(port))
  t.notOk(after.includes('b'), `every connection served (${after.join(',')})`)
  t.same(new Set(after), new Set(['a', 'c']))
  t.equal(balancer.accepted[1], servedByB, 'b accepted none since it went away')
  t.same(balancer.healthy, [true, true, true], 'skipped without a health check telling')
})

test('8 MiB through the balancer and back, intact', async t => {
  const echo = await backend('echo')
  t.teardown(() => echo.server.close())
  const port = await start(t, new Balancer({ backends: [{ host: '127.0.0.1', port: echo.port }], healthPath: false }))
  const body = randomBytes(8 * 1024 * 1024)
  const got = await new Promise<Buffer>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent: false }, res => {
      const chunks: Buffer[] = []
      // read slowly at first: the balancer must hold back the backend, not buffer everything
      res.pause()
      setTimeout(() => res.resume(), 200)
      res.on('data', chunk => chunks.push(chunk))
      res.on('end', () => resolve(Buffer.concat(chunks)))
    })
    req.on('error', reject)
    req.end(body)
  })
  t.equal(got.length, body.length)
  t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'), 'the same bytes')
})

test('a backend that resets its connection closes the client side too', async t => {
  const server = net.createServer(socket => { socket.once('data', () => socket.resetAndDestroy()) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(() => server.close())
  const port = await start(t, new Balancer({ backends: [{ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }], healthPath: false }))
  const client = net.connect({ host: '127.0.0.1', port })
  client.on('error', () => {})
  await new Promise<void>(resolve => client.once('connect', () => resolve()))
  client.write('hello')
  await new Promise<void>(resolve => client.once('close', () => resolve()))
  t.pass('closed')
  const refused = new Balancer({ backends: [{ host: '127.0.0.1', port: 1 }], healthPath: false })
  const lonely = net.connect({ host: '127.0.0.1', port: await start(t, refused) })
  lonely.on('error', () => {})
  await new Promise<void>(resolve => lonely.once('close', () => resolve()))
  t.pass('no backend accepts: the client is closed, not left hanging')
})
