// Which live sessions expiry and revocation close, and that each is closed
// once: pure logic over fake sessions (the live behaviour is in
// test/auth/token-expiry.test.ts and test/auth/api-key-revocation.test.ts).
import { test } from 'tap'
import type { Identity } from '@sluice/protocol/identity'
import { SessionWatch, type WatchedSession } from '../src/session-watch.ts'

function session (identity: Identity): WatchedSession & { closes: Array<[number, string]> } {
  const closes: Array<[number, string]> = []
  return { identity, closes, close: (code, reason) => { closes.push([code, reason]) } }
}

test('expiry: JWTs after exp plus skew, API keys at expiry, once each', async t => {
  const now = 1_000_000
  const jwt = session({ kind: 'jwt', subject: 'a', claims: {}, expiresAt: now - 500 })
  const jwtLate = session({ kind: 'jwt', subject: 'b', claims: {}, expiresAt: now - 1000 })
  const key = session({ kind: 'api-key', subject: 'c', claims: {}, keyId: 'k', expiresAt: now })
  const dev = session({ kind: 'dev', subject: 'dev', claims: {} })
  const watch = new SessionWatch({ sessions: () => ({ list: () => [jwt, jwtLate, key, dev] }), jwtSkewMs: 1000 })
  t.equal(watch.sweepExpired(now), 2)
  t.same(jwt.closes, [], 'a JWT inside its skew stays')
  t.same(jwtLate.closes, [[4001, 'credentials expired']], 'at exp plus skew it closes')
  t.same(key.closes, [[4001, 'credentials expired']], 'an API key has no skew')
  t.same(dev.closes, [], 'the dev identity never expires')
  t.equal(watch.sweepExpired(now + 10_000), 1, 'the next sweep closes the rest')
  t.equal(jwtLate.closes.length, 1, 'and never closes one twice')
})

test('revocation: every session of that key, no other', async t => {
  const a = session({ kind: 'api-key', subject: 'c', claims: {}, keyId: 'k1' })
  const b = session({ kind: 'api-key', subject: 'c', claims: {}, keyId: 'k1' })
  const other = session({ kind: 'api-key', subject: 'c', claims: {}, keyId: 'k2' })
  const watch = new SessionWatch({ sessions: () => ({ list: () => [a, b, other] }), jwtSkewMs: 0 })
  t.equal(watch.closeKey('k1'), 2)
  t.same(a.closes, [[4001, 'credentials revoked']])
  t.same(other.closes, [])
  t.equal(watch.closeKey('k1'), 0, 'closing sockets are not closed again')
  t.equal(new SessionWatch({ sessions: () => undefined, jwtSkewMs: 0 }).closeKey('k1'), 0, 'no registry (no stream): nothing to do')
})

test('expiry with an indexed source: the sweep reads the sessions due, never the whole list', async t => {
  const now = 1_000_000
  const due = session({ kind: 'jwt', subject: 'a', claims: {}, expiresAt: now - 2000 })
  const inSkew = session({ kind: 'jwt', subject: 'b', claims: {}, expiresAt: now - 500 })
  let listed = 0
  const asked: number[] = []
  const watch = new SessionWatch({
    sessions: () => ({
      list: () => { listed++; return [due, inSkew] },
      expiringBy: at => { asked.push(at); return [due, inSkew] }
    }),
    jwtSkewMs: 1000
  })
  t.equal(watch.sweepExpired(now), 1)
  t.same(due.closes, [[4001, 'credentials expired']], 'past exp plus skew: closed')
  t.same(inSkew.closes, [], 'inside its skew: not yet')
  t.same(asked, [now], 'asked for the sessions expired by now')
  t.equal(listed, 0, 'the full list was not read')
})
