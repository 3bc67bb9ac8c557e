import type { FastifyInstance } from 'fastify'
import type {} from './index.ts'
import { SocketSession } from './socket-session.ts'

const kept = new WeakSet<object>()

/**
 * One keepalive timer per app for every WebSocket session, whatever its route
 * (each route's plugin calls this; the first one's period is used).
 */
export function keepSessionsAlive (fastify: FastifyInstance, ms: number): void {
  if (kept.has(fastify.sessions)) return
  kept.add(fastify.sessions)
  const timer = setInterval(() => {
    const now = Date.now()
    for (const session of fastify.sessions.list()) {
      if (session instanceof SocketSession) session.heartbeat(now)
    }
  }, ms)
  timer.unref()
  fastify.addHook('onClose', async () => { clearInterval(timer) })
}
