// Who is calling the developer API: a JWT of an issuer the gateway trusts
// (plugins/auth checks it as it checks a stream's token: signature, issuer
// allow-list, audience, expiry), dev mode's credential, or the portal's
// session cookie (OIDC code + PKCE sign-in, plugins/portal), which gives the
// same `<iss>|<sub>` as a JWT of that issuer would. Resolved here, and only
// here: every developer route asks resolveDeveloper().
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

/**
 * A sign-in that knows developers without a bearer token: the portal's
 * session cookie. `identify` answers undefined when the request carries none,
 * and throws a coded error when it carries one that is refused (tampered,
 * expired, or a cross-origin request that changes something).
 */
export interface DeveloperSignIn {
  identify (request: FastifyRequest): { issuer: string, subject: string } | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    /** set by the developer routes' onRequest hook */
    developer?: Developer
  }
  interface FastifyInstance {
    /** decorated by the portal when it has a sign-in */
    developerSignIn?: DeveloperSignIn
  }
}

/** The developer a request comes from, or a coded error (SLUICE_AUTH_* 401/403, SLUICE_APPS_DEVELOPER_REQUIRED, SLUICE_PORTAL_SESSION_*). */
export async function resolveDeveloper (request: FastifyRequest): Promise<Developer> {
  // a bearer token, when sent, is what the caller means; the cookie is the portal page's
  if (request.headers.authorization === undefined) {
    const signedIn = request.server.developerSignIn?.identify(request)
    if (signedIn) return { id: `${signedIn.issuer}|${signedIn.subject}`, issuer: signedIn.issuer, subject: signedIn.subject }
  }
  const identity = await request.server.credentials.authenticate(request)
  if (identity.kind === 'dev') return { id: `${DEV_ISSUER}|${identity.subject}`, issuer: DEV_ISSUER, subject: identity.subject }
  // an API key is an application's, not a developer's: it must not manage applications (its own included)
  if (identity.kind !== 'jwt') throw new AppsDeveloperRequiredError('an API key')
  const issuer = identity.claims.iss
  if (typeof issuer !== 'string' || issuer.length === 0) throw new AppsDeveloperRequiredError('a token without an issuer')
  return { id: `${issuer}|${identity.subject}`, issuer, subject: identity.subject }
}
