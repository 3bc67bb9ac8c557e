// Graceful drain (SIGTERM): the node reports not ready at once, refuses new
// WebSocket upgrades with 503, and closes its open sockets with 1001 spread
// evenly over a window, a slice at a time, so that their reconnects reach the
// other nodes at a bounded rate instead of all in the same instant. Each
// socket first answers the publishes it already read. The close that follows
// (app.close) flushes what is still in flight to Kafka.
//
// The schedule is Fastify-free (`drainSessions`); the plugin wires it to the
// readiness report, the upgrade routes and the session registry of the app.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CLOSE, type LiveSession } from '@sluice/sessions'

// 100 ms: fine enough that a slice of a 10 s window is 1 % of the sockets, coarse enough that timers cost nothing
export const DEFAULT_SLICE_MS = 100
// a client refused during the drain tries again after this; through a load balancer it lands on another node
export const RETRY_AFTER_S = 1
// the routes that open long-lived sockets: refused while draining (plain HTTP keeps being served)
const SOCKET_ROUTES = ['/v1/stream', '/v2/broker']

export interface DrainOptions {
  /** the window the closes are spread over; 0 closes every socket at once */
  windowMs: number
  sliceMs?: number
  /** how long a socket may wait for its publishes to be answered before its close frame */
  settleMs: number
  code: number
  reason: string
}

export interface DrainReport {
  /** sockets told to close, per slice, with when the slice ran (ms after the start) */
  slices: Array<{ atMs: number, closed: number }>
  closed: number
  /** from the start until the last socket closed */
  ms: number
}

/**
 * How many sockets should be closed once slice `index` (0-based) of `slices`
 * has run, out of `total`: an even spread, the last slice closing the rest.
 * Never more than ceil(total / slices) in one slice.
 */
export function closedAfterSlice (total: number, slices: number, index: number): number {
  if (index >= slices - 1) return total
  return Math.ceil((total * (index + 1)) / slices)
}

/**
 * Closes every session `list()` returns, spread over the window. Sessions that
 * appear during the drain (an upgrade that was already past the refusal) are
 * counted in and closed too. Resolves when every socket has been closed.
 */
export async function drainSessions (list: () => LiveSession[], options: DrainOptions): Promise<DrainReport> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS
  const slices = Math.max(1, Math.floor(options.windowMs / sliceMs))
  const started = performance.now()
  const told = new Set<LiveSession>()
  const closing: Array<Promise<void>> = []
  const report: DrainReport = { slices: [], closed: 0, ms: 0 }
  for (let index = 0; index < slices; index++) {
    // a timer may fire a fraction of a millisecond early: a slice never runs before its time
    for (let wait = started + index * sliceMs - performance.now(); wait > 0; wait = started + index * sliceMs - performance.now()) {
      await new Promise(resolve => setTimeout(resolve, Math.ceil(wait)))
    }
    const remaining = list().filter(session => !told.has(session))
    if (remaining.length === 0) break
    const total = told.size + remaining.length
    const count = Math.min(remaining.length, closedAfterSlice(total, slices, index) - told.size)
    for (const session of remaining.slice(0, count)) {
      told.add(session)
      closing.push(session.closeSettled
        ? session.closeSettled(options.code, options.reason, options.settleMs)
        : Promise.resolve(session.close(options.code, options.reason)))
    }
    report.slices.push({ atMs: Math.floor(performance.now() - started), closed: count })
  }
  await Promise.allSettled(closing)
  report.closed = told.size
  report.ms = Math.round(performance.now() - started)
  return report
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Starts the drain (once; later calls return the same promise) and resolves when every socket is closed. */
    drain (windowMs?: number): Promise<DrainReport>
    readonly draining: boolean
  }
}

export interface DrainSettings {
  windowMs: number
  sliceMs?: number
  settleMs: number
}

function isSocketRoute (request: FastifyRequest): boolean {
  const path = request.url.split('?')[0] ?? ''
  return request.headers.upgrade !== undefined || SOCKET_ROUTES.some(route => path === route || path.startsWith(route + '/'))
}

/** Decorates `app.drain()` and refuses socket routes once it started; register before auth registers its hooks. */
async function drainPlugin (fastify: FastifyInstance, opts: DrainSettings): Promise<void> {
  let running: Promise<DrainReport> | undefined
  fastify.decorate('draining', {
    getter: () => running !== undefined
  })
  fastify.decorate('drain', function drain (windowMs = opts.windowMs): Promise<DrainReport> {
    running ??= (async () => {
      fastify.readiness.drain('draining')
      // every socket of every route
      const registry = fastify.sessions
      fastify.log.info({ windowMs, sockets: registry.size }, 'draining')
      const report = await drainSessions(() => registry.list(), {
        windowMs,
        sliceMs: opts.sliceMs,
        settleMs: opts.settleMs,
        code: CLOSE.GOING_AWAY,
        reason: 'server going away'
      })
      fastify.log.info({ closed: report.closed, ms: report.ms, slices: report.slices.length }, 'drained')
      return report
    })()
    return running
  })

  // before auth and rate limits: a refused upgrade costs nothing and takes no connection slot
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (running === undefined || !isSocketRoute(request)) return
    reply.code(503).header('retry-after', String(RETRY_AFTER_S))
    if (request.headers.upgrade !== undefined) {
      // an upgrade's socket is no HTTP connection the server would close or reuse (@fastify/websocket's own
      // onRequest, which would, comes after this hook): end it once the answer is written
      reply.header('connection', 'close')
      reply.raw.once('finish', () => request.raw.socket?.end())
    }
    return reply.send({ error: { code: 'UNAVAILABLE', message: 'this node is shutting down: connect again, another node will answer' } })
  })
}

export default fp(drainPlugin, { fastify: '5.x', name: 'sluice-drain', dependencies: ['sluice-health', 'sluice-sessions'] })
