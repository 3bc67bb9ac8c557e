// reader(): what the policy grants one identity, as GET /v1/me shows it: the
// example policy's rules for the dev credential, a JWT whose `sub` cannot
// fill a template, an API key held to its own product and plan, no policy.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { compilePolicy } from '@sluice/policy'
import { reader } from '../src/reader.ts'

const EXAMPLE = readFileSync(new URL('../../../policies/example.yaml', import.meta.url), 'utf8')

function example () {
  const { policy, problems } = compilePolicy([{ file: 'example.yaml', text: EXAMPLE }])
  if (!policy) throw new Error(JSON.stringify(problems))
  return policy
}

test('the dev credential: subject dev, the pro plan its connections get, orders.{sub} filled as orders.dev', async t => {
  const me = reader(example(), { kind: 'dev', subject: 'dev', claims: { sub: 'dev', roles: ['dev'] } })
  t.equal(me.subject, 'dev')
  t.equal(me.kind, 'dev')
  t.equal(me.plan?.name, 'pro', 'the most generous plan among its rules (free for the ticker, pro for its orders)')
  t.equal(me.plan?.title, 'Pro')
  t.equal(me.plan?.limits.connections, 20)
  t.same(me.products, [{ name: 'demo', title: 'Demo market data', plans: ['free', 'pro'], subscribe: ['demo.ticks', 'orders.dev'], publish: ['orders.dev'] }])
})

test('a JWT whose sub is not a plain segment gets no template topic, as the gateway would refuse it', async t => {
  const me = reader(example(), { kind: 'jwt', subject: 'a.b', claims: { sub: 'a.b' } })
  t.equal(me.plan?.name, 'free')
  t.same(me.products, [{ name: 'demo', title: 'Demo market data', plans: ['free'], subscribe: ['demo.ticks'], publish: [] }])
})

test('an API key: its own product, under the plan it was issued for', async t => {
  const me = reader(example(), { kind: 'api-key', subject: 'acme', keyId: 'k1', claims: { sub: 'acme', owner: 'acme', product: 'demo', plan: 'free', keyId: 'k1' } })
  t.equal(me.plan?.name, 'free')
  t.same(me.products, [{ name: 'demo', title: 'Demo market data', plans: ['free'], subscribe: ['demo.ticks', 'orders.acme'], publish: ['orders.acme'] }])
  const other = reader(example(), { kind: 'api-key', subject: 'acme', claims: { sub: 'acme', owner: 'acme', product: 'elsewhere', plan: 'free' } })
  t.same(other.products, [], 'a key for another product is granted nothing here')
  t.equal(other.plan, undefined)
})

test('without a policy: the identity and nothing granted', async t => {
  t.same(reader(undefined, { kind: 'dev', subject: 'dev', claims: {} }), { subject: 'dev', kind: 'dev', products: [] })
})
