// The WebSocket handshake's own headers, checked before a route's checks run.
// ws refuses a malformed handshake itself, but only when the upgrade is
// completed, after every hook: the credential verified, a connect token and a
// connection slot taken, and then with a plain-text 400. These are ws's checks
// (ws/lib/websocket-server.js handleUpgrade, ws 8; Sec-WebSocket-Extensions is
// not read, as permessage-deflate is off), made in the route's onRequest, so a
// client gets the gateway's `{"error":{"code","message"}}` and no limit is
// charged for an upgrade that could not happen.
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { BadHandshakeError } from './errors.ts'

// RFC 6455 4.1: the base64 of 16 bytes
const KEY = /^[+/0-9A-Za-z]{22}==$/
// RFC 7230 3.2.6: a subprotocol is a token
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export interface HandshakeProblem {
  message: string
  /** headers the refusal carries (the versions this server speaks) */
  headers?: Record<string, string>
}

/** What is wrong with an upgrade request's handshake headers, as ws would say it; undefined when nothing is. */
export function handshakeProblem (headers: IncomingHttpHeaders): HandshakeProblem | undefined {
  const upgrade = headers.upgrade
  if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') return { message: 'invalid Upgrade header' }
  const key = headers['sec-websocket-key']
  if (typeof key !== 'string' || !KEY.test(key)) return { message: 'missing or invalid Sec-WebSocket-Key header' }
  const version = Number(headers['sec-websocket-version'])
  if (version !== 13 && version !== 8) return { message: 'missing or invalid Sec-WebSocket-Version header', headers: { 'sec-websocket-version': '13, 8' } }
  const protocols = headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    const seen = new Set<string>()
    // Node joins repeated headers with ", " and trims each value's ends
    for (const raw of protocols.split(',')) {
      const protocol = raw.replace(/^[ \t]+|[ \t]+$/g, '')
      if (!TOKEN.test(protocol) || seen.has(protocol)) return { message: 'invalid Sec-WebSocket-Protocol header' }
      seen.add(protocol)
    }
  }
  return undefined
}

async function checkHandshake (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  // plain HTTP on the route is the route's to answer (426)
  if (!request.ws) return undefined
  const problem = handshakeProblem(request.headers)
  if (!problem) return undefined
  const err = new BadHandshakeError(problem.message)
  if (problem.headers) reply.headers(problem.headers)
  return reply.code(err.statusCode!).header('cache-control', 'no-store').send({ error: { code: err.code, message: err.message } })
}

/** An onRoute hook: every WebSocket route checks the handshake in its onRequest, before the route's own hooks. */
export function checkHandshakes (route: RouteOptions): void {
  if ((route as { websocket?: boolean }).websocket !== true) return
  const existing = route.onRequest
  route.onRequest = [checkHandshake, ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing])]
}
