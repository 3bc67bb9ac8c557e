// The portal's cookies (src/session.ts), without a browser or a provider:
// what a seal opens to, and each way a cookie is refused; the CSRF rule.
import { test } from 'tap'
import { readSession, readSignIn, sameOrigin, seal, unseal } from '../src/session.ts'

const SECRET = 'a-secret-of-at-least-thirty-two-characters'
const NOW = 1_800_000_000_000
const SESSION = { iss: 'https://id.example', sub: 'u-1', name: 'dev@example.com', exp: NOW + 60_000 }

test('a sealed session opens to what was sealed, until its expiry', async t => {
  const cookie = seal(SECRET, 'session', SESSION)
  t.match(cookie, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'payload.mac, both base64url: nothing to escape in a cookie')
  t.same(readSession(SECRET, cookie, NOW), { ok: true, session: SESSION })
  t.same(readSession(SECRET, cookie, SESSION.exp - 1), { ok: true, session: SESSION }, 'a millisecond before its expiry')
  t.same(readSession(SECRET, cookie, SESSION.exp), { ok: false, reason: 'expired' }, 'at its expiry')
})

test('a changed payload, a changed MAC or another secret is refused as not signed', async t => {
  const cookie = seal(SECRET, 'session', SESSION)
  const [payload, mac] = cookie.split('.') as [string, string]
  const other = Buffer.from(JSON.stringify({ ...SESSION, sub: 'u-2' })).toString('base64url')
  t.same(readSession(SECRET, `${other}.${mac}`, NOW), { ok: false, reason: 'signature' }, 'another subject under the same MAC')
  const flipped = Buffer.from(mac, 'base64url')
  flipped[0]! ^= 1
  t.same(readSession(SECRET, `${payload}.${flipped.toString('base64url')}`, NOW), { ok: false, reason: 'signature' }, 'one bit of the MAC')
  t.same(readSession(`${SECRET}-rotated`, cookie, NOW), { ok: false, reason: 'signature' }, 'another secret')
  t.same(readSession(SECRET, `${payload}.${mac.slice(0, 10)}`, NOW), { ok: false, reason: 'signature' }, 'a short MAC')
})

test('a sign-in cookie never passes for a session, nor the reverse: the purpose is inside the MAC', async t => {
  const signIn = seal(SECRET, 'sign-in', { state: 's', nonce: 'n', verifier: 'v', exp: NOW + 1000 })
  t.same(readSession(SECRET, signIn, NOW), { ok: false, reason: 'signature' })
  t.same(readSignIn(SECRET, signIn, NOW), { ok: true, signIn: { state: 's', nonce: 'n', verifier: 'v', exp: NOW + 1000 } })
  t.same(readSignIn(SECRET, seal(SECRET, 'session', SESSION), NOW), { ok: false, reason: 'signature' })
})

test('malformed cookies are refused before anything is parsed', async t => {
  for (const cookie of ['', 'abc', '.abc', 'a.b.c', 'x'.repeat(5000)]) {
    t.same(unseal(SECRET, 'session', cookie, NOW), { ok: false, reason: 'malformed' }, JSON.stringify(cookie.slice(0, 10)))
  }
  // signed, but not what a session holds: a field missing, no expiry, not an object
  t.same(readSession(SECRET, seal(SECRET, 'session', { iss: 'i', sub: 's', exp: NOW + 1 }), NOW), { ok: false, reason: 'malformed' }, 'no name')
  t.same(readSession(SECRET, seal(SECRET, 'session', { ...SESSION, sub: '' }), NOW), { ok: false, reason: 'malformed' }, 'an empty subject')
  t.same(readSession(SECRET, seal(SECRET, 'session', { ...SESSION, exp: 'tomorrow' } as unknown as typeof SESSION), NOW), { ok: false, reason: 'malformed' }, 'an expiry that is not a number')
})

test('the CSRF rule: a request that changes something must come from the portal\'s origin', async t => {
  const portal = 'https://api.example'
  for (const method of ['GET', 'HEAD', 'OPTIONS']) t.ok(sameOrigin(method, undefined, portal), `${method} reads only`)
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    t.ok(sameOrigin(method, portal, portal), `${method} from the portal`)
    t.notOk(sameOrigin(method, 'https://evil.example', portal), `${method} from another origin`)
    t.notOk(sameOrigin(method, 'https://sub.api.example', portal), `${method} from a sibling of the same site`)
    t.notOk(sameOrigin(method, undefined, portal), `${method} without an Origin`)
    t.notOk(sameOrigin(method, 'null', portal), `${method} from an opaque origin`)
  }
})
