// Developers sign in on the portal with the organisation's OpenID Connect
// provider (authorization code + PKCE, openid-client, a certified relying
// party): GET /portal/login redirects there with a fresh state, nonce and
// PKCE challenge, kept in a sealed sign-in cookie; GET /portal/callback
// checks the state, exchanges the code with the verifier, has the ID token
// checked (signature, issuer, audience, nonce, expiry) and sets the session
// cookie; POST /portal/logout clears it; GET /portal/session says who is
// signed in, for the page. The developer API (plugins/apps) accepts the
// session through the `developerSignIn` decorator it declares.
//
// Without portal.oidc the routes still answer (SLUICE_PORTAL_SIGN_IN_DISABLED,
// and /portal/session says there is no sign-in), so the page and the OpenAPI
// document are the same on every gateway.
import * as client from 'openid-client'
import { parseCookie, stringifySetCookie } from 'cookie'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type {} from '@sluice/apps'
import {
  PortalCrossOriginError, PortalIssuerUnavailableError, PortalSessionInvalidError, PortalSignInDisabledError,
  PortalSignInFailedError, PortalSignInStateError
} from './errors.ts'
import { SECURITY_HEADERS } from './assets.ts'
import { SESSION_COOKIE, SIGN_IN_COOKIE, SIGN_IN_SECONDS, readSession, readSignIn, sameOrigin, seal, type PortalSession, type Refusal } from './session.ts'

export interface SignInOptions {
  issuer: string
  clientId: string
  /** absent: a public client, PKCE alone */
  clientSecret?: string
  redirectUrl: string
  cookieSecret: string
  sessionSeconds: number
}

// discovery and the token request: a provider answers in well under a second; 5 s bounds a sign-in's wait
const PROVIDER_TIMEOUT_SECONDS = 5
// what the page returns to once signed in: the developer's panel
const AFTER_SIGN_IN = '/portal#applications'
const REFUSAL_WORDS: Record<Refusal, string> = { malformed: 'malformed', signature: 'not signed by this gateway', expired: 'expired' }

function loopback (url: URL): boolean {
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)
}

function cookieHeader (name: string, value: string, maxAge: number, secure: boolean): string {
  // HttpOnly: the page's scripts never read it; Lax: sent on the provider's top-level redirect back to the
  // callback, not on cross-site subrequests; Path=/: the developer API lives under /v1/developer
  return stringifySetCookie({ name, value, httpOnly: true, sameSite: 'lax', path: '/', maxAge, secure })
}

function refuse (reply: FastifyReply, error: Error & { code: string, statusCode?: number }): FastifyReply {
  reply.headers(SECURITY_HEADERS)
  reply.header('cache-control', 'no-store')
  return reply.code(error.statusCode ?? 500).send({ error: { code: error.code, message: error.message } })
}

export async function signIn (fastify: FastifyInstance, opts: SignInOptions | undefined): Promise<void> {
  if (!opts) {
    const disabled = async (_request: FastifyRequest, reply: FastifyReply) => refuse(reply, new PortalSignInDisabledError())
    fastify.get('/portal/login', disabled)
    fastify.get('/portal/callback', disabled)
    fastify.post('/portal/logout', disabled)
    fastify.get('/portal/session', async (_request, reply) => reply.header('cache-control', 'no-store').send({ signIn: false }))
    return
  }
  const options = opts
  const redirect = new URL(options.redirectUrl)
  const portalOrigin = redirect.origin
  const secure = redirect.protocol === 'https:'
  const issuerUrl = new URL(options.issuer)

  // discovered on first use, not at boot: a provider that is down must not keep the gateway from serving streams
  let configuration: Promise<client.Configuration> | undefined
  function provider (): Promise<client.Configuration> {
    configuration ??= client.discovery(
      issuerUrl,
      options.clientId,
      undefined,
      options.clientSecret === undefined ? client.None() : client.ClientSecretBasic(options.clientSecret),
      { timeout: PROVIDER_TIMEOUT_SECONDS, ...(loopback(issuerUrl) ? { execute: [client.allowInsecureRequests] } : {}) }
    ).catch(error => {
      configuration = undefined // the next sign-in tries again
      throw new PortalIssuerUnavailableError(options.issuer, (error as Error).message)
    })
    return configuration
  }

  function cookies (request: FastifyRequest): Record<string, string | undefined> {
    const header = request.headers.cookie
    return header ? parseCookie(header) : {}
  }

  function session (request: FastifyRequest): PortalSession | undefined {
    const value = cookies(request)[SESSION_COOKIE]
    if (value === undefined) return undefined
    const read = readSession(options.cookieSecret, value, Date.now())
    if (!read.ok) throw new PortalSessionInvalidError(REFUSAL_WORDS[read.reason])
    return read.session
  }

  fastify.decorate('developerSignIn', {
    identify (request: FastifyRequest) {
      const signedIn = session(request)
      if (!signedIn) return undefined
      const origin = request.headers.origin
      if (!sameOrigin(request.method, origin, portalOrigin)) throw new PortalCrossOriginError(portalOrigin, origin ?? 'no Origin header')
      return { issuer: signedIn.iss, subject: signedIn.sub }
    }
  })

  fastify.get('/portal/login', async (_request, reply) => {
    let config: client.Configuration
    try {
      config = await provider()
    } catch (error) {
      return refuse(reply, error as Error & { code: string })
    }
    const verifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const nonce = client.randomNonce()
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: options.redirectUrl,
      scope: 'openid email profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce
    })
    const sealed = seal(options.cookieSecret, 'sign-in', { state, nonce, verifier, exp: Date.now() + SIGN_IN_SECONDS * 1000 })
    reply.header('set-cookie', cookieHeader(SIGN_IN_COOKIE, sealed, SIGN_IN_SECONDS, secure))
    reply.header('cache-control', 'no-store')
    return reply.redirect(url.href, 302)
  })

  fastify.get('/portal/callback', async (request, reply) => {
    const value = cookies(request)[SIGN_IN_COOKIE]
    if (value === undefined) return refuse(reply, new PortalSignInStateError('no sign-in was started in this browser, or it took longer than 10 minutes'))
    const read = readSignIn(options.cookieSecret, value, Date.now())
    if (!read.ok) return refuse(reply, new PortalSignInStateError(`the sign-in cookie is ${REFUSAL_WORDS[read.reason]}`))
    const query = request.query as Record<string, unknown>
    // checked here before the library does, to answer with its own code: a forged or replayed callback
    if (query.state !== read.signIn.state) return refuse(reply, new PortalSignInStateError('the state does not match the one this browser was sent with'))
    let config: client.Configuration
    try {
      config = await provider()
    } catch (error) {
      return refuse(reply, error as Error & { code: string })
    }
    let claims: client.IDToken | undefined
    try {
      // the token request repeats the redirect URI from this URL: the configured one, whatever path a proxy
      // in front rewrote the request to, with the provider's query (code, state, iss)
      const current = new URL(options.redirectUrl)
      current.search = new URL(request.url, portalOrigin).search
      const tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: read.signIn.verifier,
        expectedState: read.signIn.state,
        expectedNonce: read.signIn.nonce,
        idTokenExpected: true
      })
      claims = tokens.claims()
    } catch (error) {
      return refuse(reply, new PortalSignInFailedError((error as Error).message))
    }
    if (!claims) return refuse(reply, new PortalSignInFailedError('no ID token'))
    const name = [claims.email, claims.name, claims.sub].find(v => typeof v === 'string' && v.length > 0) as string
    const sealed = seal(options.cookieSecret, 'session', { iss: claims.iss, sub: claims.sub, name, exp: Date.now() + options.sessionSeconds * 1000 })
    reply.header('set-cookie', [
      cookieHeader(SESSION_COOKIE, sealed, options.sessionSeconds, secure),
      cookieHeader(SIGN_IN_COOKIE, '', 0, secure)
    ])
    reply.header('cache-control', 'no-store')
    return reply.redirect(AFTER_SIGN_IN, 303)
  })

  fastify.post('/portal/logout', async (request, reply) => {
    const origin = request.headers.origin
    if (!sameOrigin('POST', origin, portalOrigin)) return refuse(reply, new PortalCrossOriginError(portalOrigin, origin ?? 'no Origin header'))
    reply.header('set-cookie', cookieHeader(SESSION_COOKIE, '', 0, secure))
    reply.header('cache-control', 'no-store')
    return reply.code(204).send()
  })

  fastify.get('/portal/session', async (request, reply) => {
    let signedIn: PortalSession | undefined
    try {
      signedIn = session(request)
    } catch (error) {
      // the page offers Sign in again; the cookie that cannot be read goes
      reply.header('set-cookie', cookieHeader(SESSION_COOKIE, '', 0, secure))
      return refuse(reply, error as Error & { code: string })
    }
    reply.header('cache-control', 'no-store')
    if (!signedIn) return { signIn: true }
    return { signIn: true, developer: { id: `${signedIn.iss}|${signedIn.sub}`, name: signedIn.name, expiresAt: new Date(signedIn.exp).toISOString() } }
  })
}
