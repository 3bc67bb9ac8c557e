// The Fastify-free core (applications.ts, store.ts) on the run's Redis, with
// auth's real ApiKeyStore: races that the routes cannot show one at a time,
// the bounds, and what a rotation and an approval do to the key records.
import { test, type Test } from 'tap'
import { Redis } from 'ioredis'
import { ApiKeyStore } from '@sluice/auth'
import type { PolicyDocument } from '@sluice/policy'
import { Applications, MAX_APPLICATIONS, MAX_SUBSCRIPTIONS, REVOKE_KEEP_MS } from '../src/applications.ts'
import { ApplicationStore } from '../src/store.ts'
import { redisUrl, unique } from '../../../test/helpers.ts'

const LIMITS = { connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }
const POLICY: PolicyDocument = {
  plans: { free: { approval: 'auto', limits: LIMITS }, pro: { approval: 'manual', limits: LIMITS }, team: { limits: LIMITS } },
  products: { market: { plans: ['free', 'pro', 'team'], topics: [] } },
  rules: []
}
const DEV = 'https://id.example.com|alice'

async function setup (t: Test, policy: () => PolicyDocument = () => POLICY) {
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.disconnect())
  const prefix = unique('sluice-test') + ':'
  const keys = new ApiKeyStore(redis, prefix)
  const store = new ApplicationStore(redis, `${prefix}apps:`)
  const revoked: string[] = []
  const apps = new Applications({
    store,
    keys,
    revokeKey: async id => { revoked.push(id); return keys.revoke(id) },
    policy
  })
  t.teardown(() => apps.close())
  return { redis, prefix, keys, store, apps, revoked }
}

test('two requests for a manual plan at once make one pending subscription', async t => {
  const { apps } = await setup(t)
  const app = await apps.create(DEV, { name: 'a' })
  const results = await Promise.allSettled([apps.subscribe(DEV, app.id, 'market', 'pro'), apps.subscribe(DEV, app.id, 'market', 'pro')])
  t.equal(results.filter(r => r.status === 'fulfilled').length, 1, 'one made')
  const refused = results.find(r => r.status === 'rejected') as PromiseRejectedResult
  t.equal(refused.reason.code, 'SLUICE_APPS_SUBSCRIPTION_PENDING', 'the other refused')
  t.equal((await apps.pending(100)).length, 1)
})

test('two admins deciding at once: one decision holds, the other hears it is not pending', async t => {
  const { apps } = await setup(t)
  const app = await apps.create(DEV, { name: 'a' })
  const sub = await apps.subscribe(DEV, app.id, 'market', 'pro')
  const results = await Promise.allSettled([apps.decide(sub.id, true), apps.decide(sub.id, false, 'no')])
  t.equal(results.filter(r => r.status === 'fulfilled').length, 1)
  t.equal((results.find(r => r.status === 'rejected') as PromiseRejectedResult).reason.code, 'SLUICE_APPS_NOT_PENDING')
  t.same(await apps.pending(100), [], 'nothing left waiting')
})

test('a plan without approval is automatic; an approved or automatic plan moves the application\'s keys of that product', async t => {
  const { apps, keys } = await setup(t)
  const app = await apps.create(DEV, { name: 'a' })
  t.equal((await apps.subscribe(DEV, app.id, 'market', 'team')).state, 'active', 'approval left out: auto')
  const { record } = await apps.issueKey(DEV, app.id, { ttlSeconds: 3600 })
  t.equal(record.plan, 'team')
  t.equal(record.owner, app.id, 'the key acts as the application')
  await apps.subscribe(DEV, app.id, 'market', 'free')
  t.equal((await keys.get(record.id))?.plan, 'free', 'an automatic plan applies at once')
  const pro = await apps.subscribe(DEV, app.id, 'market', 'pro')
  t.equal((await keys.get(record.id))?.plan, 'free', 'a pending plan does not')
  await apps.decide(pro.id, true)
  t.equal((await keys.get(record.id))?.plan, 'pro', 'an approved plan does')
  const view = await apps.get(DEV, app.id)
  t.same(view.subscriptions.map(s => `${s.plan}:${s.state}`), ['pro:active', 'free:replaced', 'team:replaced'])
})

test('a rotation: the old key verifies until the grace period ends, Redis keeps its record a little longer, and it is revoked then', async t => {
  const { apps, keys, redis, prefix, revoked } = await setup(t)
  const app = await apps.create(DEV, { name: 'a' })
  await apps.subscribe(DEV, app.id, 'market', 'free')
  const old = await apps.issueKey(DEV, app.id, { ttlSeconds: 3600 })
  const started = Date.now()
  const rotated = await apps.rotateKey(DEV, app.id, old.record.id, { graceSeconds: 1, ttlSeconds: 3600 })
  t.ok(await keys.verify(old.key), 'the old key during the grace period')
  t.ok(await keys.verify(rotated.key), 'the new key')
  const ttl = await redis.pttl(`${prefix}apikey:${old.record.id}`)
  t.ok(ttl > 1000 && ttl <= 1000 + REVOKE_KEEP_MS, `the record outlives the grace by up to ${REVOKE_KEEP_MS} ms (${ttl} ms left)`)
  await new Promise(resolve => setTimeout(resolve, 1200))
  t.same(revoked, [old.record.id], 'revoked when the grace period ended')
  t.equal(await keys.verify(old.key), undefined, 'and refused')
  t.ok(Date.now() - started >= 1000)
  t.ok(await keys.verify(rotated.key), 'the new key still verifies')

  // 0: at once
  const now = await apps.rotateKey(DEV, app.id, rotated.record.id, { graceSeconds: 0, ttlSeconds: 3600 })
  t.same(revoked, [old.record.id, rotated.record.id], 'a grace of 0 revokes at once')
  t.same((await apps.listKeys(DEV, app.id)).map(k => k.id), [now.record.id])
})

test('the key store\'s update never revives a revoked key nor extends one', async t => {
  const { keys } = await setup(t)
  const { record } = await keys.issue({ owner: 'app_0000000000000001', product: 'market', plan: 'free', expiresAt: Date.now() + 60_000 })
  t.equal(await keys.update(record.id, { expiresAt: Date.now() + 3_600_000 }), true)
  t.equal((await keys.get(record.id))?.expiresAt, record.expiresAt, 'a later expiry is refused')
  await keys.revoke(record.id)
  t.equal(await keys.update(record.id, { plan: 'pro' }), false, 'gone: nothing updated')
  t.equal(await keys.get(record.id), undefined, 'and nothing brought back')
})

test(`a developer has at most ${MAX_APPLICATIONS} applications, and sees only their own`, async t => {
  const { apps } = await setup(t)
  for (let i = 0; i < MAX_APPLICATIONS; i++) await apps.create(DEV, { name: `app ${i}` })
  await t.rejects(apps.create(DEV, { name: 'one more' }), { code: 'SLUICE_APPS_TOO_MANY_APPLICATIONS' })
  t.equal((await apps.list(DEV)).length, MAX_APPLICATIONS)
  t.same(await apps.list('https://id.example.com|bob'), [], 'another developer has none')
  const mine = (await apps.list(DEV))[0]!
  await t.rejects(apps.get('https://id.example.com|bob', mine.id), { code: 'SLUICE_APPS_NOT_FOUND' })
  await t.rejects(apps.get('https://other.example.com|alice', mine.id), { code: 'SLUICE_APPS_NOT_FOUND' }, 'the same sub at another issuer is another developer')
})

test(`an application remembers at most ${MAX_SUBSCRIPTIONS} subscriptions, never forgetting its active or pending one`, async t => {
  const { apps } = await setup(t)
  const app = await apps.create(DEV, { name: 'a' })
  const pending = await apps.subscribe(DEV, app.id, 'market', 'pro')
  for (let i = 0; i < MAX_SUBSCRIPTIONS + 20; i++) await apps.subscribe(DEV, app.id, 'market', i % 2 === 0 ? 'free' : 'team')
  const subs = (await apps.get(DEV, app.id)).subscriptions
  t.equal(subs.length, MAX_SUBSCRIPTIONS)
  t.ok(subs.some(s => s.id === pending.id && s.state === 'pending'), 'the oldest, pending, is kept')
  t.equal(subs.filter(s => s.state === 'active').length, 1, 'and the active one')
})

test('a plan the policy no longer offers cannot be approved; it can still be rejected', async t => {
  let policy = POLICY
  const { apps } = await setup(t, () => policy)
  const app = await apps.create(DEV, { name: 'a' })
  const asked = await apps.subscribe(DEV, app.id, 'market', 'pro')
  policy = { ...POLICY, products: { market: { plans: ['free', 'team'], topics: [] } } }
  await t.rejects(apps.decide(asked.id, true), { code: 'SLUICE_APPS_UNKNOWN_PLAN' })
  t.equal((await apps.pending(100)).length, 1, 'still pending')
  t.equal((await apps.decide(asked.id, false, 'no longer sold')).state, 'rejected')
})
