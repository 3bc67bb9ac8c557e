// The identity on the request: the type is the shared vocabulary's
// (@sluice/protocol/identity); what auth adds is where Fastify carries it.
import type { Identity } from '@sluice/protocol/identity'

export type { Identity, IdentityKind } from '@sluice/protocol/identity'

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
