// The catalogue's pure helpers, run in Node (they touch no DOM): following a
// document's local $refs without looping, and which topic patterns the
// console offers to publish to.
import { test } from 'tap'

// a browser module, plain JS: loaded by URL so that the Node typecheck does not follow it (its own tsconfig checks it)
const catalogue = await import(String(new URL('../public/catalogue.js', import.meta.url))) as {
  deref (root: unknown, value: unknown): unknown
  mayOverlap (a: string, b: string): boolean
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
