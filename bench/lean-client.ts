// A WebSocket client for load generators: it reads server frames off the TCP
// socket with no per-message allocation (no Buffer per frame, no string per
// frame, no event per frame), so that one process can read what a gateway
// writes to thousands of sockets without becoming the bottleneck it measures.
// It answers pings, and reads every `sample`-th text frame's `"ts":<ms>` field
// for latency. Not a general client: it sends nothing but the handshake, pongs
// and a close; frames from the server are unmasked (RFC 6455 5.1).
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'

const TS = Buffer.from('"ts":')
const SUBSCRIBED = Buffer.from('"subscribed"')
const EMPTY = Buffer.alloc(0)
// Every client in the process reads into this one buffer (net's `onread`): a read's
// callback runs to its end before the next read, so nothing is allocated per read and
// no stream machinery runs per chunk. What must outlive a callback is copied.
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

export interface LeanCallbacks {
  /** a text frame arrived; `tsMs` is its `"ts":` value when this frame was sampled, else NaN */
  onFrame (tsMs: number): void
  /** the server's first `subscribed` frame */
  onSubscribed (): void
  onError (err: Error): void
}

export class LeanClient {
  readonly #socket: Socket
  readonly #cb: LeanCallbacks
  readonly #sample: number
  #handshake = true
  #head = EMPTY
  // the frame being read across chunks
  #need = 0
  #opcode = 0
  #payloadLeft = 0
  #sampling = false
  #sampled: Buffer[] = []
  #frames = 0
  #subscribed = false

  /** `headers`: more request headers for the handshake (a gateway as shipped wants `authorization`) */
  constructor (url: string, protocol: string, sample: number, cb: LeanCallbacks, headers: Record<string, string> = {}) {
    const u = new URL(url)
    this.#cb = cb
    this.#sample = sample
    // each socket samples from its own phase: with few frames per socket (a slow paced run)
    // every socket sampling its 16th frame would give no latency at all
    this.#frames = Math.floor(Math.random() * sample)
    this.#socket = connect({
      host: u.hostname,
      port: Number(u.port),
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => { this.#data(buf as Buffer, n); return true } }
    })
    const key = randomBytes(16).toString('base64')
    this.#socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n` +
      Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('') + '\r\n')
    this.#socket.on('error', err => cb.onError(err))
  }

  terminate (): void {
    this.#socket.destroy()
  }

  /** `length` bytes from `buffer` (shared: valid during this call only) */
  #data (buffer: Buffer, length: number): void {
    let chunk = buffer.subarray(0, length)
    if (this.#handshake) {
      const all = Buffer.concat([this.#head, chunk])
      const end = all.indexOf('\r\n\r\n')
      if (end === -1) { this.#head = all; return }
      if (!all.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) {
        this.#cb.onError(new Error(`handshake refused: ${all.subarray(0, all.indexOf('\r\n')).toString('latin1')}`))
        this.#socket.destroy()
        return
      }
      this.#handshake = false
      this.#head = EMPTY
      chunk = all.subarray(end + 4)
    }
    let at = 0
    while (at < chunk.length) {
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, chunk.length - at)
        if (this.#sampling) this.#sampled.push(Buffer.from(chunk.subarray(at, at + take)))
        at += take
        this.#payloadLeft -= take
        if (this.#payloadLeft === 0) this.#frameDone()
        continue
      }
      if (this.#head.length > 0) {
        // a header split over chunks: complete it (10 bytes hold any header)
        const want = Math.min(10 - this.#head.length, chunk.length - at)
        const buf = Buffer.concat([this.#head, chunk.subarray(at, at + want)])
        const size = this.#header(buf, 0)
        if (size === 0) {
          this.#head = buf
          at += want
          continue
        }
        at += size - this.#head.length
        this.#head = EMPTY
        continue
      }
      const size = this.#header(chunk, at)
      if (size === 0) {
        this.#head = Buffer.from(chunk.subarray(at))
        at = chunk.length
        continue
      }
      at += size
    }
  }

  /** Reads a header at buf[at]; returns its length, or 0 when buf holds too little of it. */
  #header (buf: Buffer, at: number): number {
    if (buf.length - at < 2) return 0
    const b1 = buf[at + 1]!
    let len = b1 & 0x7f
    let size = 2
    if (len === 126) {
      if (buf.length - at < 4) return 0
      len = buf.readUInt16BE(at + 2)
      size = 4
    } else if (len === 127) {
      if (buf.length - at < 10) return 0
      len = Number(buf.readBigUInt64BE(at + 2))
      size = 10
    }
    this.#opcode = buf[at]! & 0x0f
    this.#payloadLeft = len
    this.#sampling = this.#opcode !== 1 || ((this.#frames + 1) % this.#sample === 0) || !this.#subscribed
    if (len === 0) this.#frameDone()
    return size
  }

  #frameDone (): void {
    const op = this.#opcode
    if (op === 1) {
      this.#frames++
      let ts = NaN
      if (this.#sampling) {
        const payload = this.#sampled.length === 1 ? this.#sampled[0]! : Buffer.concat(this.#sampled)
        if (!this.#subscribed && payload.includes(SUBSCRIBED)) {
          this.#subscribed = true
          this.#cb.onSubscribed()
        }
        const i = payload.indexOf(TS)
        if (i !== -1) ts = parseInt(payload.toString('latin1', i + TS.length, i + TS.length + 20), 10)
      }
      this.#cb.onFrame(ts)
    } else if (op === 9) {
      // ping: answer with a masked pong carrying the same payload
      const payload = Buffer.concat(this.#sampled)
      const mask = randomBytes(4)
      const out = Buffer.alloc(6 + payload.length)
      out[0] = 0x8a
      out[1] = 0x80 | payload.length
      mask.copy(out, 2)
      for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i & 3]!
      this.#socket.write(out)
    } else if (op === 8) {
      this.#socket.end()
    }
    if (this.#sampling) this.#sampled = []
    this.#sampling = false
  }
}
