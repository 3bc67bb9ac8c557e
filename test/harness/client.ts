// The suites' WebSocket client for /v1/stream and the test routes: a real ws
// socket that records every frame, its close, or the HTTP answer that refused
// the upgrade. One class for the auth, rate-limit, stream and cluster suites
// (three copies until issue 15). Not a test file itself (no .test.ts).
import { WebSocket } from 'ws'

export interface Frame {
  op: string
  [field: string]: unknown
}

export interface Refusal {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: { error?: { code: string, message: string } }
}

export interface ClientOptions {
  /** the offered subprotocols; sluice.v1 when not given */
  protocols?: string[]
  headers?: Record<string, string>
}

export class Client {
  readonly ws: WebSocket
  readonly frames: Frame[] = []
  /** resolves on open; rejects with `{ status, statusCode, headers, body }` when the upgrade is refused */
  readonly opened: Promise<void>
  /** resolves with 'open' or the refusal; never rejects (a socket error is status 0, code SOCKET) */
  readonly outcome: Promise<'open' | Refusal>
  readonly closed: Promise<{ code: number, reason: string, at: number }>
  /** the subprotocol the server selected */
  protocol = ''
  #waiters: Array<() => void> = []

  constructor (url: string, options: ClientOptions = {}) {
    // a bare header record type-checks as options (its index signature) and would go unsent
    const unknown = Object.keys(options).filter(key => key !== 'protocols' && key !== 'headers')
    if (unknown.length > 0) throw new TypeError(`Client options are { protocols, headers }; got ${unknown.join(', ')}`)
    this.ws = new WebSocket(url, options.protocols ?? ['sluice.v1'], { headers: options.headers, perMessageDeflate: false })
    // Every listener is added here, before the constructor returns: ws emits
    // the frames that came in the same read as the 101 on the next tick, ahead
    // of any promise continuation, and a listener added after 'open' misses
    // them (e94bf25: cluster-drain and cluster-kill lost 10 and 16 records so).
    this.outcome = new Promise(resolve => {
      this.ws.once('open', () => { this.protocol = this.ws.protocol; resolve('open') })
      this.ws.once('unexpected-response', (_request, response) => {
        let body = ''
        response.on('data', chunk => { body += chunk })
        response.on('end', () => {
          let parsed: unknown = body
          try { parsed = JSON.parse(body) } catch {}
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: parsed as Refusal['body'] })
        })
      })
      this.ws.once('error', err => resolve({ status: 0, headers: {}, body: { error: { code: 'SOCKET', message: err.message } } }))
    })
    this.opened = this.outcome.then(outcome => {
      if (outcome === 'open') return
      if (outcome.status === 0) throw new Error(outcome.body.error?.message)
      throw Object.assign(new Error(`HTTP ${outcome.status}`), { ...outcome, statusCode: outcome.status })
    })
    // a suite that only awaits `outcome` or `closed` leaves no unhandled rejection
    this.opened.catch(() => {})
    this.closed = new Promise(resolve => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })))
    this.ws.on('message', data => {
      this.frames.push(JSON.parse(String(data)) as Frame)
      this.#wake()
    })
    this.ws.on('close', () => this.#wake())
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  /** a string goes as it is (hostile and malformed frames), anything else as JSON */
  send (frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  messages (topic?: string): Frame[] {
    return this.frames.filter(f => f.op === 'message' && (topic === undefined || f.topic === topic))
  }

  /** The first frame from `after` on that matches; fails after `timeoutMs` (a bound on waiting, not a timing assertion). */
  async next (match: (frame: Frame) => boolean, timeoutMs = 10_000, after = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.frames.slice(after).find(match)
      if (found) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed (${JSON.stringify(await this.closed)}) before a matching frame; got ${JSON.stringify(this.frames.slice(-3))}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; last: ${JSON.stringify(this.frames.slice(-3))}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Waits until `count` message frames arrived (optionally of one topic). */
  async waitMessages (count: number, timeoutMs: number, topic?: string): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const got = this.messages(topic)
      if (got.length >= count) return got
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed after ${got.length} of ${count} messages`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${got.length} of ${count} messages within ${timeoutMs} ms`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 1000))
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  close (): void {
    this.ws.close()
  }

  terminate (): void {
    this.ws.terminate()
  }
}

/** The refusal of an upgrade: status, headers and JSON body (status 0 when the socket failed without an HTTP answer); throws if the socket opened. */
export async function refusal (client: Client): Promise<Refusal> {
  const outcome = await client.outcome
  if (outcome === 'open') {
    client.close()
    throw new Error('the upgrade was accepted')
  }
  return outcome
}
