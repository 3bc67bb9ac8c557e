// The catalogue's and the console's pure helpers, run in Node (they touch no
// DOM): following a document's local $refs without looping, which topic
// patterns the console offers to publish to and which topic it fills in,
// which topics and patterns the console sends, and counts in words.
import { test } from 'tap'

// a browser module, plain JS: loaded by URL so that the Node typecheck does not follow it (its own tsconfig checks it)
const catalogue = await import(String(new URL('../public/catalogue.js', import.meta.url))) as {
  deref (root: unknown, value: unknown): unknown
  mayOverlap (a: string, b: string): boolean
  matches (topic: string, pattern: string): boolean
  publishTarget (pattern: string, rulePatterns: string[], product: string, reader: unknown): string
}
const consoleModule = await import(String(new URL('../public/stream-client.js', import.meta.url))) as {
  topicProblem (topic: string, patterns: boolean): string
}
const dom = await import(String(new URL('../public/dom.js', import.meta.url))) as {
  plural (n: number, one: string, many?: string): string
  bytes (n: number): string
}

test('deref follows local refs, never loops, leaves the rest as it is', async t => {
  const doc = {
    components: { messages: { tick: { name: 'tick' }, 'a/b': { name: 'slash' }, alias: { $ref: '#/components/messages/tick' } } },
    loop: { a: { $ref: '#/loop/b' }, b: { $ref: '#/loop/a' } }
  }
  t.same(catalogue.deref(doc, { $ref: '#/components/messages/tick' }), { name: 'tick' })
  t.same(catalogue.deref(doc, { $ref: '#/components/messages/alias' }), { name: 'tick' }, 'a chain')
  t.same(catalogue.deref(doc, { $ref: '#/components/messages/a~1b' }), { name: 'slash' }, 'JSON Pointer escapes')
  t.same(catalogue.deref(doc, { $ref: 'https://example.com/x.json' }), { $ref: 'https://example.com/x.json' }, 'nothing fetched: a remote ref is shown as it is')
  t.same(catalogue.deref(doc, { $ref: '#/nowhere' }), { $ref: '#/nowhere' })
  t.same(catalogue.deref(doc, { $ref: '#/__proto__/constructor' }), { $ref: '#/__proto__/constructor' }, 'only own properties')
  t.ok(catalogue.deref(doc, { $ref: '#/loop/a' }), 'a loop ends after a few hops')
})

test('mayOverlap: which rule patterns may reach a topic', async t => {
  t.ok(catalogue.mayOverlap('orders.{sub}', 'orders.*'))
  t.ok(catalogue.mayOverlap('demo.ticks', 'demo.ticks'))
  t.notOk(catalogue.mayOverlap('orders.{sub}', 'demo.ticks'))
  t.notOk(catalogue.mayOverlap('orders.{sub}', 'orders.eu.*'), 'segment counts differ')
  t.ok(catalogue.mayOverlap('audit.**', 'audit.a.b'))
})

test('matches: the topics a pattern stands for', async t => {
  t.ok(catalogue.matches('orders.dev', 'orders.*'))
  t.notOk(catalogue.matches('orders.eu.dev', 'orders.*'), '* is one segment')
  t.ok(catalogue.matches('audit.a.b', 'audit.**'))
  t.ok(catalogue.matches('demo.ticks', 'demo.ticks'))
  t.notOk(catalogue.matches('demoXticks', 'demo.ticks'), 'a dot is a dot')
})

test('publishTarget: an exact topic as it is; the reader\'s own topic once known; else the rule\'s pattern', async t => {
  const dev = { subject: 'dev', kind: 'dev', products: [{ name: 'demo', title: 'Demo', plans: ['free', 'pro'], subscribe: ['demo.ticks', 'orders.dev'], publish: ['orders.dev'] }] }
  t.equal(catalogue.publishTarget('demo.ticks', [], 'demo', dev), 'demo.ticks')
  t.equal(catalogue.publishTarget('orders.*', ['orders.{sub}'], 'demo', dev), 'orders.dev', 'orders.{sub} is orders.dev for the dev credential')
  t.equal(catalogue.publishTarget('orders.*', ['orders.{sub}'], 'demo', undefined), 'orders.{sub}', 'not connected: the console asks for the subject')
  t.equal(catalogue.publishTarget('orders.*', ['orders.{sub}'], 'other', dev), 'orders.{sub}', 'only the product\'s own grants')
})

test('topicProblem: subscribe takes the gateway\'s patterns, publish one topic name, {claims} are filled in first', async t => {
  for (const ok of ['demo.ticks', 'prices.*', 'audit.**', 'a.*.c', 'pre*.x']) t.equal(consoleModule.topicProblem(ok, true), '', `${ok} is subscribed as it is`)
  t.equal(consoleModule.topicProblem('orders.dev', false), '')
  t.match(consoleModule.topicProblem('prices.*', false), /publish takes one topic name.*not a pattern/)
  t.match(consoleModule.topicProblem('orders.{sub}', true), /filled from your credential/)
  t.match(consoleModule.topicProblem('a.**.**', true), /at most one \*\*/)
  t.match(consoleModule.topicProblem('a.***', true), /at most two \* in a row/)
  t.match(consoleModule.topicProblem('a*b*.c', true), /one wildcard between two dots/)
  t.match(consoleModule.topicProblem('a b', true), /topic names are/)
})

test('counts in words: one is singular', async t => {
  t.equal(dom.plural(1, 'product'), '1 product')
  t.equal(dom.plural(2, 'product'), '2 products')
  t.equal(dom.plural(0, 'message'), '0 messages')
  t.equal(dom.plural(1200, 'message'), '1,200 messages')
  t.equal(dom.bytes(1), '1 byte')
  t.equal(dom.bytes(65536), '64 KiB')
})
