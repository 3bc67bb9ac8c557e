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

// A peer that read the close frame answers within a round trip (1 s even on a
// bad mobile link); 5 s is generous, and it still frees the socket of a peer
// that never answers six times sooner than ws's own 30 s close timer.
export const ERROR_CLOSE_DEADLINE_MS = 5_000

/**
 * The end of a socket after a protocol error (1002, 1007, 1009). ws has
 * already sent the close frame with the error's code, stopped reading frames
 * and, once the frame is out, ends the TCP connection itself. Destroying the
 * socket at once instead loses that close frame whenever the peer is still
 * writing: its next bytes meet a closed socket and draw a RST, and the peer
 * fails on the RST before it reads the frame (Autobahn's 5.14, octet-wise
 * writes, and test/conformance/autobahn.test.ts). So the close goes on as ws
 * runs it; only a peer that has not finished it by the deadline is cut off.
 */
export function closeAfterError (socket: WebSocket, deadlineMs: number = ERROR_CLOSE_DEADLINE_MS): void {
  if (socket.readyState === socket.CLOSED) return
  const deadline = setTimeout(() => socket.terminate(), deadlineMs)
  // a timer per failed socket, not per socket: it must not hold the process open either
  deadline.unref()
  socket.once('close', () => clearTimeout(deadline))
}
