// Which plan a subject's connection and delivery limits come from (the
// policy's subjectPlan): an API key's own plan; for a JWT, the most generous
// plan among the rules that match it; none when no rule does.
import { test } from 'tap'
import { compilePolicy } from '@sluice/policy'
import { subjectPlan } from '@sluice/policy/plans'
import type { Identity } from '@sluice/protocol/identity'

const POLICY = `
version: 1
plans:
  free: { limits: { connections: 2, connectsPerMinute: 10, deliveredPerSecond: 50, publishedPerSecond: 5, bytesPerSecond: 65536, dailyQuota: 100000 } }
  pro: { limits: { connections: 20, connectsPerMinute: 120, deliveredPerSecond: 2000, publishedPerSecond: 200, bytesPerSecond: 4194304, dailyQuota: 50000000 } }
products:
  market:
    plans: [free, pro]
    topics: [{ pattern: 'prices.*' }, { pattern: 'orders.*' }]
rules:
  - { name: prices, product: market, plan: free, subscribe: ['prices.*'] }
  - { name: traders, product: market, plan: pro, match: { claims: { role: trader } }, subscribe: ['orders.{sub}'], publish: ['orders.{sub}'] }
`

const policy = compilePolicy([{ file: 'policy.yaml', text: POLICY }]).policy!

test('a JWT gets the most generous plan of the rules that match it', async t => {
  const trader: Identity = { kind: 'jwt', subject: 'alice', claims: { sub: 'alice', role: 'trader' } }
  const reader: Identity = { kind: 'jwt', subject: 'bob', claims: { sub: 'bob' } }
  t.equal(subjectPlan(policy, trader)?.name, 'pro', 'free and pro match: pro')
  t.equal(subjectPlan(policy, reader)?.name, 'free')
  t.equal(subjectPlan(policy, reader)?.limits.connections, 2)
})

test('an API key gets the plan it was issued for', async t => {
  const key: Identity = { kind: 'api-key', subject: 'carol', keyId: 'k1', claims: { sub: 'carol', owner: 'carol', product: 'market', plan: 'free', role: 'trader' } }
  t.equal(subjectPlan(policy, key)?.name, 'free', 'even where a rule for pro would match its claims')
})

test('no matching rule, no policy: no plan', async t => {
  const stranger: Identity = { kind: 'api-key', subject: 'x', claims: { sub: 'x', product: 'other', plan: 'pro' } }
  t.equal(subjectPlan(policy, stranger), undefined)
  t.equal(subjectPlan(undefined, stranger), undefined)
})
