// A tenant whose rule is `orders.{sub}` reaches its own topic and no other:
// at the upgrade, in subscribe frames and in publish frames, for JWTs and API
// keys alike; and a hostile `sub` (a glob, a dot, a comma, a template) opens
// nothing at all.
import { test } from 'tap'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { liveGateway } from '../harness/live-route.ts'
import { type Client, refusal } from '../harness/client.ts'
import { redisUrl, unique } from '../helpers.ts'

const SECRET = 'tenant-suite-hs256-secret-0123456789abcd'

function bearer (sub: string): Record<string, string> {
  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'internal', aud: 'sluice', sub, exp: nowSeconds() + 600 }, SECRET)
  return { authorization: `Bearer ${token}` }
}

async function frame (client: Client, op: 'subscribe' | 'publish', topic: string): Promise<string> {
  const id = `${op}:${topic}`
  client.send(op === 'subscribe' ? { op, id, topics: [topic] } : { op, id, topic })
  return (await client.next(f => f.id === id)).op
}

test('orders.{sub}: its own topic and no other', async t => {
  const gw = await liveGateway({
    config: {
      redis: { url: redisUrl() },
      auth: {
        apiKeys: { prefix: unique('sluice-test') + ':' },
        jwt: { audience: ['sluice'], issuers: [{ issuer: 'internal', algorithms: ['HS256'], secret: SECRET }] }
      }
    }
  })
  t.teardown(() => gw.app.close())

  // at the upgrade
  t.equal((await refusal(gw.ws('?topics=orders.bob', { headers: bearer('alice') }))).status, 403, 'alice cannot open on orders.bob')
  t.equal((await refusal(gw.ws('?topics=orders.alice,orders.bob', { headers: bearer('alice') }))).status, 403, 'nor on her own plus another')
  const alice = gw.ws('?topics=orders.alice', { headers: bearer('alice') })
  await alice.opened
  t.equal(gw.opened(), 1, 'only the allowed upgrade opened a socket')

  // on every frame
  t.equal(await frame(alice, 'subscribe', 'orders.alice'), 'subscribed')
  t.equal(await frame(alice, 'publish', 'orders.alice'), 'ack')
  for (const other of ['orders.bob', 'orders.alice.x', 'orders.alicex', 'orders.ALICE', 'orders.*', 'orders.{sub}', 'orders', 'orders.', 'x.orders.alice']) {
    t.equal(await frame(alice, 'subscribe', other), 'error', `subscribe ${other}: refused`)
    t.equal(await frame(alice, 'publish', other), 'error', `publish ${other}: refused`)
  }
  t.equal(await frame(alice, 'subscribe', 'prices.btc'), 'subscribed', 'the shared topics stay open to her')
  t.equal(await frame(alice, 'publish', 'prices.btc'), 'error', 'read-only where the rule says so')

  const bob = gw.ws('', { headers: bearer('bob') })
  await bob.opened
  t.equal(await frame(bob, 'subscribe', 'orders.bob'), 'subscribed')
  t.equal(await frame(bob, 'subscribe', 'orders.alice'), 'error', 'and the other way round')

  // the same rule through an API key: its owner is its sub
  const { key } = await gw.app.credentials.apiKeys!.issue({ owner: 'carol', product: 'market', plan: 'gold', expiresAt: Date.now() + 600_000 })
  const carol = gw.ws('', { headers: { 'x-api-key': key } })
  await carol.opened
  t.equal(await frame(carol, 'publish', 'orders.carol'), 'ack')
  t.equal(await frame(carol, 'publish', 'orders.alice'), 'error')

  // a subject that is not a plain segment fills no template
  for (const sub of ['alice.*', 'a.b', '*', 'alice,bob', '{sub}', 'alice bob', '..', 'x'.repeat(129)]) {
    const hostile = gw.ws('', { headers: bearer(sub) })
    await hostile.opened
    const targets = ['orders.alice', 'orders.a.b', 'orders.a', `orders.${sub}`, 'orders.x']
    const answers = await Promise.all(targets.map(topic => frame(hostile, 'subscribe', topic)))
    t.same(answers, targets.map(() => 'error'), `sub ${JSON.stringify(sub.slice(0, 20))} reaches no orders topic`)
    t.equal(await frame(hostile, 'publish', 'orders.alice'), 'error')
    hostile.close()
  }
  for (const c of [alice, bob, carol]) c.close()
})
