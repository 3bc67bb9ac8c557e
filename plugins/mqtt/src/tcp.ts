// A plain TCP connection dressed as the part of a ws WebSocket that
// SocketSession and the CONNECT phase use, so that an MQTT client over TCP
// (mosquitto_sub, a device) is the same session as one over WebSocket: in
// the registry, drained, revoked, limited. The MQTT byte stream is the TCP
// byte stream: each chunk read is a 'message', a send is a write.
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'

const OPEN = 1
const CLOSING = 2
const CLOSED = 3

export class TcpConnection extends EventEmitter {
  readonly OPEN = OPEN
  readyState: number = OPEN
  readonly raw: Socket

  constructor (raw: Socket) {
    super()
    this.raw = raw
    raw.on('data', (chunk: Buffer) => this.emit('message', chunk, true))
    // a reset or a write after the peer left: the connection is over, 'close' follows
    raw.on('error', () => raw.destroy())
    raw.once('close', () => {
      this.readyState = CLOSED
      this.emit('close', 1006, Buffer.alloc(0))
    })
  }

  get isPaused (): boolean {
    return this.raw.isPaused()
  }

  pause (): void {
    this.raw.pause()
  }

  resume (): void {
    this.raw.resume()
  }

  send (data: Buffer): void {
    if (this.readyState === OPEN) this.raw.write(data)
  }

  /** Ends the connection after what is queued; TCP has no close code (MQTT 5's DISCONNECT carried the reason). */
  close (_code?: number, _reason?: string): void {
    if (this.readyState !== OPEN) return
    this.readyState = CLOSING
    this.raw.end()
  }

  terminate (): void {
    this.raw.destroy()
  }

  /** MQTT's own keep-alive watches a TCP client; the registry's WebSocket ping is answered at once. */
  ping (): void {
    process.nextTick(() => this.emit('pong'))
  }
}
