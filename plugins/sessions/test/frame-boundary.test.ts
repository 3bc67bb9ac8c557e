// The per-frame boundary of every WebSocket route (SocketSession), without a
// broker: a route's frame handler that throws or rejects answers that frame with
// an error, counts it, and leaves the socket open; nothing escapes to the process.
import { EventEmitter } from 'node:events'
import { test } from 'tap'
import type { WebSocket, RawData } from 'ws'
import type { Duplex } from 'node:stream'
import type { FrameFormat, Hub } from '@sluice/hub'
import { RoutePublishes } from '../src/publish-counts.ts'
import { SessionRegistry } from '../src/registry.ts'
import { SocketSession, type SessionDeps } from '../src/socket-session.ts'

class FakeSocket extends EventEmitter {
  readonly OPEN = 1
  readyState = 1
  isPaused = false
  sent: string[] = []
  closedWith: number | undefined
  send (text: string): void { this.sent.push(text) }
  close (code: number): void { this.closedWith = code; this.readyState = 3 }
  terminate (): void { this.readyState = 3 }
  ping (): void {}
  pause (): void { this.isPaused = true }
  resume (): void { this.isPaused = false }
}

class Raw extends EventEmitter {
  writableLength = 0
  write (): boolean { return true }
}

/** A route whose frames do what their text says. */
class ScriptedSession extends SocketSession {
  readonly format = {} as FrameFormat
  errors: Array<{ err: unknown, id?: string }> = []
  failSendError = false

  protected onFrame (data: RawData): void | Promise<unknown> {
    const text = data.toString()
    if (text === 'throw') throw new TypeError('a bug in a handler')
    if (text === 'reject') return Promise.reject(new TypeError('a bug after an await'))
    if (text === 'stack') return Promise.resolve().then(() => { const f = (): number => f() + 1; return f() })
    return undefined
  }

  protected sendError (err: unknown, id?: string): void {
    if (this.failSendError) throw new Error('cannot even answer')
    this.errors.push({ err, id })
  }

  topics (): string[] { return [] }
  unsubscribe (): void {}
  lagging (): void {}
}

function session (): { s: ScriptedSession, socket: FakeSocket, counts: RoutePublishes } {
  const socket = new FakeSocket()
  const counts = new RoutePublishes()
  const deps = {
    hub: { remove () {} } as unknown as Hub,
    kafka: {} as SessionDeps['kafka'],
    access: {} as SessionDeps['access'],
    sessions: new SessionRegistry(),
    log: { error () {}, warn () {}, info () {}, debug () {} } as unknown as SessionDeps['log'],
    limits: { maxQueueBytes: 1024, invalidFrameBurst: 20, invalidFramesPerSecond: 1, maxInflightPublishes: 64, publishTimeoutMs: 1000, idleTimeoutMs: 60_000 },
    publishes: counts
  } satisfies SessionDeps
  const s = new ScriptedSession({ socket: socket as unknown as WebSocket, raw: new Raw() as unknown as Duplex, identity: { kind: 'dev', subject: 'dev', claims: {} }, remoteAddress: '127.0.0.1', route: '/test' }, deps)
  return { s, socket, counts }
}

const settle = () => new Promise(resolve => setTimeout(resolve, 10))

test('a throw, a rejection and a stack overflow in a frame handler are each answered and counted; the socket stays open', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown) => { unhandled.push(err) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const { s, socket, counts } = session()
  for (const text of ['throw', 'reject', 'stack', 'fine']) socket.emit('message', Buffer.from(text), false)
  await settle()
  t.equal(s.errors.length, 3, 'three failures answered')
  t.match(s.errors.map(e => (e.err as Error).message), ['a bug in a handler', 'a bug after an await', /call stack/])
  t.equal(counts.frameFailures, 3, 'and counted for /metrics')
  t.equal(socket.closedWith, undefined, 'the socket is not closed')
  t.same(unhandled, [], 'no unhandled rejection')
})

test('when not even an error can be written, the socket closes with 1011 and nothing escapes', async t => {
  const { s, socket } = session()
  s.failSendError = true
  socket.emit('message', Buffer.from('throw'), false)
  await settle()
  t.equal(socket.closedWith, 1011)
})
