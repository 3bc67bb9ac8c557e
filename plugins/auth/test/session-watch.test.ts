// Which live sessions expiry and revocation close, and that each is closed
// once: pure logic over fake sessions (the live behaviour is in
// test/auth/token-expiry.test.ts and test/auth/api-key-revocation.test.ts).
import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Identity } from '@sluice/protocol/identity'
import { MAX_SWEEP_SLEEP_MS, SessionWatch, type WatchedSession } from '../src/session-watch.ts'

async function until (done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not done in ${ms} ms`)
    await sleep(10)
  }
}

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

test('revocation and the re-check over a source indexed by key: the full list is never read', async t => {
  const a = session({ kind: 'api-key', subject: 'c', claims: {}, keyId: 'k1' })
  const b = session({ kind: 'api-key', subject: 'c', claims: {}, keyId: 'k2' })
  let listed = 0
  const asked: string[][] = []
  const watch = new SessionWatch({
    sessions: () => ({
      list: () => { listed++; return [a, b] },
      withKey: id => [a, b].filter(s => s.identity.keyId === id),
      keyIds: () => ['k1', 'k2']
    }),
    jwtSkewMs: 0,
    apiKeys: { existing: async (ids: string[]) => { asked.push(ids); return new Set(['k2']) } } as never
  })
  t.equal(await watch.recheck(), 1, 'the key Redis no longer has: its session closed')
  t.same(asked, [['k1', 'k2']], 'asked about the keys in use')
  t.same(a.closes, [[4001, 'credentials revoked']])
  t.same(b.closes, [])
  t.equal(watch.closeKey('k2'), 1, 'a revocation closes its key\'s session')
  t.equal(listed, 0, 'the full list was not read')
})

/** An indexed source as SessionRegistry is one (files by the second of expiry, tells each filing); counts sweeps. */
function indexedSource () {
  const sessions: WatchedSession[] = []
  const listeners = new Set<(at: number) => void>()
  const second = (s: WatchedSession) => Math.floor(s.identity.expiresAt! / 1000)
  const source = {
    sweeps: 0,
    list: () => [...sessions],
    expiringBy: (at: number) => { source.sweeps++; return sessions.filter(s => second(s) <= Math.floor(at / 1000)) },
    nextExpiryAfter: (at: number) => {
      const after = sessions.map(second).filter(x => x > Math.floor(at / 1000)).sort((a, b) => a - b)
      return after.length > 0 ? after[0]! * 1000 : undefined
    },
    onFiled: (listener: (at: number) => void) => { listeners.add(listener); return () => { listeners.delete(listener) } },
    add (s: WatchedSession) {
      sessions.push(s)
      for (const listener of listeners) listener(second(s) * 1000)
    }
  }
  return source
}

/** A session that records when it was closed. */
function timed (identity: Identity): WatchedSession & { closedAt?: number } {
  const s: WatchedSession & { closedAt?: number } = { identity, close: () => { s.closedAt ??= Date.now() } }
  return s
}

test('over an indexed source the sweep sleeps until the next expiry, and still closes each in time', async t => {
  const source = indexedSource()
  const watch = new SessionWatch({ sessions: () => source, jwtSkewMs: 300, expiryIntervalMs: 50 })
  t.teardown(() => watch.stop())
  watch.start()
  const start = Date.now()
  const late = timed({ kind: 'api-key', subject: 'a', claims: {}, keyId: 'k', expiresAt: start + 2600 })
  source.add(late)
  await sleep(700)
  // a 50 ms period would have swept 14 times by now
  t.ok(source.sweeps <= 2, `${source.sweeps} sweeps in 700 ms with nothing due`)

  // filed sooner than the sweep scheduled: the sweep moves forward
  const soon = timed({ kind: 'api-key', subject: 'b', claims: {}, keyId: 'k', expiresAt: Date.now() + 400 })
  source.add(soon)
  const jwt = timed({ kind: 'jwt', subject: 'c', claims: {}, expiresAt: Date.now() + 500 })
  source.add(jwt)
  await until(() => late.closedAt !== undefined, 5000)
  for (const [name, s, due] of [['API key, filed sooner', soon, soon.identity.expiresAt!], ['JWT, exp plus skew', jwt, jwt.identity.expiresAt! + 300], ['API key, filed first', late, late.identity.expiresAt!]] as const) {
    const after = s.closedAt! - due
    t.ok(after >= 0 && after < 1000, `${name}: closed ${after} ms after it was due (docs/design.md: within 1 s)`)
  }
  t.ok(source.sweeps <= 12, `${source.sweeps} sweeps in all for three expiries in ~2.6 s (52 at a 50 ms period)`)

  watch.stop()
  const swept = source.sweeps
  source.add(timed({ kind: 'api-key', subject: 'd', claims: {}, keyId: 'k', expiresAt: Date.now() + 100 }))
  await sleep(300)
  t.equal(source.sweeps, swept, 'stopped: no sweep')
})

test('a wall clock stepped forward is seen within a second: the sweep sleeps MAX_SWEEP_SLEEP_MS at most', async t => {
  const source = indexedSource()
  const watch = new SessionWatch({ sessions: () => source, jwtSkewMs: 0, expiryIntervalMs: 50 })
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow; watch.stop() })
  watch.start()
  const s = timed({ kind: 'api-key', subject: 'a', claims: {}, keyId: 'k', expiresAt: realNow() + 60_000 })
  source.add(s)
  await sleep(100)
  // an hour passes at once for the wall clock (a VM resumed); the timers' clock does not move
  const stepped = realNow() + 3_600_000
  Date.now = () => realNow() + 3_600_000
  await until(() => s.closedAt !== undefined, 3000)
  const after = s.closedAt! - stepped
  t.ok(after <= MAX_SWEEP_SLEEP_MS + 100, `closed ${after} ms after the step, its expiry long past`)
})

test('a source without the index is swept at the period, as before', async t => {
  let listed = 0
  const s = timed({ kind: 'api-key', subject: 'a', claims: {}, keyId: 'k', expiresAt: Date.now() + 200 })
  const watch = new SessionWatch({ sessions: () => ({ list: () => { listed++; return [s] } }), jwtSkewMs: 0, expiryIntervalMs: 50 })
  t.teardown(() => watch.stop())
  watch.start()
  await sleep(500)
  t.ok(listed >= 5, `${listed} sweeps in 500 ms`)
  t.ok(s.closedAt !== undefined && s.closedAt - s.identity.expiresAt! < 1000, 'closed in time')
})
