// What both WebSocket routes do with a socket once its upgrade was authorized
// and planned: let go of the HTTP request, build the route's session on the
// raw connection, and open it, or close it with the reason it cannot be served.
import type { Duplex } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Logger } from '@sluice/protocol/logger'
import { CLOSE } from '@sluice/protocol/codes'
import { closeAfterError, releaseUpgradeRequest } from './release-upgrade.ts'
import type { SocketSession } from './socket-session.ts'

/** Starts the route's session on an upgraded socket; `open` subscribes it to the topics the upgrade named. */
export function acceptSession<S extends SocketSession> (
  socket: WebSocket,
  request: FastifyRequest,
  log: Logger,
  session: (raw: Duplex) => S,
  open: (session: S) => Promise<unknown>
): S {
  const raw = (request.raw.socket ?? (socket as unknown as { _socket: Duplex })._socket) as Duplex
  releaseUpgradeRequest(socket, raw, err => {
    log.debug({ err }, 'socket error')
    // ws has sent the close frame with the error's code: terminating now can lose it to a RST
    closeAfterError(socket)
  })
  const started = session(raw)
  open(started).catch(err => {
    // topics named at open that cannot be served end the session with the reason
    log.info({ err, session: started.id }, 'could not subscribe at open')
    started.close(CLOSE.TRY_LATER, 'could not subscribe: ' + String((err as Error).message).slice(0, 100))
  })
  return started
}
