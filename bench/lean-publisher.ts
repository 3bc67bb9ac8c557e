// A WebSocket publisher for the publish benchmark: a real client of /v1/stream
// (the HTTP upgrade with a bearer token and the sluice.v1 subprotocol, masked
// text frames carrying the protocol's publish frames, the server's acks read
// off the wire), without a WebSocket library's per-message work. Measured in
// bench/publish.ts at 20 sockets × 64 in flight (2026-12-05): `ws` clients (a
// send() per publish, a Buffer, a string and a JSON.parse per ack) took 8.5 µs
// of CPU per publish beside the gateway's 11.7, on the same 2 cores, so the
// bench measured the clients nearly as much as the gateway; these take 0.8. Here a publish frame is a copy of one
// pre-masked template with its id's digits written in, the frames owed after
// a read go out in one write, and acks are counted by reading each frame's
// first bytes (`{"op":"ack"` or not). Frames from the server are unmasked
// (RFC 6455 5.1); every client in the process reads into one shared buffer.
//
// The masking key is drawn once per socket, not per frame: RFC 6455 asks for a
// fresh key per frame so that a browser's frames cannot be chosen to poison an
// intermediary's cache; a benchmark on loopback writes its own bytes, and the
// server unmasks every frame with whatever key it carries.
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'

// acks and errors start `{"op":"` and differ in the next byte
const OP_AT = 7
const ACK = 'a'.charCodeAt(0)
// publish ids: this many decimal digits, zero-padded, so that every frame of a socket has the same length
const ID_DIGITS = 10
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)
const EMPTY = Buffer.alloc(0)

export interface PublisherCallbacks {
  /** answers read in one TCP chunk: `acked` acks and `refused` other text frames (errors), in frame order */
  onAnswers (acked: number, refused: number, firstRefusal: string | undefined): void
  onError (err: Error): void
}

export class LeanPublisher {
  readonly #socket: Socket
  readonly #cb: PublisherCallbacks
  readonly #template: Buffer
  readonly #mask: Buffer
  /** where the id's digits sit in the template (the frame's bytes, header included), and in its payload */
  readonly #idAt: number
  readonly #idInPayload: number
  #next = 0
  #handshake = true
  #head = EMPTY
  #opened: (() => void) | undefined
  // the frame being read across chunks
  #opcode = 0
  #payloadLeft = 0
  /** bytes of the current payload read so far (only its first OP_AT + 1 matter) */
  #payloadAt = 0
  #isAck = false
  #firstBytes = Buffer.alloc(64)
  #acked = 0
  #refused = 0
  #refusal: string | undefined
  #control: Buffer[] = []

  /** `body(id)`: the publish frame's JSON text for an id; its length must not depend on the id's value */
  constructor (url: string, protocol: string, headers: Record<string, string>, body: (id: string) => string, cb: PublisherCallbacks) {
    const u = new URL(url)
    this.#cb = cb
    this.#mask = randomBytes(4)
    const marker = '#'.repeat(ID_DIGITS)
    const text = Buffer.from(body(marker))
    const length = text.length
    const header = length < 126 ? 2 : 4
    const frame = Buffer.alloc(header + 4 + length)
    frame[0] = 0x81
    if (header === 2) frame[1] = 0x80 | length
    else {
      frame[1] = 0x80 | 126
      frame.writeUInt16BE(length, 2)
    }
    this.#mask.copy(frame, header)
    const payloadAt = header + 4
    this.#idInPayload = text.indexOf(marker)
    this.#idAt = payloadAt + this.#idInPayload
    for (let i = 0; i < length; i++) frame[payloadAt + i] = text[i]! ^ this.#mask[i & 3]!
    this.#template = frame
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

  /** Resolves once the upgrade was answered 101. */
  opened (): Promise<void> {
    if (!this.#handshake) return Promise.resolve()
    return new Promise(resolve => { this.#opened = resolve })
  }

  /** Sends `count` publish frames in one write; their ids count up from 0 per socket. */
  publish (count: number): void {
    if (count <= 0) return
    const template = this.#template
    const size = template.length
    // one buffer per write: the socket holds it until the kernel has it
    const out = Buffer.allocUnsafe(count * size)
    const mask = this.#mask
    const idAt = this.#idAt
    const idInPayload = this.#idInPayload
    for (let f = 0; f < count; f++) {
      const at = f * size
      template.copy(out, at)
      let id = this.#next++
      // the id's digits, right to left, each masked with the key byte of its place in the payload
      for (let d = ID_DIGITS - 1; d >= 0; d--) {
        out[at + idAt + d] = (0x30 + (id % 10)) ^ mask[(idInPayload + d) & 3]!
        id = Math.floor(id / 10)
      }
    }
    this.#socket.write(out)
  }

  terminate (): void {
    this.#socket.destroy()
  }

  #data (buffer: Buffer, length: number): void {
    let chunk = buffer.subarray(0, length)
    if (this.#handshake) {
      const all = Buffer.concat([this.#head, chunk])
      const end = all.indexOf('\r\n\r\n')
      if (end === -1) { this.#head = all; return }
      if (!all.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) {
        this.#cb.onError(new Error(`upgrade refused: ${all.subarray(0, all.indexOf('\r\n')).toString('latin1')}`))
        this.#socket.destroy()
        return
      }
      this.#handshake = false
      this.#head = EMPTY
      chunk = all.subarray(end + 4)
      this.#opened?.()
    }
    let at = 0
    while (at < chunk.length) {
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, chunk.length - at)
        this.#payload(chunk, at, take)
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
    if (this.#acked > 0 || this.#refused > 0) {
      const acked = this.#acked
      const refused = this.#refused
      const refusal = this.#refusal
      this.#acked = 0
      this.#refused = 0
      this.#refusal = undefined
      this.#cb.onAnswers(acked, refused, refusal)
    }
  }

  /** Reads a header at buf[at]; returns its length, or 0 when buf holds too little of it. */
  #header (buf: Buffer, at: number): number {
    if (buf.length - at < 2) return 0
    let len = buf[at + 1]! & 0x7f
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
    this.#payloadAt = 0
    this.#isAck = false
    if (len === 0) this.#frameDone()
    return size
  }

  #payload (chunk: Buffer, at: number, take: number): void {
    if (this.#opcode === 1) {
      // the first bytes of a text frame tell an ack from an error; an error's whole text is kept for the report
      const keep = Math.min(take, this.#firstBytes.length - this.#payloadAt)
      if (keep > 0) chunk.copy(this.#firstBytes, this.#payloadAt, at, at + keep)
      if (this.#payloadAt <= OP_AT && this.#payloadAt + take > OP_AT) this.#isAck = chunk[at + OP_AT - this.#payloadAt] === ACK
    } else this.#control.push(Buffer.from(chunk.subarray(at, at + take)))
    this.#payloadAt += take
  }

  #frameDone (): void {
    const op = this.#opcode
    if (op === 1) {
      if (this.#isAck) this.#acked++
      else {
        this.#refused++
        this.#refusal ??= this.#firstBytes.toString('utf8', 0, Math.min(this.#payloadAt, this.#firstBytes.length))
      }
    } else if (op === 9) {
      // ping: answer with a masked pong carrying the same payload
      const payload = Buffer.concat(this.#control)
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
    this.#control = []
  }
}
