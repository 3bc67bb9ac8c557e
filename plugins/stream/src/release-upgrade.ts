// After an upgrade, nothing needs the HTTP request any more; but two
// references would keep it (headers, parser state, Fastify's request and
// reply: about 20 KB) alive for as long as the socket lives:
// - @fastify/websocket's 'error' listener closes over the request and reply;
// - the connection still points at the ServerResponse @fastify/websocket
//   assigned to it, which points at the request.
// Dropping both is what brings an idle socket's cost to a few KB.
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'

export function releaseUpgradeRequest (socket: WebSocket, raw: Duplex, onError: (err: Error) => void): void {
  socket.removeAllListeners('error')
  socket.on('error', onError)
  const connection = raw as Duplex & { _httpMessage?: { detachSocket?: (s: Duplex) => void } | null }
  connection._httpMessage?.detachSocket?.(raw)
}
