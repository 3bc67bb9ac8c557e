// Fastify-free: the public keys of one allow-listed OAuth issuer, from its JWKS.
//
// Not get-jwks: it fetches the JWKS once per unknown `kid` (1,000 tokens with
// random kids made 1,000 fetches in our check of 11.0.3), keeps no cooldown,
// trusts any issuer unless given an allow-list, and passes a `timeout` option
// that fetch() ignores. Here the whole key set is cached, an unknown kid
// refetches it at most once per cooldown, concurrent lookups share one fetch,
// and every fetch has a deadline, a size cap and no redirects.
import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { AuthInvalidTokenError, AuthKeysUnavailableError, AuthUnknownKeyError } from './errors.ts'

// A JWKS of 50 RSA-4096 keys with x5c chains is under 200 KiB; IdPs serve a few KiB.
export const MAX_JWKS_BYTES = 256 * 1024
// IdPs publish 2-5 keys (current, next, previous); more is a misconfiguration or an attack.
export const MAX_JWKS_KEYS = 100
export const MAX_KID_LENGTH = 256
// RFC 7518 §3.3: RSA keys of 2048 bits or more.
const MIN_RSA_BITS = 2048

export interface JwksOptions {
  uri: string
  /** an unknown kid refetches the JWKS at most once per this many ms (jose's default is 30 s) */
  cooldownMs: number
  /** known keys are refetched in the background once older than this (jose: 10 min) */
  maxAgeMs: number
  /** deadline for one fetch, body included; an upgrade waits at most this long for keys */
  timeoutMs: number
  onFetch? (outcome: 'ok' | 'error', error?: Error): void
}

interface PublicKey {
  pem: string
  algorithms: ReadonlySet<string>
}

const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const EC_ALGORITHMS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }

/** The algorithms a JWK may verify, or none when it is not a signing public key we accept. */
function algorithmsOf (jwk: JsonWebKey & { alg?: string, use?: string }): string[] {
  if (jwk.use !== undefined && jwk.use !== 'sig') return []
  let algorithms: string[]
  switch (jwk.kty) {
    case 'RSA': algorithms = RSA_ALGORITHMS; break
    case 'EC': algorithms = typeof jwk.crv === 'string' && EC_ALGORITHMS[jwk.crv] ? [EC_ALGORITHMS[jwk.crv]!] : []; break
    case 'OKP': algorithms = jwk.crv === 'Ed25519' || jwk.crv === 'Ed448' ? ['EdDSA'] : []; break
    // `oct` (a symmetric key published for all to read) and unknown types are never keys
    default: return []
  }
  if (jwk.alg !== undefined) return algorithms.includes(jwk.alg) ? [jwk.alg] : []
  return algorithms
}

function toPublicKey (jwk: unknown): PublicKey | undefined {
  if (typeof jwk !== 'object' || jwk === null) return undefined
  const candidate = jwk as JsonWebKey & { alg?: string, use?: string }
  const algorithms = algorithmsOf(candidate)
  if (algorithms.length === 0) return undefined
  try {
    // only the public members: a JWKS that leaks `d` still yields just the public key
    const { kty, n, e, crv, x, y } = candidate
    const key = createPublicKey({ key: { kty, n, e, crv, x, y } as JsonWebKey, format: 'jwk' })
    if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) return undefined
    return { pem: key.export({ format: 'pem', type: 'spki' }) as string, algorithms: new Set(algorithms) }
  } catch {
    return undefined
  }
}

async function readCapped (response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > limit) throw new Error(`JWKS larger than ${limit} bytes`)
  if (!response.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of response.body) {
    size += chunk.byteLength
    if (size > limit) throw new Error(`JWKS larger than ${limit} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export class JwksKeys {
  readonly uri: string
  readonly #options: JwksOptions
  #keys = new Map<string, PublicKey>()
  // performance.now() times: monotonic, so a wall-clock step cannot open the cooldown
  #lastAttempt = -Infinity
  #loadedAt = -Infinity
  #inFlight: Promise<void> | undefined
  #lastError: Error | undefined
  /** fetches started, for metrics and tests */
  fetches = 0

  constructor (options: JwksOptions) {
    this.uri = options.uri
    this.#options = options
  }

  get lastError (): Error | undefined {
    return this.#lastError
  }

  /** The PEM public key for `kid`, usable with `alg`; throws SLUICE_AUTH_UNKNOWN_KEY or _KEYS_UNAVAILABLE. */
  async key (kid: string, alg: string): Promise<string> {
    const now = performance.now()
    let key = this.#keys.get(kid)
    if (key) {
      // stale-while-revalidate: a known key serves at once, the refresh runs beside it
      if (now - this.#loadedAt > this.#options.maxAgeMs && now - this.#lastAttempt >= this.#options.cooldownMs) {
        this.#refresh().catch(() => {})
      }
    } else {
      if (this.#inFlight) await this.#inFlight.catch(() => {})
      else if (now - this.#lastAttempt >= this.#options.cooldownMs) await this.#refresh().catch(() => {})
      key = this.#keys.get(kid)
    }
    if (!key) {
      if (this.#loadedAt === -Infinity) throw new AuthKeysUnavailableError()
      throw new AuthUnknownKeyError()
    }
    // the key's type decides its algorithms, never the token's header
    if (!key.algorithms.has(alg)) throw new AuthInvalidTokenError()
    return key.pem
  }

  /** One fetch at a time: every caller during a fetch shares it. */
  #refresh (): Promise<void> {
    this.#inFlight ??= this.#fetch().finally(() => { this.#inFlight = undefined })
    return this.#inFlight
  }

  async #fetch (): Promise<void> {
    this.#lastAttempt = performance.now()
    this.fetches++
    try {
      const response = await fetch(this.uri, {
        signal: AbortSignal.timeout(this.#options.timeoutMs),
        // a redirect could lead anywhere; the configured URI is the only source
        redirect: 'error',
        headers: { accept: 'application/json' }
      })
      if (!response.ok) {
        await response.body?.cancel()
        throw new Error(`JWKS answered HTTP ${response.status}`)
      }
      const body = JSON.parse(await readCapped(response, MAX_JWKS_BYTES)) as { keys?: unknown }
      if (!Array.isArray(body.keys)) throw new Error('JWKS has no "keys" array')
      if (body.keys.length > MAX_JWKS_KEYS) throw new Error(`JWKS has more than ${MAX_JWKS_KEYS} keys`)
      const keys = new Map<string, PublicKey>()
      for (const jwk of body.keys) {
        const kid = (jwk as { kid?: unknown })?.kid
        if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH) continue
        const key = toPublicKey(jwk)
        if (key) keys.set(kid, key)
      }
      this.#keys = keys
      this.#loadedAt = performance.now()
      this.#lastError = undefined
      this.#options.onFetch?.('ok')
    } catch (err) {
      // the keys already known keep serving: an IdP outage must not log everyone out
      this.#lastError = err as Error
      this.#options.onFetch?.('error', err as Error)
      throw err
    }
  }
}
