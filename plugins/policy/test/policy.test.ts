// Compiling policy files: every problem with file, line and path at once;
// and the decisions of a compiled policy (who may do what, under which terms).
import { test } from 'tap'
import type { Identity } from '@sluice/protocol/identity'
import { compilePolicy } from '../src/compile.ts'

const LIMITS = '{ connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }'
const GOOD = `
version: 1
plans:
  free: { limits: ${LIMITS} }
  pro: { limits: ${LIMITS} }
products:
  market:
    plans: [free, pro]
    topics:
      - { pattern: prices.*, encoding: json }
      - { pattern: blobs.*, encoding: base64, slowClient: evict }
      - { pattern: orders.* }
rules:
  - name: traders
    product: market
    plan: pro
    match:
      kinds: [jwt]
      claims: { scope: trade, roles: [trader, admin] }
    subscribe: ['prices.*', 'orders.{sub}']
    publish: ['orders.{sub}']
  - name: readers
    product: market
    plan: free
    subscribe: ['prices.*', 'blobs.*']
`

const jwt = (claims: Record<string, unknown>): Identity => ({ kind: 'jwt', subject: String(claims.sub), claims })
const key = (claims: Record<string, unknown>): Identity => ({ kind: 'api-key', subject: String(claims.sub), claims, keyId: '0123456789abcdef' })

test('decisions and their terms', async t => {
  const { policy, problems } = compilePolicy([{ file: 'p.yaml', text: GOOD }])
  t.same(problems, [])
  const trader = jwt({ sub: 'alice', scope: 'read trade', roles: ['trader'] })
  t.match(policy!.authorize(trader, 'subscribe', 'prices.btc'), { allowed: true, product: 'market', plan: 'pro', encoding: 'json', slowClient: 'lagging' }, 'the first matching rule decides the plan')
  t.match(policy!.authorize(trader, 'publish', 'orders.alice'), { allowed: true, plan: 'pro' })
  t.match(policy!.authorize(trader, 'subscribe', 'blobs.x'), { allowed: true, plan: 'free', encoding: 'base64', slowClient: 'evict' }, 'terms come from the product topic')
  t.match(policy!.authorize(trader, 'publish', 'prices.btc'), { allowed: false })

  const noScope = jwt({ sub: 'bob', scope: 'read', roles: ['trader'] })
  t.match(policy!.authorize(noScope, 'subscribe', 'prices.btc'), { allowed: true, plan: 'free' }, 'a rule needs every claim it lists')
  t.match(policy!.authorize(noScope, 'publish', 'orders.bob'), { allowed: false })
  t.match(policy!.authorize(jwt({ sub: 'c', scope: 'trade', roles: 'admin' }), 'publish', 'orders.c'), { allowed: true }, 'a string claim matches a listed value')
  t.match(policy!.authorize(jwt({ sub: 'c', scope: 'trade', roles: ['viewer'] }), 'publish', 'orders.c'), { allowed: false })
  t.match(policy!.authorize({ kind: 'dev', subject: 'dev', claims: { sub: 'dev', scope: 'trade', roles: ['trader'] } }, 'publish', 'orders.dev'), { allowed: false }, 'kinds restrict')
  t.match(policy!.authorize(trader, 'subscribe', 'orders.*'), { allowed: false, reason: 'not a valid topic name' })
  t.ok(policy!.hasAccess(noScope))

  // API keys: their product's rules only, under their own plan while offered
  t.match(policy!.authorize(key({ sub: 'k', product: 'market', plan: 'pro' }), 'subscribe', 'prices.btc'), { allowed: true, plan: 'pro' }, 'the key\'s plan, not the rule\'s')
  t.match(policy!.authorize(key({ sub: 'k', product: 'other', plan: 'pro' }), 'subscribe', 'prices.btc'), { allowed: false }, 'another product\'s key')
  t.match(policy!.authorize(key({ sub: 'k', product: 'market', plan: 'gone' }), 'subscribe', 'prices.btc'), { allowed: false }, 'a plan no longer offered')
  t.notOk(policy!.hasAccess(key({ sub: 'k', product: 'market', plan: 'gone' })))
  t.equal(policy!.plan('constructor'), undefined, 'no inherited property is a plan')
  t.equal(policy!.product('toString'), undefined)
  t.same(policy!.plan('pro'), { connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 })
})

test('every problem at once, with file, line and path', async t => {
  const a = `version: 1
plans:
  free:
    limits: { connections: 1 }
products:
  market:
    plans: [free, gold]
    topics:
      - { pattern: 'x.***', encoding: xml }
rules:
  - name: r1
    product: nope
    plan: free
    subscribe: ['orders.{s-b}']
  - name: r1
    product: market
    plan: free
  - name: r3
    product: market
    plan: free
    subscribe: ['news.*']
`
  const b = `plans:
  free: { limits: ${LIMITS} }
  Bad Name: { limits: ${LIMITS} }
`
  const c = 'rules: [\n'
  const { policy, problems } = compilePolicy([{ file: 'a.yaml', text: a }, { file: 'b.yaml', text: b }, { file: 'c.yaml', text: c }])
  t.equal(policy, undefined)
  const seen = problems.map(p => `${p.path} @ ${p.source}: ${p.message}`)
  const expect = [
    ['/plans/free/limits/dailyQuota', 'a.yaml:4', 'is required'],
    ['/products/market/topics/0/encoding', 'a.yaml:9', 'must be one of'],
    ['/products/market/plans/1', 'a.yaml:7', 'unknown plan "gold"'],
    ['/products/market/topics/0/pattern', 'a.yaml:9', 'at most two'],
    ['/plans/free', 'b.yaml:2', 'already declared (a.yaml:3)'],
    ['/plans/Bad Name', 'b.yaml:3', 'must be lower-case'],
    ['/rules/0/product', 'a.yaml:12', 'unknown product "nope"'],
    ['/rules/0/subscribe/0', 'a.yaml:14', 'not a claim name'],
    ['/rules/1/name', 'a.yaml:15', 'already declared (a.yaml:11)'],
    ['/rules/1', 'a.yaml:15', 'grants nothing'],
    ['/rules/2/subscribe/0', 'a.yaml:21', 'not among the topics of product "market"']
  ]
  for (const [path, source, message] of expect) {
    t.ok(problems.some(p => p.path === path && p.source === source && p.message.includes(message!)), `${path} (${source}): ${message}`)
  }
  t.ok(problems.some(p => p.source?.startsWith('c.yaml:')), 'a YAML syntax error, with its line')
  t.ok(seen.length >= expect.length + 1, `${seen.length} problems reported in one pass`)
})
