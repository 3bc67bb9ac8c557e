// The writes a server makes on each connection it accepts: each call of the
// socket's _write or _writev is one syscall (a corked run of writes is one
// _writev). The resume suites count them to check that a resume's 101,
// subscribed frame and replay leave the node together (hold-writes.ts).
import type { Server, Socket } from 'node:net'
import type { WebSocket } from 'ws'

/** From now on, counts the writes `server` makes on each connection it accepts; read them by the client's port. */
export function countWrites (server: Server): (clientPort: number) => number | undefined {
  const writes = new Map<number, number>()
  server.on('connection', (socket: Socket) => {
    const port = socket.remotePort!
    writes.set(port, 0)
    const own = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
    for (const name of ['_write', '_writev'] as const) {
      const write = own[name]
      own[name] = function (this: Socket, ...args: unknown[]) {
        writes.set(port, writes.get(port)! + 1)
        return write.apply(this, args)
      }
    }
  })
  return port => writes.get(port)
}

/** The local port of a client's connection: the key countWrites counts under. */
export function clientPort (ws: WebSocket): number {
  return (ws as unknown as { _socket: Socket })._socket.localPort!
}

/** From now on, counts the writes made on one socket (a client's, to Redis say); stops at the test's end. */
export function countSocketWrites (t: { teardown (fn: () => void): void }, socket: Socket): () => number {
  let writes = 0
  const own = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
  const originals = { _write: own._write!, _writev: own._writev! }
  for (const name of ['_write', '_writev'] as const) {
    own[name] = function (this: unknown, ...args: unknown[]) {
      writes++
      return originals[name].apply(this, args)
    }
  }
  t.teardown(() => { own._write = originals._write; own._writev = originals._writev })
  return () => writes
}
