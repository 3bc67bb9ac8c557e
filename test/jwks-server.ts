// A real OAuth issuer for the auth suites: an HTTP server on 127.0.0.1:0 that
// serves a JWKS of keys generated with node:crypto, counts every fetch, and
// signs tokens with those keys. Tokens are built by hand (header.payload.sig)
// so that the suites can also forge what no library would sign: alg none,
// unknown crit headers, HS256 keyed with a public key.
import { createServer, type Server } from 'node:http'
import { createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto'

export function b64url (value: string | Buffer): string {
  return Buffer.from(value).toString('base64url')
}

export type Alg = 'RS256' | 'ES256' | 'HS256' | 'none' | string

/** Signs a JWT: RS*, PS* and ES* with a private KeyObject, HS* with a secret, `none` with nothing. */
export function signJwt (header: Record<string, unknown>, payload: Record<string, unknown>, key?: KeyObject | string | Buffer): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`
  const alg = String(header.alg)
  if (alg === 'none') return `${input}.`
  const hash = `sha${alg.slice(2)}`
  let signature: Buffer
  if (alg.startsWith('HS')) {
    signature = createHmac(hash, key as string | Buffer).update(input).digest()
  } else if (alg.startsWith('RS')) {
    signature = cryptoSign(hash, Buffer.from(input), key as KeyObject)
  } else if (alg.startsWith('PS')) {
    signature = cryptoSign(hash, Buffer.from(input), { key: key as KeyObject, padding: 6, saltLength: 32 })
  } else if (alg.startsWith('ES')) {
    signature = cryptoSign(hash, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' })
  } else {
    throw new Error(`signJwt: no signer for ${alg}`)
  }
  return `${input}.${b64url(signature)}`
}

export function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

export interface IssuerKey {
  kid: string
  alg: 'RS256' | 'ES256'
  privateKey: KeyObject
  publicKey: KeyObject
  /** SPKI PEM of the public key: what an attacker can read from the JWKS */
  publicPem: string
}

export class JwksServer {
  readonly #server: Server
  #keys: IssuerKey[] = []
  /** performance.now() of every JWKS request, in order */
  readonly fetchTimes: number[] = []
  url = ''

  constructor () {
    this.#server = createServer((request, response) => {
      if (request.url !== '/.well-known/jwks.json') {
        response.statusCode = 404
        response.end()
        return
      }
      this.fetchTimes.push(performance.now())
      response.setHeader('content-type', 'application/json')
      response.end(JSON.stringify({
        keys: this.#keys.map(k => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' }))
      }))
    })
  }

  get fetches (): number {
    return this.fetchTimes.length
  }

  /** the issuer is the server's own URL (no trailing slash), as IdPs do */
  get issuer (): string {
    return this.url
  }

  get jwksUri (): string {
    return `${this.url}/.well-known/jwks.json`
  }

  async start (): Promise<this> {
    await new Promise<void>(resolve => this.#server.listen(0, '127.0.0.1', resolve))
    const address = this.#server.address()
    if (typeof address !== 'object' || !address) throw new Error('no address')
    this.url = `http://127.0.0.1:${address.port}`
    return this
  }

  async stop (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }

  /** Adds a signing key to the JWKS (a key rotation adds one, later removes the old). */
  addKey (alg: 'RS256' | 'ES256' = 'RS256', kid = randomBytes(6).toString('hex')): IssuerKey {
    const pair = alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const key: IssuerKey = { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, publicPem: pair.publicKey.export({ format: 'pem', type: 'spki' }) as string }
    this.#keys.push(key)
    return key
  }

  removeKey (kid: string): void {
    this.#keys = this.#keys.filter(k => k.kid !== kid)
  }

  /** A token from this issuer: iss, aud, sub, iat and exp filled unless overridden (undefined removes a claim). */
  token (key: IssuerKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): string {
    const now = nowSeconds()
    const payload = Object.fromEntries(Object.entries({ iss: this.issuer, aud: 'sluice', sub: 'alice', iat: now, exp: now + 300, ...claims }).filter(([, v]) => v !== undefined))
    return signJwt({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }, payload, key.privateKey)
  }
}
