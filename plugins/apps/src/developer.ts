// Who is calling the developer API. Today: a JWT of an issuer the gateway
// trusts (plugins/auth checks it as it checks a stream's token: signature,
// issuer allow-list, audience, expiry), or dev mode's credential. The portal's
// sign-in (OIDC code + PKCE, a session cookie) is to resolve the same identity
// here, and only here: every developer route asks resolveDeveloper().
import type { FastifyRequest } from 'fastify'
import type {} from '@sluice/auth'
import { AppsDeveloperRequiredError } from './errors.ts'

export interface Developer {
  /** `<iss>|<sub>`: a subject is unique only within its issuer */
  id: string
  issuer: string
  subject: string
}

// dev mode's credential is one developer of its own, so that `npm run dev` can make applications
export const DEV_ISSUER = 'sluice-dev'

declare module 'fastify' {
  interface FastifyRequest {
    /** set by the developer routes' onRequest hook */
    developer?: Developer
  }
}

/** The developer a request comes from, or a coded error (SLUICE_AUTH_* 401/403, SLUICE_APPS_DEVELOPER_REQUIRED). */
export async function resolveDeveloper (request: FastifyRequest): Promise<Developer> {
  const identity = await request.server.credentials.authenticate(request)
  if (identity.kind === 'dev') return { id: `${DEV_ISSUER}|${identity.subject}`, issuer: DEV_ISSUER, subject: identity.subject }
  // an API key is an application's, not a developer's: it must not manage applications (its own included)
  if (identity.kind !== 'jwt') throw new AppsDeveloperRequiredError('an API key')
  const issuer = identity.claims.iss
  if (typeof issuer !== 'string' || issuer.length === 0) throw new AppsDeveloperRequiredError('a token without an issuer')
  return { id: `${issuer}|${identity.subject}`, issuer, subject: identity.subject }
}
