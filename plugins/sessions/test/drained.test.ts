// SocketSession.drained(bytes), on a real TCP connection: the hub waits on it
// for a frame to fit the send queue, down to an empty queue for a frame larger
// than the bound. Node emits 'drain' only when a write found the queue at its
// high-water mark (64 KiB), so a queue of a few small frames below it has to
// wake its waiters by another event.
import { EventEmitter, once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'
import { test, type Test } from 'tap'
import type { WebSocket, RawData } from 'ws'
import type { Duplex } from 'node:stream'
import type { FrameFormat, Hub } from '@sluice/hub'
import { SessionRegistry } from '../src/registry.ts'
import { SocketSession, type SessionDeps } from '../src/socket-session.ts'

class FakeSocket extends EventEmitter {
  readonly OPEN = 1
  readyState = 1
  close (): void { this.readyState = 3; this.emit('close') }
  terminate (): void {}
}

class Session extends SocketSession {
  readonly format = {} as FrameFormat
  protected onFrame (_data: RawData): void {}
  protected sendError (): void {}
  topics (): string[] { return [] }
  unsubscribe (): void {}
  lagging (): void {}
}

/** A session writing to a real TCP connection whose peer does not read until told to. */
async function connection (t: Test): Promise<{ session: Session, raw: Socket, read: () => void }> {
  const server = createServer(socket => {
    socket.pause()
    socket.on('data', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection')
  const raw = connect((server.address() as { port: number }).port, '127.0.0.1')
  const [peer] = await accepted as [Socket]
  t.teardown(() => { raw.destroy(); peer.destroy(); server.close() })
  const deps = {
    hub: { remove () {} } as unknown as Hub,
    kafka: {} as SessionDeps['kafka'],
    access: {} as SessionDeps['access'],
    sessions: new SessionRegistry(),
    log: { error () {}, warn () {}, info () {}, debug () {} } as unknown as SessionDeps['log'],
    limits: { maxQueueBytes: 256 * 1024, invalidFrameBurst: 20, invalidFramesPerSecond: 1, maxInflightPublishes: 64, publishTimeoutMs: 1000, idleTimeoutMs: 60_000 }
  } satisfies SessionDeps
  const session = new Session({ socket: new FakeSocket() as unknown as WebSocket, raw: raw as Duplex, identity: { kind: 'dev', subject: 'dev', claims: {} }, remoteAddress: '127.0.0.1', route: '/test' }, deps)
  return { session, raw, read: () => peer.resume() }
}

/**
 * Frames of `size` until `bytes` wait in the socket's own queue, topped up
 * until the kernel's buffers (several MiB on loopback, filled in steps as data
 * moves from the sender's to the peer's) take no more of them.
 */
async function fill (session: Session, bytes: number, size = 1000): Promise<void> {
  const frame = Buffer.alloc(size)
  for (let round = 0; round < 100; round++) {
    while (session.queuedBytes() < bytes) session.write(frame)
    await new Promise(resolve => setTimeout(resolve, 20))
    if (session.queuedBytes() >= bytes) return
  }
  throw new Error('the kernel keeps taking bytes from a peer that reads nothing')
}

test('drained(0) resolves once a queue below the high-water mark is empty, though no drain event comes', async t => {
  const { session, raw, read } = await connection(t)
  await fill(session, 10_000)
  t.ok(session.queuedBytes() < raw.writableHighWaterMark, `${session.queuedBytes()} bytes queued, under the high-water mark (${raw.writableHighWaterMark})`)
  t.notOk(raw.writableNeedDrain, 'no drain event is due')
  let drains = 0
  raw.on('drain', () => { drains++ })
  let resolved = false
  const waiting = session.drained(0).then(() => { resolved = true })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(resolved, 'not while the peer reads nothing')
  read()
  let timer: NodeJS.Timeout | undefined
  await Promise.race([waiting, new Promise(resolve => { timer = setTimeout(resolve, 2000) })])
  clearTimeout(timer)
  t.ok(resolved, 'resolved once the peer read')
  t.equal(session.queuedBytes(), 0, 'at an empty queue')
  t.equal(drains, 0, 'with no drain event')
})

test('drained(0) on a queue past the high-water mark resolves on the drain event', async t => {
  const { session, read } = await connection(t)
  // 16 MiB: more than loopback's socket buffers take on their own (a few MiB)
  await fill(session, 16 * 1024 * 1024, 64 * 1024)
  let resolved = false
  const waiting = session.drained(0).then(() => { resolved = true })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(resolved, 'not while the peer reads nothing')
  read()
  let timer: NodeJS.Timeout | undefined
  await Promise.race([waiting, new Promise(resolve => { timer = setTimeout(resolve, 2000) })])
  clearTimeout(timer)
  t.ok(resolved)
  t.equal(session.queuedBytes(), 0)
})

test('a waiter wakes when the socket closes', async t => {
  const { session } = await connection(t)
  await fill(session, 10_000)
  const waiting = session.drained(0)
  session.close(1000, 'bye')
  await waiting
  t.pass('resolved')
})
