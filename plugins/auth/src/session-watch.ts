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
}

// docs/design.md: an expired token closes within 1 s of exp plus skew; a sweep every
// 250 ms stays well inside that. It reads the sessions the registry has filed as due
// (SessionSource.expiringBy), not every socket of the node.
export const DEFAULT_EXPIRY_INTERVAL_MS = 250
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

  constructor (options: SessionWatchOptions) {
    this.#options = options
  }

  start (): void {
    if (this.#timers.length > 0) return
    this.#timers.push(setInterval(() => this.sweepExpired(), this.#options.expiryIntervalMs ?? DEFAULT_EXPIRY_INTERVAL_MS))
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

  /** Closes sockets whose credentials expired (JWTs after exp plus the skew). */
  sweepExpired (now = Date.now()): number {
    const source = this.#options.sessions()
    // the sessions due by now: a JWT's skew only delays its close, it is due at its exp already
    const list = (source?.expiringBy ? source.expiringBy(now) : source?.list()) ?? []
    if (list.length === 0) return 0
    const expired = list.filter(s => {
      const at = s.identity.expiresAt
      if (at === undefined) return false
      return now >= at + (s.identity.kind === 'jwt' ? this.#options.jwtSkewMs : 0)
    })
    return expired.length > 0 ? this.#close(expired, 'expired') : 0
  }

  /** Closes this node's sockets that use API key `id`. */
  closeKey (id: string): number {
    const list = this.#options.sessions()?.list() ?? []
    return this.#close(list.filter(s => s.identity.keyId === id), 'revoked')
  }

  /** Asks Redis which live keys still exist; closes the sockets of the others. */
  async recheck (): Promise<number> {
    const apiKeys = this.#options.apiKeys
    if (!apiKeys || this.#rechecking) return 0
    this.#rechecking = true
    try {
      const list = this.#options.sessions()?.list() ?? []
      const ids = [...new Set(list.map(s => s.identity.keyId).filter((id): id is string => id !== undefined))]
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
