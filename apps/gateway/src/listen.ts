// The gateway's listening sockets: `server.listenSockets` sockets on one port
// (SO_REUSEPORT), each with an accept queue of `server.listenBacklog`. A node's
// clients reconnect at once when another node dies, and the kernel drops the
// SYNs past a full accept queue: those clients wait for their retransmit (1 s,
// then 3 s). One queue is capped at net.core.somaxconn (4096 by default), which
// an operator may not be allowed to raise (Kubernetes does not allow it by
// default); the kernel spreads a port's connections over its reuseport sockets
// by their addresses, so two sockets queue twice as many. 5,000 clients
// resuming on one node overflowed one queue of 4096 in most runs of
// bench/drain-resume.ts (312-640 SYNs dropped a round).
//
// The first socket is Fastify's own; each other one is a plain net.Server that
// hands what it accepts to the same HTTP server (`'connection'`, Node's
// documented way to inject a connection), so every connection gets the same
// handling: the handshake deadline, the drain, metrics, and closing with the
// app. They stop accepting when the app closes (preClose).
import { createServer, type AddressInfo, type Server } from 'node:net'
import type { FastifyInstance, FastifyListenOptions } from 'fastify'

export interface ListenOptions {
  host: string
  port: number
  backlog: number
  /** listening sockets on the port: 1 is Fastify's alone */
  sockets: number
}

/** Listens on `sockets` sockets of one port; resolves Fastify's address. Call before the app is ready. */
export async function listenAll (app: FastifyInstance, options: ListenOptions): Promise<string> {
  const { host, port, backlog, sockets } = options
  if (sockets <= 1) return await app.listen({ host, port, backlog })
  // SO_REUSEPORT would let a second gateway (or anything of the same user) join a port already served, and share
  // its connections, where one socket fails with EADDRINUSE: a port in use is refused first, as one socket does
  if (port !== 0) await refuseInUse(host, port)
  const extra: Server[] = []
  // stop listening, without waiting (as close's callback would) for the connections they accepted: those are the
  // HTTP server's, which closes them after this hook
  app.addHook('preClose', async () => {
    for (const server of extra) server.close()
  })
  // Fastify hands its listen options to net.Server#listen as they are; its type does not name reusePort
  const first: FastifyListenOptions & { reusePort: boolean } = { host, port, backlog, reusePort: true }
  const address = await app.listen(first)
  const bound = app.server.address() as AddressInfo
  for (let i = 1; i < sockets; i++) {
    // http.Server's own socket options (Node's defaults for an HTTP server): no Nagle delay on the 101 and frames
    const server = createServer({ noDelay: true }, socket => { app.server.emit('connection', socket) })
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host: bound.address, port: bound.port, backlog, reusePort: true }, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      // a platform without SO_REUSEPORT (Node refuses it there): the sockets that listen serve
      app.log.warn({ err, sockets: i, wanted: sockets }, 'a listening socket could not be added on the port; serving with fewer')
      break
    }
    extra.push(server)
  }
  return address
}

/** Throws EADDRINUSE (or the bind's error) when something listens on the port: a plain bind, closed at once. */
async function refuseInUse (host: string, port: number): Promise<void> {
  const probe = createServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen({ host, port, exclusive: true }, () => {
      probe.off('error', reject)
      probe.close(() => resolve())
    })
  })
}
