// Fastify-free: where a client's credential is in an upgrade request, and
// which kind it is. Every input here comes from the internet: at most one
// credential is accepted, its length is bounded, and a shape that is not
// exactly right is refused before any crypto or Redis round trip.
import { AuthAmbiguousError, AuthMalformedError, AuthMissingError } from './errors.ts'

// JWTs from common IdPs are 1-2 KiB; 8 KiB leaves room for large claim sets and
// still refuses a header stuffed to Node's 16 KiB limit before it is decoded.
export const MAX_CREDENTIAL_LENGTH = 8192

/** `sk_<16 hex id>_<43 base64url secret>`: the id finds the record, the 256-bit secret proves possession. */
export const API_KEY_PATTERN = /^sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/

// A JWT is three base64url segments; fast-jwt decodes it, this only sorts it from junk.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const BEARER = /^Bearer +(\S+) *$/i
const SUBPROTOCOL_PREFIX = 'bearer.'

export type CredentialSource = 'header' | 'subprotocol' | 'query'

export type Credential =
  | { type: 'bearer', token: string, from: CredentialSource }
  | { type: 'api-key', key: string, from: CredentialSource }

type Headers = Record<string, string | string[] | undefined>

function single (value: unknown): string | undefined {
  if (value === undefined) return undefined
  // a repeated header or query parameter: two credentials, whatever they say
  if (Array.isArray(value)) throw new AuthAmbiguousError()
  if (typeof value !== 'string') throw new AuthMalformedError()
  return value
}

function bounded (value: string): string {
  if (value.length === 0 || value.length > MAX_CREDENTIAL_LENGTH) throw new AuthMalformedError()
  return value
}

/** The one credential of a request, from the header, the subprotocol or the query. */
export function credentialFrom (headers: Headers, query: Record<string, unknown> | undefined): Credential {
  const found: Credential[] = []

  const authorization = single(headers.authorization)
  if (authorization !== undefined) {
    const match = BEARER.exec(authorization)
    if (!match) throw new AuthMalformedError()
    found.push(classify(bounded(match[1]!), 'header'))
  }

  const apiKey = single(headers['x-api-key'])
  if (apiKey !== undefined) found.push({ type: 'api-key', key: bounded(apiKey), from: 'header' })

  const protocols = single(headers['sec-websocket-protocol'])
  if (protocols !== undefined) {
    for (const raw of protocols.split(',')) {
      const protocol = raw.trim()
      if (protocol.startsWith(SUBPROTOCOL_PREFIX)) {
        found.push({ type: 'bearer', token: bounded(protocol.slice(SUBPROTOCOL_PREFIX.length)), from: 'subprotocol' })
      }
    }
  }

  const accessToken = single(query?.access_token)
  if (accessToken !== undefined) found.push(classify(bounded(accessToken), 'query'))
  const queryKey = single(query?.api_key)
  if (queryKey !== undefined) found.push({ type: 'api-key', key: bounded(queryKey), from: 'query' })

  if (found.length === 0) throw new AuthMissingError()
  // Two credentials could name two subjects; which one a proxy logged and which
  // one the gateway used must never differ, so neither is picked.
  if (found.length > 1) throw new AuthAmbiguousError()
  return found[0]!
}

/** A bearer value may be a JWT, the dev token, or an API key sent as a bearer token. */
function classify (token: string, from: CredentialSource): Credential {
  if (token.startsWith('sk_')) return { type: 'api-key', key: token, from }
  return { type: 'bearer', token, from }
}

export function looksLikeJwt (token: string): boolean {
  return JWT_SHAPE.test(token)
}
