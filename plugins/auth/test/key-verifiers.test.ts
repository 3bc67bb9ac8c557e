// Renewals and MQTT CONNECTs verify a JWT with the key its issuer names: one fast-jwt
// verifier per key, kept, not one per token (which parsed the key each time).
import { test } from 'tap'
import { createSigner, createVerifier } from 'fast-jwt'
import { KeyVerifiers, MAX_KEY_VERIFIERS } from '../src/jwt.ts'

const CHECKS = { algorithms: ['HS256' as never], allowedIss: ['idp'], allowedAud: ['sluice'], requiredClaims: ['exp', 'iss', 'aud', 'sub'] }
const secret = (i: number): string => `key-verifiers-test-secret-${String(i).padStart(6, '0')}-0123456789`

function token (key: string, sub: string): string {
  return createSigner({ key, algorithm: 'HS256', expiresIn: 60_000 })({ sub, iss: 'idp', aud: 'sluice' })
}

/** fast-jwt's own factory, counted */
function counting (): { create: typeof createVerifier, made: string[] } {
  const made: string[] = []
  const create = ((options: { key: string }) => { made.push(options.key); return createVerifier(options) }) as unknown as typeof createVerifier
  return { create, made }
}

test('one verifier per key, whatever the number of tokens', async t => {
  const { create, made } = counting()
  const verifiers = new KeyVerifiers(CHECKS, create as never)
  const keys = [secret(1), secret(2)]
  for (let i = 0; i < 200; i++) {
    const key = keys[i % 2]!
    t.equal(verifiers.verify(key, token(key, `s${i}`)).sub, `s${i}`)
  }
  t.same(made, keys, 'two keys: two verifiers, each made on first use')
  t.throws(() => verifiers.verify(keys[0]!, token(keys[1]!, 'x')), { code: 'FAST_JWT_INVALID_SIGNATURE' }, 'each token still checked with the key it is given')
  t.throws(() => verifiers.verify(keys[0]!, createSigner({ key: keys[0]!, algorithm: 'HS256', expiresIn: 60_000 })({ sub: 'x', iss: 'idp', aud: 'other' })), { code: 'FAST_JWT_INVALID_CLAIM_VALUE' }, 'and with every check: the audience')
  t.equal(made.length, 2, 'a failed token makes no verifier')
})

test(`at most ${MAX_KEY_VERIFIERS} kept: the one made longest ago goes first`, async t => {
  const { create, made } = counting()
  const verifiers = new KeyVerifiers(CHECKS, create as never)
  for (let i = 0; i <= MAX_KEY_VERIFIERS; i++) verifiers.verify(secret(i), token(secret(i), 'a'))
  t.equal(made.length, MAX_KEY_VERIFIERS + 1)
  verifiers.verify(secret(MAX_KEY_VERIFIERS), token(secret(MAX_KEY_VERIFIERS), 'b'))
  t.equal(made.length, MAX_KEY_VERIFIERS + 1, 'the newest key: kept')
  verifiers.verify(secret(0), token(secret(0), 'c'))
  t.equal(made.length, MAX_KEY_VERIFIERS + 2, 'the first key: made again')
})
