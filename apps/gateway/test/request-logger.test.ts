import { Writable } from 'node:stream'
import { test } from 'tap'
import Fastify from 'fastify'
import pino from 'pino'
import { loggerOptions } from '../src/logger.ts'
import { LazyRequestLogger, lazyRequestLogger } from '../src/request-logger.ts'
import { startGateway } from '../../../test/harness/gateway.ts'

/** The gateway's pino settings at `level`, writing JSON lines into `lines`, and a count of the children it made. */
function gatewayLogger (level: string): { log: pino.Logger, lines: Array<Record<string, unknown>>, children: () => number } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const log = pino(loggerOptions(level) as pino.LoggerOptions, sink)
  let children = 0
  // pino's children inherit their parent's methods: `this` is whichever logger the child is asked of
  const child = log.child as unknown as (this: unknown, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => pino.Logger
  log.child = function (this: unknown, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) {
    children++
    return child.call(this, bindings, options)
  } as unknown as typeof log.child
  return { log, lines, children: () => children }
}

const flushed = () => new Promise(resolve => setImmediate(resolve))

test('no child until a message at an enabled level; then the same child: bindings, redaction, level', async t => {
  const { log, lines, children } = gatewayLogger('warn')
  const request = new LazyRequestLogger(log, { reqId: 'req-1' }, {})
  request.info({ what: 'let in' }, 'upgrade')
  request.debug('nothing')
  t.equal(children(), 0, 'messages below the level make no child')
  t.equal(request.made, false)
  t.equal(request.level, 'warn', 'the level is the parent\'s')
  t.equal(request.isLevelEnabled('info'), false)
  t.equal(request.isLevelEnabled('error'), true)
  request.warn({ headers: { authorization: 'Bearer secret' } }, 'refused')
  request.error('again')
  await flushed()
  t.equal(children(), 1, 'one child, made by the first message written')
  t.same(lines.map(l => [l.msg, l.reqId]), [['refused', 'req-1'], ['again', 'req-1']], 'each line carries the request id')
  t.same(lines[0]!.headers, { authorization: '[REDACTED]' }, 'the gateway\'s redaction applies')
})

test('a route\'s own level (the child\'s options) decides, not the parent\'s', async t => {
  const { log, lines, children } = gatewayLogger('warn')
  const request = new LazyRequestLogger(log, { reqId: 'req-2' }, { level: 'debug' })
  request.trace('below debug')
  t.equal(children(), 0)
  request.debug('at debug')
  await flushed()
  t.equal(children(), 1)
  t.same(lines.map(l => l.msg), ['at debug'])
  t.equal(request.level, 'debug')
})

test('child() and a level set make the child, with the request\'s bindings under the new ones', async t => {
  const { log, lines } = gatewayLogger('warn')
  const request = new LazyRequestLogger(log, { reqId: 'req-3' }, {})
  request.child({ session: 's-1' }).warn('from a grandchild')
  const other = new LazyRequestLogger(log, { reqId: 'req-4' }, {})
  other.level = 'info'
  other.info('now on')
  await flushed()
  t.same(lines.map(l => [l.msg, l.reqId, l.session]), [['from a grandchild', 'req-3', 's-1'], ['now on', 'req-4', undefined]])
})

test('through Fastify: requests that log nothing make no child; one that logs writes with its request id', async t => {
  const { log, lines, children } = gatewayLogger('warn')
  const app = Fastify({ loggerInstance: log, childLoggerFactory: lazyRequestLogger })
  app.get('/quiet', async request => { request.log.info('not written'); return 'ok' })
  app.get('/loud', async request => { request.log.warn('written'); return 'ok' })
  t.teardown(() => app.close())
  const before = children()
  for (let i = 0; i < 5; i++) t.equal((await app.inject('/quiet')).statusCode, 200)
  t.equal(children(), before, 'five quiet requests, no child')
  await app.inject('/loud')
  await flushed()
  t.equal(children(), before + 1)
  const line = lines.find(l => l.msg === 'written')
  t.ok(line, 'the message was written')
  t.match(line, { reqId: /^req-/ }, 'with the request id Fastify gave it')
})

test('the gateway gives its requests this logger (buildApp)', async t => {
  const gw = await startGateway({ t, routes: app => { app.get('/probe-request-log', async request => ({ lazy: request.log instanceof LazyRequestLogger })) } })
  const res = await fetch(`${gw.url}/probe-request-log`)
  t.same(await res.json(), { lazy: true })
})
