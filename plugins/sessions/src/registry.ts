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

export class SessionRegistry {
  readonly #sessions = new Map<string, LiveSession>()
  /** set by plugins/usage when metering is on; sessions opened from then on are metered */
  meter: SessionMeter | undefined

  add (session: LiveSession): void {
    this.#sessions.set(session.id, session)
  }

  delete (session: LiveSession): void {
    if (this.#sessions.get(session.id) !== session) return
    this.#sessions.delete(session.id)
    this.meter?.ended(session)
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
}
