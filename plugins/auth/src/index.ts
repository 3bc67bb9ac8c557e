// The auth plugin: routes with `config: { auth: true }` get an onRequest hook
// that finds the one credential of the request (header, `bearer.<jwt>`
// subprotocol or query), checks it, and sets `request.identity`, or replies
// 401/403 with `{ error: { code, message } }`. On a WebSocket route that hook
// runs before the upgrade, so a rejected client never holds a socket.
//
// It also keeps live sockets honest (session-watch.ts): expiry and API-key
// revocation close them with 4001; and it renews a JWT in-band (renew()).
import { createHash, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import { Counter } from 'prom-client'
// type-only: brings fastify.sessions into scope (the live sockets whose credentials expire or are revoked)
import type {} from '@sluice/sessions'
import './identity.ts'
import type { Identity } from './identity.ts'
import { credentialFrom, looksLikeJwt, MAX_CREDENTIAL_LENGTH } from './credentials.ts'
import { compileOrigins, originAllowed } from './origin.ts'
import { KeyVerifiers, TrustedIssuers, jwtIdentity, sameGrant, type JwtSettings } from './jwt.ts'
import { ApiKeyStore, apiKeyIdentity } from './api-keys.ts'
import { SessionWatch } from './session-watch.ts'
import {
  AuthApiKeysDisabledError, AuthExpiredError, AuthInvalidApiKeyError, AuthInvalidTokenError, AuthMalformedError,
  AuthOriginForbiddenError, AuthRenewRefusedError, AuthUnavailableError, AuthUntrustedIssuerError, isAuthError
} from './errors.ts'

export type { Identity, IdentityKind } from './identity.ts'
export type { JwtSettings, IssuerConfig } from './jwt.ts'
export type { ApiKeyRecord, IssueRequest, ListOptions } from './api-keys.ts'
export { ApiKeyStore, apiKeyIdentity } from './api-keys.ts'
export { SessionWatch } from './session-watch.ts'
export type { SessionSource, WatchedSession } from './session-watch.ts'
export { TrustedIssuers } from './jwt.ts'
export { JwksKeys, MAX_KID_LENGTH } from './jwks.ts'
export { credentialFrom } from './credentials.ts'
export * as errors from './errors.ts'

export interface AuthOptions {
  /** dev mode's credential: a bearer/access_token equal to it is the `dev` identity */
  devToken?: string
  /** browser Origins allowed to connect: exact origins, `https://*.example.com`, or `*`; default none */
  origins?: string[]
  /** trusted JWT issuers; without it no JWT is accepted */
  jwt?: JwtSettings
  /** API keys need Redis; without it they are refused with SLUICE_AUTH_API_KEYS_DISABLED */
  apiKeys?: { redis: Redis, prefix?: string, recheckIntervalMs?: number }
  expiryIntervalMs?: number
}

export interface Credentials {
  /** the hook's check, callable on its own: the identity of a request or a coded error */
  authenticate (request: FastifyRequest): Promise<Identity>
  /**
   * In-band renewal on a live socket: verifies `token` as an upgrade would and
   * requires the same issuer, subject and access claims as `current`. Returns
   * the fresh identity (a new object, later expiry) for the session to use from
   * then on; throws SLUICE_AUTH_* errors and leaves `current` untouched.
   */
  renew (current: Identity, token: string): Promise<Identity>
  /**
   * A credential given outside HTTP (an MQTT CONNECT's password): an issued API key, the dev token or a JWT,
   * with the same checks as the hook's (no Origin: the connection has none). Throws SLUICE_AUTH_* errors.
   */
  verify (secret: string): Promise<Identity>
  /** undefined when Redis is not configured */
  readonly apiKeys: ApiKeyStore | undefined
  /** deletes the key, closes its sockets on this node now and, through Redis, on every other */
  revokeApiKey (id: string): Promise<boolean>
  readonly issuers: TrustedIssuers | undefined
  readonly watch: SessionWatch
}

declare module 'fastify' {
  interface FastifyInstance {
    credentials: Credentials
  }
}

const DEV_CLAIMS = { sub: 'dev', roles: ['dev'] }

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Error codes of @fastify/jwt and fast-jwt, mapped to this plugin's catalogue. */
function tokenError (err: unknown): Error {
  if (isAuthError(err)) return err
  const code = (err as { code?: unknown })?.code
  if (code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' || code === 'FAST_JWT_EXPIRED') return new AuthExpiredError()
  if (typeof code === 'string' && (code.startsWith('FST_JWT_') || code.startsWith('FAST_JWT_'))) return new AuthInvalidTokenError()
  return new AuthUnavailableError()
}

function sendError (reply: FastifyReply, err: Error & { code: string, statusCode: number }): FastifyReply {
  reply.code(err.statusCode).header('cache-control', 'no-store')
  if (err.statusCode === 401) reply.header('www-authenticate', 'Bearer realm="sluice"')
  return reply.send({ error: { code: err.code, message: err.message } })
}

async function auth (fastify: FastifyInstance, opts: AuthOptions): Promise<void> {
  const origins = compileOrigins(opts.origins ?? [])
  const devDigest = opts.devToken ? digest(opts.devToken) : undefined
  const skewMs = (opts.jwt?.clockSkewSeconds ?? 0) * 1000
  const metrics = fastify.hasDecorator('metrics') ? fastify.metrics : undefined

  const rejected = new Counter({ name: 'sluice_auth_rejected_total', help: 'Requests refused by the auth hook, by error code', labelNames: ['code'], registers: metrics ? [metrics] : [] })
  const jwksFetches = new Counter({ name: 'sluice_auth_jwks_fetches_total', help: 'JWKS fetches, by issuer and outcome', labelNames: ['issuer', 'outcome'], registers: metrics ? [metrics] : [] })
  const closedSessions = new Counter({ name: 'sluice_auth_sessions_closed_total', help: 'Live sockets closed with 4001, by reason', labelNames: ['reason'], registers: metrics ? [metrics] : [] })

  const issuers = opts.jwt && opts.jwt.issuers.length > 0
    ? new TrustedIssuers(opts.jwt, (issuer, outcome, error) => {
      jwksFetches.inc({ issuer, outcome })
      if (error) fastify.log.warn({ issuer, err: error }, 'JWKS fetch failed')
    })
    : undefined

  // the checks every JWT gets: on an upgrade, a renewal or an MQTT CONNECT (keyVerifiers), and through
  // request.jwtVerify() (@fastify/jwt) on a route that would call it
  const checks = issuers
    ? { algorithms: issuers.algorithms as never, allowedIss: issuers.names, allowedAud: opts.jwt!.audience, clockTolerance: skewMs, requiredClaims: ['exp', 'iss', 'aud', 'sub'] }
    : undefined
  // fastify.jwt.verify(token, { key }) would build a verifier for each token
  const keyVerifiers = checks ? new KeyVerifiers(checks) : undefined
  if (issuers) {
    // the key is chosen by issuer from configuration (jwt.ts), never from the token alone
    const publicKey = async (_request: FastifyRequest, decoded: unknown): Promise<string> => {
      const { header, payload } = decoded as { header: Record<string, unknown>, payload: Record<string, unknown> }
      return issuers.keyFor(header, payload)
    }
    await fastify.register(fastifyJwt, {
      secret: { public: publicKey },
      decode: { complete: true },
      verify: checks,
      decoratorName: 'jwtPayload'
    })
  }

  const apiKeys = opts.apiKeys ? new ApiKeyStore(opts.apiKeys.redis, opts.apiKeys.prefix) : undefined

  const watch = new SessionWatch({
    sessions: () => fastify.sessions,
    jwtSkewMs: skewMs,
    expiryIntervalMs: opts.expiryIntervalMs,
    apiKeys,
    recheckIntervalMs: opts.apiKeys?.recheckIntervalMs,
    onClosed: (reason, count) => {
      closedSessions.inc({ reason }, count)
      fastify.log.info({ reason, count }, 'closed live sockets with 4001')
    },
    onError: (err, what) => fastify.log.warn({ err }, `${what} failed`)
  })

  function devIdentity (token: string): Identity | undefined {
    if (!devDigest) return undefined
    return timingSafeEqual(digest(token), devDigest)
      ? { kind: 'dev', subject: 'dev', claims: structuredClone(DEV_CLAIMS) }
      : undefined
  }

  async function apiKeyCheck (key: string): Promise<Identity> {
    if (!apiKeys) throw new AuthApiKeysDisabledError()
    let record
    try {
      record = await apiKeys.verify(key)
    } catch (err) {
      fastify.log.warn({ err }, 'API key lookup failed')
      throw new AuthUnavailableError()
    }
    if (!record) throw new AuthInvalidApiKeyError()
    return apiKeyIdentity(record)
  }

  /** A JWT, on an upgrade (authenticate), a renewal or an MQTT CONNECT: its issuer's key, then that key's verifier. */
  async function verifyJwt (token: string): Promise<Identity> {
    if (!issuers || !keyVerifiers) throw new AuthUntrustedIssuerError()
    let decoded: { header: Record<string, unknown>, payload: Record<string, unknown> } | null
    try {
      decoded = fastify.jwt.decode(token)
    } catch {
      throw new AuthInvalidTokenError()
    }
    if (!decoded) throw new AuthInvalidTokenError()
    const key = await issuers.keyFor(decoded.header, decoded.payload)
    try {
      return jwtIdentity(keyVerifiers.verify(key, token))
    } catch (err) {
      throw tokenError(err)
    }
  }

  async function authenticate (request: FastifyRequest): Promise<Identity> {
    if (!originAllowed(request.headers.origin, origins)) throw new AuthOriginForbiddenError()
    const credential = credentialFrom(request.headers, request.query as Record<string, unknown> | undefined)
    if (credential.type === 'api-key') return apiKeyCheck(credential.key)
    const dev = devIdentity(credential.token)
    if (dev) return dev
    if (!looksLikeJwt(credential.token)) throw new AuthInvalidTokenError()
    // the renewals' path, not request.jwtVerify(): the same decode, key choice and checks, without
    // @fastify/jwt's per-request option merging and callback waterfall
    try {
      return await verifyJwt(credential.token)
    } catch (err) {
      throw tokenError(err)
    }
  }

  async function renew (current: Identity, token: string): Promise<Identity> {
    if (current.kind !== 'jwt') throw new AuthRenewRefusedError('only a JWT session renews in-band')
    if (typeof token !== 'string' || token.length > MAX_CREDENTIAL_LENGTH || !looksLikeJwt(token)) throw new AuthRenewRefusedError('not a JWT')
    const fresh = await verifyJwt(token)
    if (fresh.subject !== current.subject || fresh.claims.iss !== current.claims.iss) throw new AuthRenewRefusedError('another subject')
    if (!sameGrant(current.claims, fresh.claims)) throw new AuthRenewRefusedError('the token grants other access')
    return fresh
  }

  async function verify (secret: string): Promise<Identity> {
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > MAX_CREDENTIAL_LENGTH) throw new AuthMalformedError()
    if (secret.startsWith('sk_')) return apiKeyCheck(secret)
    const dev = devIdentity(secret)
    if (dev) return dev
    if (!looksLikeJwt(secret)) throw new AuthInvalidTokenError()
    return verifyJwt(secret)
  }

  async function revokeApiKey (id: string): Promise<boolean> {
    if (!apiKeys) throw new AuthApiKeysDisabledError()
    const revoked = await apiKeys.revoke(id)
    // this node at once; the others through the pub/sub message revoke() sent
    watch.closeKey(id)
    return revoked
  }

  const credentials: Credentials = { authenticate, renew, verify, apiKeys, revokeApiKey, issuers, watch }
  fastify.decorate('credentials', credentials)
  fastify.decorateRequest('identity', undefined)

  async function onRequest (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    try {
      request.identity = await authenticate(request)
      return undefined
    } catch (err) {
      const known = isAuthError(err) ? err : new AuthUnavailableError()
      if (known !== err) request.log.error({ err }, 'credential check failed')
      // the code only: messages of the libraries are generic, and no credential is logged
      request.log.info({ code: known.code }, 'credentials refused')
      rejected.inc({ code: known.code })
      return sendError(reply, known)
    }
  }

  fastify.addHook('onRoute', routeOptions => {
    if (routeOptions.config?.auth !== true) return
    const existing = routeOptions.onRequest
    // first among the route's own hooks: nothing else runs for an unknown client
    routeOptions.onRequest = [onRequest, ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing])]
  })

  fastify.addHook('onReady', async () => {
    watch.start()
  })
  fastify.addHook('onClose', async () => {
    watch.stop()
  })
}

export default fp(auth, { fastify: '5.x', name: 'sluice-auth', dependencies: ['sluice-sessions'] })
