// The JWKS cache against real local HTTP servers that misbehave: too large,
// redirecting, hanging, failing, publishing symmetric or weak keys. Every
// failure is a coded error, never a hang, and known keys survive an outage.
import { test } from 'tap'
import { createServer, type RequestListener, type Server } from 'node:http'
import { generateKeyPairSync } from 'node:crypto'
import { JwksKeys, MAX_JWKS_BYTES } from '../src/jwks.ts'

async function serve (t: { teardown (fn: () => unknown): void }, handler: RequestListener): Promise<{ url: string, hits: () => number }> {
  let hits = 0
  const server: Server = createServer((req, res) => { hits++; handler(req, res) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const address = server.address() as { port: number }
  return { url: `http://127.0.0.1:${address.port}/jwks.json`, hits: () => hits }
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const jwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }
const json = (body: unknown): RequestListener => (_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(body)) }

function keys (uri: string, overrides: Partial<ConstructorParameters<typeof JwksKeys>[0]> = {}): JwksKeys {
  return new JwksKeys({ uri, cooldownMs: 0, maxAgeMs: 600_000, timeoutMs: 500, ...overrides })
}

async function code (promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

test('a good JWKS serves PEM keys for their own algorithms only', async t => {
  const idp = await serve(t, json({ keys: [jwk, { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'leaky', alg: 'RS256' }] }))
  const jwks = keys(idp.url)
  t.match(await jwks.key('k1', 'RS256'), /^-----BEGIN PUBLIC KEY-----/)
  t.match(await jwks.key('leaky', 'RS256'), /^-----BEGIN PUBLIC KEY-----/, 'a leaked private member yields only the public key')
  t.equal(await code(jwks.key('k1', 'PS256')), 'SLUICE_AUTH_INVALID_TOKEN', 'the JWK says RS256: nothing else')
  t.equal(await code(jwks.key('k1', 'HS256')), 'SLUICE_AUTH_INVALID_TOKEN')
})

test('symmetric, weak and foreign keys are never keys', async t => {
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })
  const idp = await serve(t, json({
    keys: [
      { kty: 'oct', k: Buffer.from('a shared secret published for all').toString('base64url'), kid: 'oct', alg: 'HS256' },
      { ...weak, kid: 'weak', alg: 'RS256' },
      { ...jwk, kid: 'enc', use: 'enc' },
      { ...jwk, kid: 'x'.repeat(300) },
      { kty: 'RSA', kid: 'broken', n: 'AAAA', e: 'AQAB' }
    ]
  }))
  const jwks = keys(idp.url)
  for (const kid of ['oct', 'weak', 'enc', 'broken']) {
    t.equal(await code(jwks.key(kid, kid === 'oct' ? 'HS256' : 'RS256')), 'SLUICE_AUTH_UNKNOWN_KEY', `${kid}: not a key`)
  }
})

test('fetch failures are coded, bounded and never followed elsewhere', async t => {
  const big = await serve(t, json({ keys: [jwk], padding: 'x'.repeat(MAX_JWKS_BYTES) }))
  t.equal(await code(keys(big.url).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE', `a JWKS over ${MAX_JWKS_BYTES} bytes`)
  const chunked = await serve(t, (_req, res) => { res.write('{"keys":[' + ' '.repeat(MAX_JWKS_BYTES)); res.end(']}') })
  t.equal(await code(keys(chunked.url).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE', 'also without a content-length')

  const target = await serve(t, json({ keys: [jwk] }))
  const redirect = await serve(t, (_req, res) => { res.writeHead(302, { location: target.url }); res.end() })
  t.equal(await code(keys(redirect.url).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE', 'a redirect is not followed')
  t.equal(target.hits(), 0, 'nothing was fetched from where it pointed')

  const hang = await serve(t, () => {})
  const started = Date.now()
  t.equal(await code(keys(hang.url, { timeoutMs: 300 }).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE', 'a server that never answers')
  t.ok(Date.now() - started < 5000, 'is given up on (timeoutMs 300)')

  const failing = await serve(t, (_req, res) => { res.statusCode = 500; res.end('{}') })
  t.equal(await code(keys(failing.url).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE')
  const garbage = await serve(t, (_req, res) => res.end('<html>'))
  t.equal(await code(keys(garbage.url).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE')
  const many = await serve(t, json({ keys: Array.from({ length: 101 }, (_, i) => ({ ...jwk, kid: `k${i}` })) }))
  t.equal(await code(keys(many.url).key('k1', 'RS256')), 'SLUICE_AUTH_KEYS_UNAVAILABLE', 'more than 100 keys')
})

test('known keys keep serving through an IdP outage', async t => {
  let up = true
  const idp = await serve(t, (req, res) => {
    if (!up) { res.statusCode = 503; res.end(); return }
    json({ keys: [jwk] })(req, res)
  })
  const errors: string[] = []
  const jwks = keys(idp.url, { maxAgeMs: 1, onFetch: (outcome) => { if (outcome === 'error') errors.push(outcome) } })
  await jwks.key('k1', 'RS256')
  up = false
  await new Promise(resolve => setTimeout(resolve, 20))
  for (let i = 0; i < 3; i++) {
    t.match(await jwks.key('k1', 'RS256'), /PUBLIC KEY/, 'the known key still verifies')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.ok(errors.length >= 1, 'while the background refresh fails')
  t.equal(await code(jwks.key('k2', 'RS256')), 'SLUICE_AUTH_UNKNOWN_KEY', 'an unknown kid is unknown, not an outage')
})
