// The contract between authentication and everything after it (policy, rate
// limits, the sessions): who the client is, decided before the upgrade.
import { createHash } from 'node:crypto'

export type IdentityKind = 'jwt' | 'api-key' | 'dev'

export interface Identity {
  kind: IdentityKind
  /** JWT `sub`, or the API key's owner */
  subject: string
  /** JWT claims, or the API key's attributes (owner, product, plan, ...): what access rules match on */
  claims: Record<string, unknown>
  /** the API key's id, so that a revocation finds its sockets */
  keyId?: string
  /** ms since the epoch; a session closes with 4001 when it passes (plus the configured skew) */
  expiresAt?: number
}

/**
 * Consumer groups are namespaced by subject: a client can share a group with
 * its own other sockets (on any node and any route: `/v1/stream?group=`,
 * `/v2/broker/`'s group.id, an MQTT shared subscription), never join another
 * subject's group.
 */
export function groupIdFor (identity: Identity, group: string): string {
  const subject = createHash('sha256').update(identity.subject).digest('base64url').slice(0, 16)
  return `sluice-group.${subject}.${group}`
}
