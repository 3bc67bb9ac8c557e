// The contract between authentication and everything after it (policy, rate
// limits, the sessions): who the client is, decided before the upgrade.

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
