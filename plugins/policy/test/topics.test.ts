// Topic patterns: globs, claim templates, and what they refuse to compile.
import { test } from 'tap'
import { compilePattern, isTopicName } from '../src/topics.ts'

const match = (pattern: string, topic: string, claims: Record<string, unknown> = {}) =>
  compilePattern(pattern, { templates: true }).resolve(claims)?.test(topic) ?? false

test('globs', async t => {
  t.ok(match('demo.ticks', 'demo.ticks'))
  t.notOk(match('demo.ticks', 'demoXticks'), 'a dot is a dot')
  t.ok(match('prices.*', 'prices.btc'))
  t.notOk(match('prices.*', 'prices.btc.usd'), '* stays inside a segment')
  t.notOk(match('prices.*', 'prices.'), '* is one character at least')
  t.ok(match('prices.btc-*', 'prices.btc-usd'))
  t.ok(match('audit.**', 'audit.a.b.c'), '** crosses dots')
  t.notOk(match('audit.**', 'audit'))
})

test('claim templates take plain segments only', async t => {
  t.ok(match('orders.{sub}', 'orders.alice', { sub: 'alice' }))
  t.notOk(match('orders.{sub}', 'orders.bob', { sub: 'alice' }))
  t.ok(match('t.{tenant}.{sub}', 't.acme.alice', { tenant: 'acme', sub: 'alice' }))
  t.ok(match('orders.{uid}', 'orders.42', { uid: 42 }), 'a non-negative integer claim')
  for (const sub of ['alice.*', 'a.b', '*', '.*', 'a+', '(a)', '', 'x'.repeat(129), 'ä'] as unknown[]) {
    t.equal(compilePattern('orders.{sub}', { templates: true }).resolve({ sub }), undefined, `sub ${JSON.stringify(sub)} fills nothing`)
  }
  for (const sub of [undefined, null, 1.5, -1, ['alice'], { a: 1 }, true]) {
    t.equal(compilePattern('orders.{sub}', { templates: true }).resolve({ sub }), undefined, `sub ${JSON.stringify(sub)} fills nothing`)
  }
})

test('patterns that do not compile', async t => {
  const reason = (source: string, templates = true) => {
    try {
      compilePattern(source, { templates })
      return 'compiled'
    } catch (err) {
      return (err as Error).message
    }
  }
  t.match(reason('a.***'), 'at most two')
  t.match(reason('a.**.b.**'), 'at most one `**`')
  t.match(reason('a*b*'), 'at most one wildcard between two dots', 'two wildcards in one segment would backtrack')
  t.match(reason('orders.{sub'), 'without')
  t.match(reason('orders.sub}'), 'without')
  t.match(reason('orders.{s-b}'), 'not a claim name')
  t.match(reason('orders.{sub}', false), 'claim templates belong in access rules')
  t.match(reason('a b'), 'only')
  t.equal(reason('a*.b*.c*'), 'compiled', 'one per segment is fine')
})

test('topic names', async t => {
  t.ok(isTopicName('orders.alice_1-x'))
  t.notOk(isTopicName(''))
  t.notOk(isTopicName('.'))
  t.notOk(isTopicName('..'))
  t.notOk(isTopicName('a'.repeat(250)), 'Kafka allows 249 characters')
  t.notOk(isTopicName('a b'))
  t.notOk(isTopicName('orders.*'))
  t.notOk(isTopicName(42))
})
