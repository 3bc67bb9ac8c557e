// The example generator: deterministic, prefers what the schema's author
// wrote, respects the bounds it can, and stays bounded on hostile schemas.
import { test } from 'tap'
import { exampleFor, MAX_EXAMPLE_DEPTH, MAX_EXAMPLE_VALUES } from '../src/example.ts'

test('the author\'s own values first: examples, example, const, default, enum', async t => {
  t.equal(exampleFor({ type: 'string', examples: ['BTC-USD'], default: 'x' }), 'BTC-USD')
  t.equal(exampleFor({ type: 'integer', example: 7 }), 7)
  t.equal(exampleFor({ const: 'fixed' }), 'fixed')
  t.equal(exampleFor({ type: 'number', default: 1.5 }), 1.5)
  t.equal(exampleFor({ enum: ['buy', 'sell'] }), 'buy')
})

test('otherwise the smallest value of the type that the bounds allow', async t => {
  t.same(exampleFor({
    type: 'object',
    properties: {
      price: { type: 'number', minimum: 0.5 },
      qty: { type: 'integer', exclusiveMinimum: 0, multipleOf: 5 },
      neg: { type: 'integer', maximum: -3 },
      at: { type: 'string', format: 'date-time' },
      code: { type: 'string', minLength: 8 },
      short: { type: 'string', maxLength: 3 },
      tags: { type: 'array', items: { type: 'string' }, minItems: 2 },
      pair: { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'boolean' }] },
      maybe: { type: ['null', 'string'] },
      nothing: { type: 'null' },
      one: { oneOf: [{ type: 'boolean' }, { type: 'string' }] },
      both: { allOf: [{ type: 'object', properties: { a: { type: 'integer' } } }, { properties: { b: { const: 1 } } }] }
    }
  }), {
    price: 0.5,
    qty: 5,
    neg: -3,
    at: '2026-01-01T00:00:00.000Z',
    code: 'stringxx',
    short: 'str',
    tags: ['string', 'string'],
    pair: [0, true],
    maybe: 'string',
    nothing: null,
    one: true,
    both: { a: 0, b: 1 }
  })
  t.same(exampleFor({ required: ['a'], properties: { a: { type: 'boolean' } } }), { a: true }, 'an object by its properties alone')
  t.equal(exampleFor({}), null, 'a schema that says nothing')
  t.equal(exampleFor('not a schema'), null)
})

test('the same schema always gives the same example', async t => {
  const schema = { type: 'object', properties: { id: { type: 'string', format: 'uuid' }, at: { type: 'string', format: 'date-time' } } }
  t.same(exampleFor(schema), exampleFor(structuredClone(schema)))
})

test('hostile schemas stay bounded: depth, array length, string length', async t => {
  let deep: Record<string, unknown> = { type: 'string' }
  for (let i = 0; i < 10_000; i++) deep = { type: 'object', properties: { x: deep } }
  let value = exampleFor(deep)
  let depth = 0
  while (typeof value === 'object' && value !== null) { value = (value as { x: unknown }).x; depth++ }
  t.ok(depth <= MAX_EXAMPLE_DEPTH + 1, `cut at depth ${depth}`)
  t.equal((exampleFor({ type: 'array', items: { type: 'integer' }, minItems: 1_000_000_000 }) as unknown[]).length, 3)
  t.equal((exampleFor({ type: 'string', minLength: 1_000_000_000 }) as string).length, 256)

  // arrays of arrays repeat their items: 3^16 values unless the total is bounded
  let nested: Record<string, unknown> = { type: 'integer' }
  for (let i = 0; i < 16; i++) nested = { type: 'array', minItems: 3, items: nested }
  const count = (v: unknown): number => Array.isArray(v) ? 1 + v.reduce((n: number, x) => n + count(x), 0) : 1
  t.ok(count(exampleFor(nested)) <= MAX_EXAMPLE_VALUES + 3 * MAX_EXAMPLE_DEPTH, 'at most MAX_EXAMPLE_VALUES values (and the nulls that cut it)')
})
