// Every live socket of this node, whatever its route (/v1/stream, /v2/broker/),
// so that whoever withdraws access (a revoked key, an expired token, a policy
// reload, an admin's kick) can find the sockets concerned and close them.
import type { Identity } from '@sluice/protocol/identity'

export interface LiveSession {
  readonly id: string
  readonly identity: Identity
  readonly route: string
  readonly remoteAddress: string
  readonly connectedAt: number
  /** the API product of the first topic this socket subscribed or published to; undefined before that (metrics label connections by it) */
  readonly product?: string
  /** topics this socket is subscribed to now */
  topics (): string[]
  /** server-side unsubscribe (e.g. a policy change withdrew these topics); the client is told */
  unsubscribe (topics: string[], code: string, message: string): void
  /** closes the socket with a WebSocket close code (docs/design.md: 4001, 4003, ...) */
  close (code: number, reason: string): void
  /**
   * Closes once the publishes it already read are answered (acked or refused), waiting `waitMs` at most;
   * frames read meanwhile are not acted on (the client hears no ack and sends them again elsewhere). A graceful drain uses it.
   */
  closeSettled? (code: number, reason: string, waitMs: number): Promise<void>
  /** acts under `fresh` (same subject, another plan) from now on, its delivery limits those of the new plan */
  retarget? (fresh: Identity): void
}

/** What a session adds its usage to (plugins/usage's counters): plain fields, no call per message. */
export interface UsageCounts {
  delivered: number
  deliveredBytes: number
  published: number
  refuse (reason: string): void
}

/** Usage metering (plugins/usage): told when a session opens and ends. */
export interface SessionMeter {
  opened (session: LiveSession): UsageCounts
  ended (session: LiveSession): void
  /** a connection refused once its credential was known, before it became a session (an MQTT CONNACK's refusal) */
  refused (identity: Identity, reason: string): void
}

// The expiry index's grain: a session is filed under the second its credential expires in. The
// sweep that closes expired sockets (plugins/auth's SessionWatch) reads the seconds that have begun,
// and only their sessions, and sleeps until the next filed second begins.
const EXPIRY_SECOND_MS = 1000

export class SessionRegistry {
  readonly #sessions = new Map<string, LiveSession>()
  /** set by plugins/usage when metering is on; sessions opened from then on are metered */
  meter: SessionMeter | undefined
  // Sessions by the second their identity expires in (the ones with an expiresAt), the seconds in order.
  // A sweep over every socket read each one's identity 4 times a second: at 1,000 idle sockets that was
  // 11 % of the node's busy main thread in a CPU profile (bench/idle-topics.ts --profile), each read a cache miss
  readonly #bySecond = new Map<number, Set<LiveSession>>()
  #seconds: number[] = []
  readonly #filedListeners = new Set<(at: number) => void>()
  // Sessions by the API key they authenticated with: a revocation closes that key's sockets, and the
  // re-check asks Redis about the keys in use, without reading every socket of the node
  readonly #byKey = new Map<string, Set<LiveSession>>()
  // where each session with an expiry or a key is filed in the two indexes: one entry a session
  readonly #filing = new Map<LiveSession, { second: number | undefined, keyId: string | undefined }>()

  add (session: LiveSession): void {
    this.#sessions.set(session.id, session)
    this.#file(session)
  }

  delete (session: LiveSession): void {
    if (this.#sessions.get(session.id) !== session) return
    this.#sessions.delete(session.id)
    this.#unfile(session)
    this.meter?.ended(session)
  }

  /** The session's identity changed (a renewal, another plan): it is filed again under its new expiry. */
  refiled (session: LiveSession): void {
    if (this.#sessions.get(session.id) !== session) return
    this.#unfile(session)
    this.#file(session)
  }

  get size (): number {
    return this.#sessions.size
  }

  get (id: string): LiveSession | undefined {
    return this.#sessions.get(id)
  }

  list (): LiveSession[] {
    return [...this.#sessions.values()]
  }

  /**
   * The sessions whose identity expires at or before `at` (ms since the epoch), and possibly some that
   * expire later within the same second: the caller decides on each. Never reads another session.
   */
  expiringBy (at: number): LiveSession[] {
    const last = Math.floor(at / EXPIRY_SECOND_MS)
    const due: LiveSession[] = []
    for (const second of this.#seconds) {
      if (second > last) break
      for (const session of this.#bySecond.get(second)!) due.push(session)
    }
    return due
  }

  /**
   * The start (ms) of the first second after the one `at` is in that holds a session's expiry, or undefined:
   * the expiry sweep sleeps until then instead of waking 4 times a second.
   */
  nextExpiryAfter (at: number): number | undefined {
    const seconds = this.#seconds
    const i = this.#place(Math.floor(at / EXPIRY_SECOND_MS) + 1)
    return i < seconds.length ? seconds[i]! * EXPIRY_SECOND_MS : undefined
  }

  /** `listener` hears the start (ms) of the second each session is filed under, as it is filed (open, renewal, new plan). */
  onFiled (listener: (at: number) => void): () => void {
    this.#filedListeners.add(listener)
    return () => { this.#filedListeners.delete(listener) }
  }

  /** Closes every session that matches; returns how many. */
  closeWhere (match: (session: LiveSession) => boolean, code: number, reason: string): number {
    let closed = 0
    for (const session of this.list()) {
      if (!match(session)) continue
      session.close(code, reason)
      closed++
    }
    return closed
  }

  /** The sessions that authenticated with API key `id`. Never reads another session. */
  withKey (id: string): LiveSession[] {
    return [...(this.#byKey.get(id) ?? [])]
  }

  /** The API keys the node's sessions authenticated with, each once. */
  keyIds (): string[] {
    return [...this.#byKey.keys()]
  }

  #file (session: LiveSession): void {
    const identity = session.identity
    const keyId = identity.keyId
    const at = identity.expiresAt
    const second = at === undefined || !Number.isFinite(at) ? undefined : Math.floor(at / EXPIRY_SECOND_MS)
    if (keyId === undefined && second === undefined) return
    this.#filing.set(session, { second, keyId })
    if (keyId !== undefined) {
      let held = this.#byKey.get(keyId)
      if (!held) {
        held = new Set()
        this.#byKey.set(keyId, held)
      }
      held.add(session)
    }
    if (second === undefined) return
    let filed = this.#bySecond.get(second)
    if (!filed) {
      filed = new Set()
      this.#bySecond.set(second, filed)
      this.#seconds.splice(this.#place(second), 0, second)
    }
    filed.add(session)
    for (const listener of this.#filedListeners) listener(second * EXPIRY_SECOND_MS)
  }

  #unfile (session: LiveSession): void {
    const filing = this.#filing.get(session)
    if (!filing) return
    this.#filing.delete(session)
    const { second, keyId } = filing
    if (keyId !== undefined) {
      const held = this.#byKey.get(keyId)!
      held.delete(session)
      if (held.size === 0) this.#byKey.delete(keyId)
    }
    if (second === undefined) return
    const filed = this.#bySecond.get(second)!
    filed.delete(session)
    if (filed.size > 0) return
    this.#bySecond.delete(second)
    this.#seconds.splice(this.#place(second), 1)
  }

  /** Where `second` is, or goes, in the ordered seconds (binary search; at most one second a session). */
  #place (second: number): number {
    const seconds = this.#seconds
    let lo = 0
    let hi = seconds.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (seconds[mid]! < second) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
