// Developer self-service on the real stack (issue 18): a developer signed in
// with a JWT creates an application, subscribes it to the free plan (auto:
// active at once), gets a key, and the key opens /v1/stream and receives
// records. A manual plan stays pending until an admin approves it, and then
// is the plan of the application's keys. Another developer sees and touches
// nothing of it (404, as for an id that does not exist).
import { test } from 'tap'
import { admin, appsGateway, developer, developerToken, marketTopic, streamWithKey } from './harness.ts'
import { eventually } from '../helpers.ts'

test('a developer creates an application, subscribes it to the free plan, and its key receives records on /v1/stream', async t => {
  const gw = await appsGateway(t)
  const alice = developer(gw, 'alice')
  const topic = await marketTopic(gw)

  const created = await alice('POST', '/applications', { name: 'Trading bot', description: 'reads the market' })
  t.equal(created.statusCode, 201)
  const app = created.json()
  t.match(app, { id: /^app_[0-9a-f]{16}$/, name: 'Trading bot', description: 'reads the market', subscriptions: [] })
  t.same((await alice('GET', '/applications')).json().applications.map((a: { id: string }) => a.id), [app.id], 'listed for its developer')

  const noPlan = await alice('POST', `/applications/${app.id}/keys`, {})
  t.equal(noPlan.statusCode, 409)
  t.equal(noPlan.json().error.code, 'SLUICE_APPS_NO_ACTIVE_SUBSCRIPTION', 'no key before a subscription is active')

  const subscribed = await alice('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' })
  t.equal(subscribed.statusCode, 201)
  t.match(subscribed.json(), { id: /^sub_/, application: app.id, product: 'market', plan: 'free', state: 'active' }, 'auto approval: active at once')
  t.equal((await alice('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' })).json().error.code, 'SLUICE_APPS_ALREADY_SUBSCRIBED')

  const issued = await alice('POST', `/applications/${app.id}/keys`, {})
  t.equal(issued.statusCode, 201)
  t.equal(issued.headers['cache-control'], 'no-store')
  const { key, id: keyId } = issued.json()
  t.match(issued.json(), { key: /^sk_[0-9a-f]{16}_/, prefix: `sk_${keyId}`, product: 'market', plan: 'free' })

  const client = await streamWithKey(gw, key, topic)
  await gw.app.kafka.produce(topic, { key: 'k', value: JSON.stringify({ price: 42 }) })
  t.match(await client.next(f => f.op === 'message', 20_000), { topic, value: { price: 42 } }, 'the application key receives the topic\'s records')

  // listed with its prefix and last use, never its secret
  await eventually(async () => (await alice('GET', `/applications/${app.id}/keys`)).json().keys[0]?.lastUsedAt !== undefined, 5000, 'last use noted')
  const listed = (await alice('GET', `/applications/${app.id}/keys`)).json().keys
  t.equal(listed.length, 1)
  t.match(listed[0], { id: keyId, prefix: `sk_${keyId}`, product: 'market', plan: 'free', lastUsedAt: /^\d{4}-/ })
  t.notOk(JSON.stringify(listed).includes(key.slice(20)), 'the secret is never listed')
  client.close()
})

test('a manual plan is pending until an admin approves it; then it is the plan of the application\'s keys', async t => {
  const gw = await appsGateway(t)
  const bob = developer(gw, 'bob')
  const root = admin(gw)
  const app = (await bob('POST', '/applications', { name: 'Dashboard' })).json()

  // pro alone: pending, so no key yet
  const requested = await bob('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'pro' })
  t.equal(requested.statusCode, 201)
  t.equal(requested.json().state, 'pending')
  t.equal((await bob('POST', `/applications/${app.id}/keys`, {})).json().error.code, 'SLUICE_APPS_NO_ACTIVE_SUBSCRIPTION', 'pending is not active')
  t.equal((await bob('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'pro' })).json().error.code, 'SLUICE_APPS_SUBSCRIPTION_PENDING', 'one request at a time per product')

  // free meanwhile, and a key on it
  t.equal((await bob('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' })).json().state, 'active')
  const { id: keyId } = (await bob('POST', `/applications/${app.id}/keys`, {})).json()

  const pending = (await root('GET', '/subscriptions/pending')).json().subscriptions
  const mine = pending.find((s: { application: string }) => s.application === app.id)
  t.match(mine, { id: requested.json().id, plan: 'pro', state: 'pending' }, 'the admin sees it waiting')
  t.equal((await gw.app.inject({ method: 'GET', url: '/admin/subscriptions/pending' })).json().error.code, 'SLUICE_ADMIN_UNAUTHORIZED', 'with the admin credential only')
  t.same((await root('GET', '/applications')).json().applications.filter((a: { id: string }) => a.id === app.id).map((a: { owner: string }) => a.owner),
    ['https://id.example.com|bob'], 'the admin lists applications with their developer')

  const approved = await root('POST', `/subscriptions/${mine.id}/approve`)
  t.equal(approved.statusCode, 200)
  t.match(approved.json(), { state: 'active', plan: 'pro', decidedAt: /^\d{4}-/ })
  t.equal((await root('POST', `/subscriptions/${mine.id}/approve`)).json().error.code, 'SLUICE_APPS_NOT_PENDING', 'decided once')
  const subs = (await bob('GET', `/applications/${app.id}`)).json().subscriptions
  t.same(subs.map((s: { plan: string, state: string }) => `${s.plan}:${s.state}`).sort(), ['free:replaced', 'pro:active'])
  // the key the limiter sees is on pro now (the admin API reads the same record)
  t.equal((await root('GET', `/keys/${keyId}`)).json().plan, 'pro', 'the application\'s existing key is on the approved plan')
  t.equal((await bob('GET', `/applications/${app.id}/keys`)).json().keys[0].plan, 'pro')
  t.equal(gw.app.streamGuard.planFor(await gw.app.credentials.verify((await bob('POST', `/applications/${app.id}/keys`, {})).json().key)).name, 'pro', 'and the limiter applies pro to its keys')

  // a rejection leaves the plan in force
  const again = (await bob('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' })).json()
  t.equal(again.state, 'active', 'back to free (auto)')
  const askPro = (await bob('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'pro' })).json()
  const rejected = await root('POST', `/subscriptions/${askPro.id}/reject`, { reason: 'no invoice address' })
  t.match(rejected.json(), { state: 'rejected', reason: 'no invoice address' })
  t.equal((await root('GET', `/keys/${keyId}`)).json().plan, 'free', 'rejected: the keys stay on free')
})

test('another developer cannot see or touch an application: 404, as for an id that does not exist', async t => {
  const gw = await appsGateway(t)
  const carol = developer(gw, 'carol')
  const mallory = developer(gw, 'mallory')
  const app = (await carol('POST', '/applications', { name: 'Mine' })).json()
  await carol('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' })
  const { id: keyId, key } = (await carol('POST', `/applications/${app.id}/keys`, {})).json()

  t.same((await mallory('GET', '/applications')).json().applications, [], 'not listed')
  const attempts: Array<[string, 'GET' | 'POST' | 'DELETE', string, unknown?]> = [
    ['read', 'GET', `/applications/${app.id}`],
    ['delete', 'DELETE', `/applications/${app.id}`],
    ['subscribe', 'POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' }],
    ['issue a key', 'POST', `/applications/${app.id}/keys`, {}],
    ['list keys', 'GET', `/applications/${app.id}/keys`],
    ['rotate', 'POST', `/applications/${app.id}/keys/${keyId}/rotate`, { graceSeconds: 0 }],
    ['revoke', 'DELETE', `/applications/${app.id}/keys/${keyId}`]
  ]
  for (const [what, method, path, payload] of attempts) {
    const response = await mallory(method, path, payload)
    t.equal(response.statusCode, 404, `${what}: 404`)
    t.equal(response.json().error.code, 'SLUICE_APPS_NOT_FOUND')
  }
  // the same sub at another issuer is another developer too
  const elsewhere = developer(gw, { authorization: `Bearer ${developerToken('carol', { iss: 'https://other.example.com' })}` })
  t.equal((await elsewhere('GET', `/applications/${app.id}`)).statusCode, 401, 'an issuer not allow-listed is refused by auth')
  t.equal((await carol('GET', `/applications/${app.id}`)).statusCode, 200, 'its developer still has it')
  t.equal((await gw.app.credentials.verify(key)).keyId, keyId, 'and its key still works')
  // a key of another developer's application is not found in one's own either
  const own = (await mallory('POST', '/applications', { name: 'Theirs' })).json()
  t.equal((await mallory('DELETE', `/applications/${own.id}/keys/${keyId}`)).statusCode, 404, 'a key id of another application')
})

test('credentials and input: each refused with a clear code', async t => {
  const gw = await appsGateway(t)
  const dana = developer(gw, 'dana')
  const none = await gw.app.inject({ method: 'GET', url: '/v1/developer/applications' })
  t.equal(none.statusCode, 401)
  t.equal(none.json().error.code, 'SLUICE_AUTH_MISSING')
  const app = (await dana('POST', '/applications', { name: 'x' })).json()
  await dana('POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'free' })
  const { key, id: keyId } = (await dana('POST', `/applications/${app.id}/keys`, {})).json()
  const withKey = await developer(gw, { 'x-api-key': key })('GET', '/applications')
  t.equal(withKey.statusCode, 403)
  t.equal(withKey.json().error.code, 'SLUICE_APPS_DEVELOPER_REQUIRED', 'an application key manages no application')

  const bad: Array<[string, 'POST' | 'GET', string, unknown, number, string, RegExp?]> = [
    ['no name', 'POST', '/applications', {}, 400, 'SLUICE_APPS_BAD_REQUEST', /name/],
    ['empty name', 'POST', '/applications', { name: '' }, 400, 'SLUICE_APPS_BAD_REQUEST', /name/],
    ['name too long', 'POST', '/applications', { name: 'x'.repeat(101) }, 400, 'SLUICE_APPS_BAD_REQUEST', /name/],
    ['control character in name', 'POST', '/applications', { name: 'a\u0007b' }, 400, 'SLUICE_APPS_BAD_REQUEST', /name/],
    ['description too long', 'POST', '/applications', { name: 'x', description: 'd'.repeat(1001) }, 400, 'SLUICE_APPS_BAD_REQUEST', /description/],
    ['unknown field', 'POST', '/applications', { name: 'x', owner: 'someone' }, 400, 'SLUICE_APPS_BAD_REQUEST', /additional/],
    ['malformed application id', 'GET', '/applications/app_XYZ', undefined, 400, 'SLUICE_APPS_BAD_REQUEST', /id/],
    ['unknown application', 'GET', '/applications/app_0000000000000000', undefined, 404, 'SLUICE_APPS_NOT_FOUND'],
    ['no product', 'POST', `/applications/${app.id}/subscriptions`, { plan: 'free' }, 400, 'SLUICE_APPS_BAD_REQUEST', /product/],
    ['malformed plan', 'POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'Free Plan' }, 400, 'SLUICE_APPS_BAD_REQUEST', /plan/],
    ['unknown product', 'POST', `/applications/${app.id}/subscriptions`, { product: 'nope', plan: 'free' }, 422, 'SLUICE_APPS_UNKNOWN_PRODUCT'],
    ['a plan the product does not offer', 'POST', `/applications/${app.id}/subscriptions`, { product: 'market', plan: 'gold' }, 422, 'SLUICE_APPS_UNKNOWN_PLAN'],
    ['key TTL under a minute', 'POST', `/applications/${app.id}/keys`, { ttlSeconds: 59 }, 400, 'SLUICE_APPS_BAD_REQUEST', /ttlSeconds/],
    ['key of an unsubscribed product', 'POST', `/applications/${app.id}/keys`, { product: 'other' }, 409, 'SLUICE_APPS_NO_ACTIVE_SUBSCRIPTION'],
    ['rotation without a grace period', 'POST', `/applications/${app.id}/keys/${keyId}/rotate`, {}, 400, 'SLUICE_APPS_BAD_REQUEST', /graceSeconds/],
    ['grace period over a week', 'POST', `/applications/${app.id}/keys/${keyId}/rotate`, { graceSeconds: 7 * 24 * 3600 + 1 }, 400, 'SLUICE_APPS_BAD_REQUEST', /graceSeconds/],
    ['negative grace period', 'POST', `/applications/${app.id}/keys/${keyId}/rotate`, { graceSeconds: -1 }, 400, 'SLUICE_APPS_BAD_REQUEST', /graceSeconds/],
    ['malformed key id', 'POST', `/applications/${app.id}/keys/zz/rotate`, { graceSeconds: 1 }, 400, 'SLUICE_APPS_BAD_REQUEST', /keyId/]
  ]
  for (const [what, method, path, payload, status, code, message] of bad) {
    const response = await dana(method, path, payload)
    t.equal(response.statusCode, status, `${what}: ${status}`)
    t.equal(response.json().error?.code, code, `${what}: ${code}`)
    if (message) t.match(response.json().error.message, message, `${what}: the message names the field`)
  }
  const badReject = await admin(gw)('POST', '/subscriptions/sub_0000000000000000/reject', { reason: 'r'.repeat(1001) })
  t.equal(badReject.json().error.code, 'SLUICE_APPS_BAD_REQUEST', 'the admin\'s reason is bounded too')
  t.equal((await admin(gw)('POST', '/subscriptions/sub_0000000000000000/approve')).json().error.code, 'SLUICE_APPS_NOT_FOUND')
})
