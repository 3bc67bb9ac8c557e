// Fastify-free: one example value for a JSON Schema, deterministic (the same
// schema always gives the same value, so the committed AsyncAPI file is stable
// and a test can compare it). It prefers what the schema's author wrote
// (examples, example, const, default, enum) and otherwise builds the smallest
// plausible value of the declared type. Schemas come from the admin-edited
// policy: depth and sizes are bounded, $ref is not followed (a policy topic
// schema is self-contained), and nothing here can loop.

type Schema = Record<string, unknown>

// A message schema nested deeper than this is a mistake; past it the example is null.
export const MAX_EXAMPLE_DEPTH = 16
// Values in one example, all levels together: nested arrays repeat their items, so without
// a total a small schema could ask for 3^16 values. An example past it is cut with nulls.
export const MAX_EXAMPLE_VALUES = 10_000
// an example shows the shape, not the volume: at most this many array items and object properties
const MAX_ITEMS = 3
const MAX_PROPERTIES = 100
// strings are padded to minLength, capped so that a schema asking for a megabyte does not get one
const MAX_STRING = 256

// one fixed instant, so that examples never change from run to run
const FIXED_TIME = '2026-01-01T00:00:00.000Z'
const FORMATS: Record<string, string> = {
  'date-time': FIXED_TIME,
  date: FIXED_TIME.slice(0, 10),
  time: FIXED_TIME.slice(11),
  email: 'user@example.com',
  'idn-email': 'user@example.com',
  hostname: 'example.com',
  'idn-hostname': 'example.com',
  ipv4: '192.0.2.1',
  ipv6: '2001:db8::1',
  uri: 'https://example.com/',
  'uri-reference': '/example',
  iri: 'https://example.com/',
  uuid: '00000000-0000-4000-8000-000000000000',
  duration: 'PT1S',
  byte: 'AA=='
}

function isSchema (value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function typeOf (schema: Schema): string | undefined {
  const type = schema.type
  if (typeof type === 'string') return type
  // ['string', 'null']: the first type that is not null shows more
  if (Array.isArray(type)) return type.find(t => t !== 'null') ?? type[0]
  if (isSchema(schema.properties) || Array.isArray(schema.required)) return 'object'
  if (schema.items !== undefined || schema.prefixItems !== undefined) return 'array'
  return undefined
}

function bounded (value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback
}

function numberExample (schema: Schema, integer: boolean): number {
  let min = bounded(schema.minimum, Number.NEGATIVE_INFINITY)
  if (typeof schema.exclusiveMinimum === 'number') min = Math.max(min, schema.exclusiveMinimum + (integer ? 1 : Number.EPSILON))
  let max = bounded(schema.maximum, Number.POSITIVE_INFINITY)
  if (typeof schema.exclusiveMaximum === 'number') max = Math.min(max, schema.exclusiveMaximum - (integer ? 1 : Number.EPSILON))
  let value = 0
  if (value < min) value = min
  if (value > max) value = max
  if (integer) value = Math.ceil(value)
  const step = schema.multipleOf
  if (typeof step === 'number' && step > 0 && value % step !== 0) value = Math.ceil(value / step) * step
  return value
}

function stringExample (schema: Schema): string {
  const format = typeof schema.format === 'string' ? FORMATS[schema.format] : undefined
  let value = format ?? 'string'
  const min = Math.min(bounded(schema.minLength, 0), MAX_STRING)
  const max = bounded(schema.maxLength, Number.POSITIVE_INFINITY)
  if (value.length < min) value = value.padEnd(min, 'x')
  if (value.length > max) value = value.slice(0, Math.max(0, max))
  return value
}

function merge (schemas: unknown[]): Schema {
  const merged: Schema = {}
  const properties: Schema = {}
  for (const s of schemas) {
    if (!isSchema(s)) continue
    Object.assign(merged, s)
    if (isSchema(s.properties)) Object.assign(properties, s.properties)
  }
  delete merged.allOf
  if (Object.keys(properties).length > 0) merged.properties = properties
  return merged
}

/** An example value for `schema`; null when the schema says nothing usable. */
export function exampleFor (schema: unknown): unknown {
  return example(schema, 0, { left: MAX_EXAMPLE_VALUES })
}

function example (schema: unknown, depth: number, budget: { left: number }): unknown {
  if (!isSchema(schema) || depth > MAX_EXAMPLE_DEPTH || budget.left <= 0) return null
  budget.left--
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0]
  if (schema.example !== undefined) return schema.example
  if (schema.const !== undefined) return schema.const
  if (schema.default !== undefined) return schema.default
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0]
  if (Array.isArray(schema.allOf)) return example(merge(schema.allOf), depth + 1, budget)
  for (const key of ['oneOf', 'anyOf'] as const) {
    const options = schema[key]
    if (Array.isArray(options) && options.length > 0) return example(options[0], depth + 1, budget)
  }
  switch (typeOf(schema)) {
    case 'object': {
      const out: Record<string, unknown> = {}
      const properties = isSchema(schema.properties) ? Object.entries(schema.properties).slice(0, MAX_PROPERTIES) : []
      for (const [name, property] of properties) out[name] = example(property, depth + 1, budget)
      return out
    }
    case 'array': {
      const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems.slice(0, MAX_ITEMS) : []
      const items = prefix.map(p => example(p, depth + 1, budget))
      const min = Math.min(bounded(schema.minItems, 1), MAX_ITEMS)
      if (isSchema(schema.items)) while (items.length < min) items.push(example(schema.items, depth + 1, budget))
      return items
    }
    case 'string': return stringExample(schema)
    case 'integer': return numberExample(schema, true)
    case 'number': return numberExample(schema, false)
    case 'boolean': return true
    default: return null
  }
}
