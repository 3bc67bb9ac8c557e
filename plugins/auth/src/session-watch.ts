// Fastify-free: credentials checked once at the upgrade must stay valid for
// the whole connection. This closes live sockets with 4001 when their token or
// API key expires, and when an API key is revoked on any node (Redis pub/sub,
// plus a periodic re-check in case a message was lost while disconnected).
import { CLOSE } from '@sluice/protocol/codes'
import { gatewayDefaults } from '@sluice/config/gateway'
import type { Identity } from './identity.ts'
import type { ApiKeyStore } from './api-keys.ts'

// The registry of live sockets (@sluice/sessions SessionRegistry), seen structurally
// so that this core stays Fastify-free and testable with plain objects.
export interface WatchedSession {
  readonly identity: Identity
  close (code: number, reason: string): void
}
export interface SessionSource {
  list (): WatchedSession[]
  /**
   * The sessions whose identity expires at or before `at` (ms), and perhaps a few later: what the
   * expiry sweep reads instead of every session (SessionRegistry files them by the second they expire in).
   */
  expiringBy? (at: number): WatchedSession[]
  /** The start (ms) of the first second after `at`'s that holds an expiry: with onFiled, the sweep sleeps until then. */
  nextExpiryAfter? (at: number): number | undefined
  /** Tells `listener` the start (ms) of the second each session is filed under as it is filed; returns the unsubscribe. */
  onFiled? (listener: (at: number) => void): () => void
  /** The sessions of API key `id`, without reading the others (SessionRegistry indexes them by key). */
  withKey? (id: string): WatchedSession[]
  /** The API keys in use, each once. */
  keyIds? (): string[]
}

// docs/design.md: an expired token closes within 1 s of exp plus skew. Over a source that files
// sessions by expiry (SessionRegistry) the sweep runs when the next one is due and reads only the
// sessions due (SessionSource.expiringBy), two sweeps at least this far apart; over any other source it
// runs at this period and reads every socket. A node whose tokens expire in an hour sweeps once a second
// (MAX_SWEEP_SLEEP_MS), not 4 times: each of an idle node's wakeups costs CPU (bench/README.md, idle-topics).
export const DEFAULT_EXPIRY_INTERVAL_MS = 250
// The scheduled sweep sleeps 1 s at most: expiries are wall-clock times and its timer is not, so a clock
// stepped forward (NTP, a VM resumed) is seen within a second, as the design's bound asks, at 1 wakeup a second
export const MAX_SWEEP_SLEEP_MS = 1000
// docs/design.md: a revocation closes sockets within 5 s on every node. Pub/sub does
// it at once; this re-check bounds the delay at ~4 s when a message was lost (auth.apiKeys.recheckIntervalMs)
export const DEFAULT_RECHECK_INTERVAL_MS = gatewayDefaults.auth.apiKeys.recheckIntervalMs
// one pipeline of EXISTS per batch: bounded Redis work however many keys are live
const RECHECK_BATCH = 500

export interface SessionWatchOptions {
  sessions: () => SessionSource | undefined
  /** added to a JWT's exp before closing, the same skew verification allows */
  jwtSkewMs: number
  expiryIntervalMs?: number
  apiKeys?: ApiKeyStore
  recheckIntervalMs?: number
  onClosed? (reason: 'expired' | 'revoked', count: number): void
  onError? (err: Error, what: string): void
}

export class SessionWatch {
  readonly #options: SessionWatchOptions
  // a closing socket stays listed until its close handshake ends; close it once
  readonly #closing = new WeakSet<WatchedSession>()
  #timers: NodeJS.Timeout[] = []
  #listener: { close (): void } | undefined
  #rechecking = false
  // the scheduled sweep over an indexed source: its timer, when it runs (ms), the last sweep's time
  #sweepTimer: NodeJS.Timeout | undefined
  #sweepAt: number | undefined
  #sweptAt = -Infinity
  #unfiled: (() => void) | undefined
  // the earliest exp plus skew among sessions the last sweep found due but left inside their skew
  #heldUntil: number | undefined

  constructor (options: SessionWatchOptions) {
    this.#options = options
  }

  start (): void {
    if (this.#timers.length > 0 || this.#unfiled) return
    const source = this.#options.sessions()
    if (source?.expiringBy && source.nextExpiryAfter && source.onFiled) {
      this.#unfiled = source.onFiled(at => { if (this.#sweepAt === undefined || at < this.#sweepAt) this.#scheduleSweep(at) })
      this.#scheduleSweep(Date.now())
    } else {
      this.#timers.push(setInterval(() => this.sweepExpired(), this.#gap))
    }
    const apiKeys = this.#options.apiKeys
    if (apiKeys) {
      this.#listener = apiKeys.listen(id => this.closeKey(id), err => this.#options.onError?.(err, 'revocation channel'))
      this.#timers.push(setInterval(() => {
        this.recheck().catch(err => this.#options.onError?.(err as Error, 'API key re-check'))
      }, this.#options.recheckIntervalMs ?? DEFAULT_RECHECK_INTERVAL_MS))
    }
    for (const timer of this.#timers) timer.unref()
  }

  stop (): void {
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers = []
    this.#unfiled?.()
    this.#unfiled = undefined
    clearTimeout(this.#sweepTimer)
    this.#sweepTimer = undefined
    this.#sweepAt = undefined
    this.#listener?.close()
    this.#listener = undefined
  }

  #close (sessions: WatchedSession[], reason: 'expired' | 'revoked'): number {
    let closed = 0
    for (const session of sessions) {
      if (this.#closing.has(session)) continue
      this.#closing.add(session)
      session.close(CLOSE.CREDENTIALS, reason === 'expired' ? 'credentials expired' : 'credentials revoked')
      closed++
    }
    if (closed > 0) this.#options.onClosed?.(reason, closed)
    return closed
  }

  get #gap (): number {
    return this.#options.expiryIntervalMs ?? DEFAULT_EXPIRY_INTERVAL_MS
  }

  /** When the next sweep is due after one at `now`: a session held in its skew, or the next filed second; a second at most. */
  #nextDue (now: number): number {
    let next = now + MAX_SWEEP_SLEEP_MS
    const filed = this.#options.sessions()?.nextExpiryAfter?.(now)
    if (filed !== undefined) next = Math.min(next, filed)
    if (this.#heldUntil !== undefined) next = Math.min(next, this.#heldUntil)
    return next
  }

  /** The sweep at `at` (ms), or none; never within `#gap` of the last one, and sooner replaces later. */
  #scheduleSweep (at: number | undefined): void {
    clearTimeout(this.#sweepTimer)
    this.#sweepTimer = undefined
    this.#sweepAt = undefined
    if (at === undefined || !this.#unfiled) return
    const when = Math.max(at, this.#sweptAt + this.#gap)
    this.#sweepAt = when
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined
      this.#sweepAt = undefined
      const now = Date.now()
      this.sweepExpired(now)
      this.#scheduleSweep(this.#nextDue(now))
    }, Math.max(0, when - Date.now()))
    this.#sweepTimer.unref()
  }

  /** Closes sockets whose credentials expired (JWTs after exp plus the skew). */
  sweepExpired (now = Date.now()): number {
    this.#sweptAt = now
    this.#heldUntil = undefined
    const source = this.#options.sessions()
    // the sessions due by now: a JWT's skew only delays its close, it is due at its exp already
    const list = (source?.expiringBy ? source.expiringBy(now) : source?.list()) ?? []
    if (list.length === 0) return 0
    const expired = list.filter(s => {
      const at = s.identity.expiresAt
      if (at === undefined) return false
      const due = at + (s.identity.kind === 'jwt' ? this.#options.jwtSkewMs : 0)
      if (now >= due) return true
      // inside its skew, or later in the second now is in: the next sweep is due then at the latest
      if (this.#heldUntil === undefined || due < this.#heldUntil) this.#heldUntil = due
      return false
    })
    return expired.length > 0 ? this.#close(expired, 'expired') : 0
  }

  /** Closes this node's sockets that use API key `id`. */
  closeKey (id: string): number {
    const source = this.#options.sessions()
    if (!source) return 0
    const sessions = source.withKey ? source.withKey(id) : source.list().filter(s => s.identity.keyId === id)
    return this.#close(sessions, 'revoked')
  }

  /** Asks Redis which live keys still exist; closes the sockets of the others. */
  async recheck (): Promise<number> {
    const apiKeys = this.#options.apiKeys
    if (!apiKeys || this.#rechecking) return 0
    this.#rechecking = true
    try {
      const source = this.#options.sessions()
      const ids = source?.keyIds
        ? source.keyIds()
        : [...new Set((source?.list() ?? []).map(s => s.identity.keyId).filter((id): id is string => id !== undefined))]
      let closed = 0
      for (let i = 0; i < ids.length; i += RECHECK_BATCH) {
        const batch = ids.slice(i, i + RECHECK_BATCH)
        const alive = await apiKeys.existing(batch)
        for (const id of batch) if (!alive.has(id)) closed += this.closeKey(id)
      }
      return closed
    } finally {
      this.#rechecking = false
    }
  }
}
