// A schema's `default`s as one object, so that a plugin used without a loaded
// config (a test that builds it alone) falls back to the schema's value rather
// than to a second literal of it.
import type { FromSchema, JSONSchema } from 'json-schema-to-ts'

// the apps derive their config types with it, through this package (one dependency on json-schema-to-ts)
export type { FromSchema } from 'json-schema-to-ts'

/**
 * The defaulted keys of a schema: an object schema gives the defaults of its
 * properties (its own `default: {}` only says the section may be left out);
 * a key with a `default` gives it, typed by its own schema; other keys are absent.
 */
export type DefaultsOf<S> = S extends { readonly properties: infer P }
  ? { readonly [K in keyof P as [DefaultsOf<P[K]>] extends [never] ? never : K]: DefaultsOf<P[K]> }
  : S extends { readonly default: unknown } ? (S extends JSONSchema ? FromSchema<S> : never) : never

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

function collect (schema: unknown): unknown {
  if (typeof schema !== 'object' || schema === null) return undefined
  const node = schema as { properties?: Record<string, unknown>, default?: unknown }
  if (node.properties) {
    const out: Record<string, unknown> = {}
    for (const [name, child] of Object.entries(node.properties)) {
      const value = collect(child)
      if (value !== undefined) out[name] = value
    }
    return out
  }
  return node.default === undefined ? undefined : structuredClone(node.default)
}

/** Every `default` of a schema, frozen: shared by every plugin that falls back on it. */
export function schemaDefaults<S> (schema: S): DefaultsOf<S> {
  return deepFreeze(collect(schema)) as DefaultsOf<S>
}
