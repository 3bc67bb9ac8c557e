// A client has `ms` from opening a connection to finishing its first request
// (or WebSocket upgrade) headers. Node's own headersTimeout is only checked
// every 30 s and an inactivity timeout is reset by every trickled byte, so a
// slowloris that sends one byte at a time would hold a socket for ever.
import type { Server } from 'node:http'
import type { Socket } from 'node:net'

export function enforceHandshakeDeadline (server: Server, ms: number): void {
  const timers = new WeakMap<Socket, NodeJS.Timeout>()
  const done = (socket: Socket) => {
    clearTimeout(timers.get(socket))
    timers.delete(socket)
  }
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), ms)
    timer.unref()
    timers.set(socket, timer)
    socket.once('close', () => done(socket))
  })
  server.on('request', req => done(req.socket))
  server.on('upgrade', req => done(req.socket))
}
