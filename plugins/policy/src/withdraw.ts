// Fastify-free: after a reload, live sockets keep only the access the new
// policy gives. A socket whose identity no rule covers any more is closed with
// 4003; one that lost some of its subscriptions is unsubscribed from those.
import type { Identity } from '@sluice/protocol/identity'
import { CLOSE } from '@sluice/protocol/codes'
import type { AccessDecision, Action } from './access.ts'

export const WITHDRAWN_MESSAGE = 'access withdrawn by a policy change'

// The registry's sessions (@sluice/sessions LiveSession), seen structurally.
export interface PolicySession {
  readonly identity: Identity
  topics (): string[]
  unsubscribe (topics: string[], code: string, message: string): void
  close (code: number, reason: string): void
}

export interface Access {
  authorize (identity: Identity, action: Action, topic: string): AccessDecision
  hasAccess (identity: Identity): boolean
}

export function withdrawAccess (sessions: Iterable<PolicySession>, access: Access): { closed: number, unsubscribed: number } {
  let closed = 0
  let unsubscribed = 0
  for (const session of sessions) {
    if (!access.hasAccess(session.identity)) {
      session.close(CLOSE.ACCESS_WITHDRAWN, WITHDRAWN_MESSAGE)
      closed++
      continue
    }
    const denied = session.topics().filter(topic => !access.authorize(session.identity, 'subscribe', topic).allowed)
    if (denied.length > 0) {
      session.unsubscribe(denied, 'FORBIDDEN', WITHDRAWN_MESSAGE)
      unsubscribed++
    }
  }
  return { closed, unsubscribed }
}
