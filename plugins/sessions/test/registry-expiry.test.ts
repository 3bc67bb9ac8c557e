// The registry files sessions by the second their credential expires in
// (registry.ts), so that the expiry sweep reads the sessions due and no other:
// the due ones are found, a renewal or a new plan moves a session, a closed one
// leaves, and against a brute-force model over random histories the sessions
// returned are exactly those filed at or before the asked second.
import { test } from 'tap'
import fc from 'fast-check'
import type { Identity } from '@sluice/protocol/identity'
import { SessionRegistry, type LiveSession } from '../src/registry.ts'

type Fake = LiveSession & { reads: number, identityNow: Identity }

let seq = 0
function session (expiresAt: number | undefined): Fake {
  const s = {
    id: `s${++seq}`,
    reads: 0,
    identityNow: { kind: 'jwt', subject: `u${seq}`, claims: {}, ...(expiresAt === undefined ? {} : { expiresAt }) } as Identity,
    get identity () {
      s.reads++
      return s.identityNow
    },
    route: '/v1/stream',
    remoteAddress: '127.0.0.1',
    connectedAt: 0,
    topics: () => [],
    unsubscribe () {},
    close () {}
  }
  return s
}

const ids = (sessions: LiveSession[]) => sessions.map(s => s.id).sort()

test('the sessions due by a time, and no read of any other', async t => {
  const now = 1_800_000_000_000
  const registry = new SessionRegistry()
  const far = Array.from({ length: 1000 }, (_, i) => session(now + 3_600_000 + i * 7))
  const past = session(now - 1000)
  const atNow = session(now)
  const sameSecondLater = session(Math.floor(now / 1000) * 1000 + 999)
  const nextSecond = session(Math.floor(now / 1000) * 1000 + 1000)
  const never = session(undefined)
  for (const s of [...far, past, atNow, sameSecondLater, nextSecond, never]) registry.add(s)
  for (const s of far) s.reads = 0

  t.same(ids(registry.expiringBy(now)), ids([past, atNow, sameSecondLater]), 'those expired by now, and the rest of now\'s second (the caller decides on each)')
  t.equal(far.reduce((n, s) => n + s.reads, 0), 0, 'none of the 1,000 sessions expiring in an hour was read')
  t.same(registry.expiringBy(now - 5000), [], 'nothing before the earliest')
  t.equal(registry.expiringBy(now + 4_000_000).length, 1004, 'every session with an expiry, once each')
  t.notOk(registry.expiringBy(Number.MAX_SAFE_INTEGER).includes(never), 'a session without expiry is never due')

  registry.delete(past)
  t.notOk(registry.expiringBy(now).includes(past), 'a closed session leaves the index')

  // a renewal: the same session, a later expiry
  atNow.identityNow = { ...atNow.identityNow, expiresAt: now + 60_000 }
  registry.refiled(atNow)
  t.notOk(registry.expiringBy(now).includes(atNow), 'a renewed session is due at its new expiry')
  t.ok(registry.expiringBy(now + 60_000).includes(atNow))
  // another plan whose credential expires sooner
  far[0]!.identityNow = { ...far[0]!.identityNow, expiresAt: now - 1 }
  registry.refiled(far[0]!)
  t.ok(registry.expiringBy(now).includes(far[0]!), 'one whose new identity expired is due now')
  t.equal(registry.expiringBy(now + 4_000_000).filter(s => s === far[0]).length, 1, 'filed once')

  const stranger = session(now - 1)
  registry.refiled(stranger)
  t.notOk(registry.expiringBy(now).includes(stranger), 'refiling a session the registry does not hold files nothing')
})

test('random histories: exactly the sessions filed at or before the asked second (a brute-force model)', async t => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), at: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }) }),
    fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('refile' as const), pick: fc.nat(), at: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }) }),
    fc.record({ kind: fc.constant('ask' as const), at: fc.integer({ min: -1000, max: 21_000 }) })
  )
  let asked = 0
  fc.assert(fc.property(fc.array(op, { minLength: 10, maxLength: 80 }), ops => {
    const registry = new SessionRegistry()
    const held: Fake[] = []
    for (const o of ops) {
      if (o.kind === 'add') {
        const s = session(o.at)
        held.push(s)
        registry.add(s)
      } else if (o.kind === 'delete' && held.length > 0) {
        const [s] = held.splice(o.pick % held.length, 1)
        registry.delete(s!)
      } else if (o.kind === 'refile' && held.length > 0) {
        const s = held[o.pick % held.length]!
        const { expiresAt: _drop, ...rest } = s.identityNow
        s.identityNow = (o.at === undefined ? rest : { ...rest, expiresAt: o.at }) as Identity
        registry.refiled(s)
      } else if (o.kind === 'ask') {
        asked++
        const second = Math.floor(o.at / 1000)
        const model = held.filter(s => s.identityNow.expiresAt !== undefined && Math.floor(s.identityNow.expiresAt / 1000) <= second)
        const got = registry.expiringBy(o.at)
        if (got.length !== new Set(got).size) return false
        if (ids(got).join() !== ids(model).join()) return false
        // the next filed second after the asked one's: what the expiry sweep sleeps until
        const later = held.map(s => s.identityNow.expiresAt).filter((x): x is number => x !== undefined)
          .map(x => Math.floor(x / 1000)).filter(x => x > second)
        const next = later.length > 0 ? Math.min(...later) * 1000 : undefined
        if (registry.nextExpiryAfter(o.at) !== next) return false
      }
    }
    return registry.size === held.length
  }), { numRuns: 300 })
  t.ok(asked > 0, `${asked} questions asked against the model`)
})

test('every filing is told: an open, a renewal, a new plan; a session without expiry is not', async t => {
  const registry = new SessionRegistry()
  const told: number[] = []
  const off = registry.onFiled(at => told.push(at))
  const a = session(12_345)
  registry.add(a)
  registry.add(session(undefined))
  a.identityNow = { ...a.identityNow, expiresAt: 30_500 }
  registry.refiled(a)
  t.same(told, [12_000, 30_000], 'the start of each second filed under')
  t.equal(registry.nextExpiryAfter(12_000), 30_000, 'the next filed second')
  t.equal(registry.nextExpiryAfter(30_000), undefined, 'none after the last')
  off()
  registry.add(session(50_000))
  t.equal(told.length, 2, 'unsubscribed: not told')
})

test('sessions by API key: a revocation finds its key\'s sessions without reading the others', async t => {
  const registry = new SessionRegistry()
  const keyed = (keyId: string | undefined) => {
    const s = session(undefined)
    s.identityNow = { kind: keyId ? 'api-key' : 'jwt', subject: 'app', claims: {}, ...(keyId ? { keyId } : {}) } as Identity
    registry.add(s)
    return s
  }
  const a1 = keyed('k1')
  const a2 = keyed('k1')
  const b = keyed('k2')
  const others = Array.from({ length: 1000 }, () => keyed(undefined))
  t.same(ids(registry.withKey('k1')), ids([a1, a2]), 'both sessions of k1')
  t.same(registry.keyIds().sort(), ['k1', 'k2'], 'the keys in use, each once')
  t.ok(others.every(s => s.reads === 1), 'the 1,000 sessions without a key were read once, when added')
  t.same(registry.withKey('absent'), [])

  registry.delete(a1)
  t.same(ids(registry.withKey('k1')), ids([a2]), 'a closed session leaves its key')
  a2.identityNow = { ...a2.identityNow, keyId: 'k3' } as Identity
  registry.refiled(a2)
  t.same(registry.withKey('k1'), [], 'another key after a new identity: filed under it')
  t.same(ids(registry.withKey('k3')), ids([a2]))
  t.same(registry.keyIds().sort(), ['k2', 'k3'], 'a key with no session left is not in use')
  registry.delete(b)
  registry.delete(a2)
  t.same(registry.keyIds(), [])
})
