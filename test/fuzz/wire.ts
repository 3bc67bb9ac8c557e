// WebSocket at the byte level (not a test file): a frame encoder that writes
// what no client library would (reserved bits and opcodes, unmasked frames,
// lengths that lie, oversized control frames), a decoder for what the server
// writes back, and a raw TCP client that does a real upgrade first.
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

export const OP = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xA } as const

export interface FrameSpec {
  fin?: boolean
  /** RSV1-3 as the 3 bits under FIN (0-7) */
  rsv?: number
  opcode: number
  payload: Uint8Array
  /** clients must mask (RFC 6455 5.1); false writes the frame unmasked */
  mask?: boolean
  /** a length to put in the header instead of the payload's own */
  declaredLength?: number
}

/** One frame's bytes, RFC 6455 section 5.2, with whatever lies the spec asks for. */
export function encodeFrame (spec: FrameSpec): Buffer {
  const payload = Buffer.from(spec.payload)
  const length = spec.declaredLength ?? payload.length
  const mask = spec.mask ?? true
  const ext = length < 126 ? 0 : length < 65536 ? 2 : 8
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0))
  head[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) & 7) << 4 | (spec.opcode & 0xf)
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? length : ext === 2 ? 126 : 127)
  if (ext === 2) head.writeUInt16BE(length, 2)
  if (ext === 8) head.writeBigUInt64BE(BigInt(length), 2)
  if (!mask) return Buffer.concat([head, payload])
  const key = randomBytes(4)
  key.copy(head, 2 + ext)
  for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!
  return Buffer.concat([head, payload])
}

export interface ServerFrame { fin: boolean, opcode: number, payload: Buffer }

/** Reads the server's frames (unmasked, RFC 6455) from a growing buffer; returns the frames and the bytes left over. */
export function decodeFrames (data: Buffer): { frames: ServerFrame[], rest: Buffer } {
  const frames: ServerFrame[] = []
  let at = 0
  for (;;) {
    if (data.length - at < 2) break
    const b0 = data[at]!
    const b1 = data[at + 1]!
    let length = b1 & 0x7f
    let head = 2
    if (length === 126) {
      if (data.length - at < 4) break
      length = data.readUInt16BE(at + 2)
      head = 4
    } else if (length === 127) {
      if (data.length - at < 10) break
      length = Number(data.readBigUInt64BE(at + 2))
      head = 10
    }
    if (b1 & 0x80) head += 4
    if (data.length - at < head + length) break
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0xf, payload: data.subarray(at + head, at + head + length) })
    at += head + length
  }
  return { frames, rest: data.subarray(at) }
}

export interface RawOutcome {
  /** the close code of the server's close frame; 1005 for an empty one; 1006 when the TCP connection ended without one */
  code: number
  /** the server's frames before its close, decoded */
  frames: ServerFrame[]
  /** the connection ended with no close frame and no end within the wait */
  hung: boolean
}

/** What the server answered an upgrade request: `client` is the open connection after a 101. */
export interface UpgradeAnswer {
  status: number
  statusLine: string
  /** header names in lower case */
  headers: Record<string, string>
  body: Buffer
  client?: RawClient
}

/** A TCP connection that did a real WebSocket upgrade, then sends whatever bytes it is given. */
export class RawClient {
  readonly socket: Socket
  readonly frames: ServerFrame[] = []
  #buffer = Buffer.alloc(0)
  #closeCode: number | undefined
  #ended = false
  #waiters: Array<() => void> = []

  private constructor (socket: Socket) {
    this.socket = socket
  }

  /** Upgrades on `path` with these headers; rejects with the status line when the server does not switch protocols. */
  static async open (port: number, path: string, headers: Record<string, string>): Promise<RawClient> {
    const answer = await RawClient.upgrade(port, path, Object.entries(headers))
    if (!answer.client) throw new Error(`upgrade refused: ${answer.statusLine}`)
    return answer.client
  }

  /**
   * An upgrade request on `target` (written as given: the caller encodes it) with these header lines, and
   * the server's answer: a 101 with the open connection, or any other status with its headers and body
   * (read to its Content-Length, or to the end of the connection). Rejects when no answer comes within `ms`.
   */
  static async upgrade (port: number, target: string, headers: Array<[string, string]>, ms = 5000): Promise<UpgradeAnswer> {
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    const client = new RawClient(socket)
    const request = [
      `GET ${target} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...headers.map(([k, v]) => `${k}: ${v}`),
      '', ''
    ].join('\r\n')
    return await new Promise<UpgradeAnswer>((resolve, reject) => {
      // an upgrade is answered in milliseconds; 5 s is a stuck server
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`upgrade not answered within ${ms} ms`)) }, ms)
      let data = Buffer.alloc(0)
      let head: { statusLine: string, status: number, headers: Record<string, string>, bodyAt: number, length: number | undefined } | undefined
      const done = (answer: UpgradeAnswer) => {
        clearTimeout(timer)
        socket.off('data', onData)
        socket.off('error', onError)
        socket.off('close', onClose)
        resolve(answer)
      }
      const refused = () => {
        socket.destroy()
        done({ status: head!.status, statusLine: head!.statusLine, headers: head!.headers, body: data.subarray(head!.bodyAt, head!.length === undefined ? undefined : head!.bodyAt + head!.length) })
      }
      const onData = (chunk: Buffer) => {
        data = Buffer.concat([data, chunk])
        if (!head) {
          const end = data.indexOf('\r\n\r\n')
          if (end < 0) return
          const lines = data.subarray(0, end).toString('latin1').split('\r\n')
          const statusLine = lines[0]!
          const fields: Record<string, string> = {}
          for (const line of lines.slice(1)) {
            const colon = line.indexOf(':')
            if (colon > 0) fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
          }
          const length = fields['content-length'] === undefined ? undefined : Number(fields['content-length'])
          head = { statusLine, status: Number(statusLine.split(' ')[1]), headers: fields, bodyAt: end + 4, length }
          if (head.status === 101) {
            done({ status: 101, statusLine, headers: fields, body: Buffer.alloc(0), client })
            client.#listen(data.subarray(end + 4))
            return
          }
        }
        if (head.length !== undefined && data.length - head.bodyAt >= head.length) refused()
      }
      const onError = (err: Error) => { if (!head) { clearTimeout(timer); reject(err) } }
      const onClose = () => {
        if (head) refused()
        else { clearTimeout(timer); reject(new Error(`the connection closed with no answer${data.length ? `: ${data.subarray(0, 80).toString('latin1')}` : ''}`)) }
      }
      socket.on('data', onData)
      socket.on('error', onError)
      socket.once('close', onClose)
      socket.write(request)
    })
  }

  #listen (first: Buffer): void {
    const take = (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      const { frames, rest } = decodeFrames(this.#buffer)
      this.#buffer = Buffer.from(rest)
      for (const frame of frames) {
        if (frame.opcode === OP.CLOSE && this.#closeCode === undefined) this.#closeCode = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
        if (this.#closeCode === undefined || frame.opcode === OP.CLOSE) this.frames.push(frame)
      }
      this.#wake()
    }
    if (first.length > 0) take(first)
    this.socket.on('data', take)
    // a reset after the server's close is how a server that closes first often ends: not an error of the test
    this.socket.on('error', () => {})
    this.socket.once('close', () => { this.#ended = true; this.#wake() })
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }

  get closeCode (): number | undefined {
    return this.#closeCode
  }

  get ended (): boolean {
    return this.#ended
  }

  /** Writes bytes; false when the connection is already gone. */
  async write (bytes: Buffer): Promise<boolean> {
    if (this.#ended || this.socket.destroyed) return false
    return await new Promise<boolean>(resolve => this.socket.write(bytes, err => resolve(!err)))
  }

  /** Waits until `check` holds or the connection ends, at most `ms`. */
  async until (check: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!check() && !this.#ended) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return check()
  }

  /** Waits for the server's close frame or the end of the connection, at most `ms`, then lets go of the socket. */
  async outcome (ms: number): Promise<RawOutcome> {
    await this.until(() => this.#closeCode !== undefined, ms)
    const hung = this.#closeCode === undefined && !this.#ended
    const code = this.#closeCode ?? 1006
    this.socket.destroy()
    return { code, frames: this.frames, hung }
  }

  /** Cuts the TCP connection (the fuzzer's own doing: 1006 is then expected). */
  cut (): void {
    this.socket.destroy()
  }
}
