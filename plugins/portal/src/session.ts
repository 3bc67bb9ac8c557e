// Fastify-free: the portal's two cookies, sealed (not encrypted) with
// HMAC-SHA256 under the configured secret. The session cookie says who signed
// in (the ID token's iss and sub) until when; the sign-in cookie carries what
// the callback must check (state, nonce) and the PKCE verifier, for the few
// minutes a sign-in at the provider takes. Neither is stored server-side: any
// node of a cluster reads them, and a restart signs nobody out.
//
// Each seal names its purpose inside the MAC, so a sign-in cookie can never
// pass for a session (nor the reverse). A value is `<payload>.<mac>`, both
// base64url; the payload is JSON with `exp` (ms since the epoch).
import { createHmac, timingSafeEqual } from 'node:crypto'

export const SESSION_COOKIE = 'sluice_portal_session'
export const SIGN_IN_COOKIE = 'sluice_portal_sign_in'
// a sign-in at the provider takes seconds; 10 minutes leaves room for a forgotten password, and a stolen
// sign-in cookie is useless after it (the provider's code expires sooner anyway: oidc-provider's in 60 s)
export const SIGN_IN_SECONDS = 600
// a cookie header larger than this is not ours: the session's JSON is ~200 bytes
const MAX_VALUE_LENGTH = 4096

export type Purpose = 'session' | 'sign-in'

export interface PortalSession {
  /** the ID token's issuer and subject: the developer id is `<iss>|<sub>` */
  iss: string
  sub: string
  /** what the portal shows: the ID token's email, else its name, else the subject */
  name: string
  exp: number
}

export interface SignIn {
  state: string
  nonce: string
  verifier: string
  exp: number
}

/** Why a cookie was refused: the error a route answers with names it. */
export type Refusal = 'malformed' | 'signature' | 'expired'

function mac (secret: string, purpose: Purpose, payload: string): Buffer {
  return createHmac('sha256', secret).update(`${purpose}\n${payload}`).digest()
}

/** The cookie value for `value` (which must carry `exp`, ms). */
export function seal<T extends { exp: number }> (secret: string, purpose: Purpose, value: T): string {
  const payload = Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${payload}.${mac(secret, purpose, payload).toString('base64url')}`
}

/** The value a cookie sealed, or why it is refused. Checks the MAC before reading anything. */
export function unseal (secret: string, purpose: Purpose, cookie: string, now: number): { ok: true, value: Record<string, unknown> } | { ok: false, reason: Refusal } {
  if (cookie.length > MAX_VALUE_LENGTH) return { ok: false, reason: 'malformed' }
  const dot = cookie.indexOf('.')
  if (dot <= 0 || dot !== cookie.lastIndexOf('.')) return { ok: false, reason: 'malformed' }
  const payload = cookie.slice(0, dot)
  const given = Buffer.from(cookie.slice(dot + 1), 'base64url')
  const expected = mac(secret, purpose, payload)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature' }
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'malformed' }
  const exp = (value as { exp?: unknown }).exp
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return { ok: false, reason: 'malformed' }
  if (exp <= now) return { ok: false, reason: 'expired' }
  return { ok: true, value: value as Record<string, unknown> }
}

function strings<K extends string> (value: Record<string, unknown>, keys: readonly K[]): Record<K, string> | undefined {
  for (const key of keys) if (typeof value[key] !== 'string' || (value[key] as string).length === 0) return undefined
  return value as Record<K, string>
}

/** A session cookie's content, or why it is refused. */
export function readSession (secret: string, cookie: string, now: number): { ok: true, session: PortalSession } | { ok: false, reason: Refusal } {
  const opened = unseal(secret, 'session', cookie, now)
  if (!opened.ok) return opened
  const fields = strings(opened.value, ['iss', 'sub', 'name'] as const)
  if (!fields) return { ok: false, reason: 'malformed' }
  return { ok: true, session: { iss: fields.iss, sub: fields.sub, name: fields.name, exp: opened.value.exp as number } }
}

/** A sign-in cookie's content, or why it is refused. */
export function readSignIn (secret: string, cookie: string, now: number): { ok: true, signIn: SignIn } | { ok: false, reason: Refusal } {
  const opened = unseal(secret, 'sign-in', cookie, now)
  if (!opened.ok) return opened
  const fields = strings(opened.value, ['state', 'nonce', 'verifier'] as const)
  if (!fields) return { ok: false, reason: 'malformed' }
  return { ok: true, signIn: { state: fields.state, nonce: fields.nonce, verifier: fields.verifier, exp: opened.value.exp as number } }
}

/**
 * The CSRF check of a request authenticated by the session cookie: a request
 * that changes something must say it comes from the portal's own origin.
 * SameSite=Lax already keeps the cookie off cross-site POSTs in current
 * browsers; the Origin check also refuses other origins of the same site
 * (a sibling subdomain) and browsers without SameSite, and needs no token in
 * the page. Browsers send Origin on every POST, PUT, PATCH and DELETE.
 */
export function sameOrigin (method: string, origin: string | undefined, portalOrigin: string): boolean {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return true
  return origin === portalOrigin
}
