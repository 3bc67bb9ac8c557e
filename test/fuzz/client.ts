// A WebSocket client for the fuzz runs (not a test file): records every frame
// the server sends and how the socket ended, and never throws on what the
// server does, so that the run's invariants judge it.
import { WebSocket } from 'ws'
import { Violation } from './invariants.ts'

// the client reads whatever the server sends: its own bound is not the subject
const CLIENT_MAX_PAYLOAD = 64 * 1024 * 1024
// an upgrade is answered in milliseconds (a JWT check, a Redis round trip); 5 s is a stuck gateway
const HANDSHAKE_TIMEOUT_MS = 5000

export class FuzzClient {
  readonly ws: WebSocket
  readonly texts: string[] = []
  readonly binaries: Buffer[] = []
  /** the close code the client saw (1006: the connection ended with no close frame) */
  code: number | undefined
  /** the server closed first (its close frame came before the client sent one) */
  serverClosed = false
  readonly opened: Promise<void>
  readonly closed: Promise<number>
  #clientClosing = false
  #listeners: Array<() => void> = []

  constructor (url: string, protocols: string[], headers: Record<string, string>) {
    this.ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false, maxPayload: CLIENT_MAX_PAYLOAD, handshakeTimeout: HANDSHAKE_TIMEOUT_MS })
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) this.binaries.push(Buffer.from(data as Buffer))
      else this.texts.push(data.toString())
      this.#notify()
    })
    this.ws.on('error', () => {})
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('unexpected-response', (_req, res) => reject(new Violation('the upgrade is accepted', `${url.replace(/\?.*/, '')} answered ${res.statusCode}`)))
      this.ws.once('error', err => reject(err.message.includes('handshake has timed out') ? new Violation('the upgrade is answered', `no answer within ${HANDSHAKE_TIMEOUT_MS} ms`) : err))
    })
    this.opened.catch(() => {})
    this.closed = new Promise(resolve => {
      this.ws.once('close', code => {
        this.code = code
        if (!this.#clientClosing) this.serverClosed = true
        this.#notify()
        resolve(code)
      })
    })
  }

  #notify (): void {
    const listeners = this.#listeners
    this.#listeners = []
    for (const l of listeners) l()
  }

  /** Waits until `check` holds, the socket closed, or `ms` passed; true when `check` holds. */
  async until (check: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!check() && this.code === undefined) {
      const left = deadline - Date.now()
      if (left <= 0) break
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#listeners.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return check()
  }

  send (data: string | Buffer, binary: boolean): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(data, { binary })
  }

  /** Closes with 1000 and waits for the server's close frame; the code the socket ended with, or undefined when it hung. */
  async close (ms: number): Promise<number | undefined> {
    if (this.code !== undefined) return this.code
    if (this.ws.readyState === this.ws.OPEN) {
      this.#clientClosing = true
      this.ws.close(1000, 'fuzz run done')
    }
    const timer = new Promise<undefined>(resolve => setTimeout(() => resolve(undefined), ms).unref())
    const code = await Promise.race([this.closed, timer])
    if (code === undefined) this.ws.terminate()
    return code
  }
}
