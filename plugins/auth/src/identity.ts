// The contract between authentication and everything after it (policy, rate
// limits, the stream session): who the client is, decided before the upgrade.

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

declare module 'fastify' {
  interface FastifyRequest {
    /** set by the auth plugin's onRequest hook on routes whose config asks for it */
    identity?: Identity
  }
  interface FastifyContextConfig {
    /** `true`: the route needs credentials, checked before the handler (and before a WebSocket upgrade) */
    auth?: boolean
  }
}
