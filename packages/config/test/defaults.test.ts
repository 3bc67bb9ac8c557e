// gatewayDefaults is the gateway schema's `default`s, nothing else: what a
// plugin used without config falls back on is what a loaded config holds
// when the file and the environment leave a key out.
import { test } from 'tap'
import { loadConfig } from '../src/load.ts'
import { schemaDefaults } from '../src/defaults.ts'
import { gatewayConfigSchema, gatewayDefaults, type GatewayConfig } from '../src/gateway.ts'
import { kafkaDefaults } from '../src/schemas.ts'

type Node = { properties?: Record<string, Node>, default?: unknown }

/** Every key of a schema with a default of its own that is not a section's `{}`, by JSON pointer. */
function leafDefaults (node: Node, pointer = ''): Array<[string, unknown]> {
  if (node.properties) return Object.entries(node.properties).flatMap(([name, child]) => leafDefaults(child, `${pointer}/${name}`))
  return node.default === undefined ? [] : [[pointer, node.default]]
}

function at (value: unknown, pointer: string): unknown {
  return pointer.split('/').slice(1).reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], value)
}

test('gatewayDefaults holds every default the schema declares, and only those', async t => {
  const leaves = leafDefaults(gatewayConfigSchema as Node)
  t.ok(leaves.length >= 50, `${leaves.length} defaulted keys`)
  for (const [pointer, value] of leaves) t.same(at(gatewayDefaults, pointer), value, pointer)
  const count = (value: unknown): number => typeof value === 'object' && value !== null && !Array.isArray(value)
    ? Object.values(value).reduce<number>((n, v) => n + count(v), 0)
    : 1
  t.equal(count(gatewayDefaults), leaves.length, 'no key without a default in the schema')
  t.equal(at(gatewayDefaults, '/kafka/brokers'), undefined, 'a required key without a default is absent')
  t.equal(at(gatewayDefaults, '/redis/url'), undefined, 'so is one of an optional section')
  t.equal(gatewayDefaults.redis.timeoutMs, 500, 'an optional section\'s defaulted keys are there')
})

test('a config that leaves every key out loads with gatewayDefaults\' values', async t => {
  const config = loadConfig<GatewayConfig>({ schema: gatewayConfigSchema, base: { kafka: { brokers: ['127.0.0.1:9092'] } } })
  for (const [pointer] of leafDefaults(gatewayConfigSchema as Node)) {
    // optional sections without a default of their own (redis, portal.oidc): absent until given
    if (pointer.startsWith('/redis/') || pointer.startsWith('/portal/oidc/')) continue
    t.same(at(config, pointer), at(gatewayDefaults, pointer), pointer)
  }
  t.equal(config.redis, undefined, 'no Redis section unless given')
  t.equal(config.portal?.oidc, undefined, 'no sign-in section unless given')
})

test('the defaults are frozen: a plugin cannot change another\'s fallback', async t => {
  t.ok(Object.isFrozen(gatewayDefaults), 'the object')
  t.ok(Object.isFrozen(gatewayDefaults.rateLimit.http.upgrade), 'a nested section')
  t.ok(Object.isFrozen(gatewayDefaults.auth.origins), 'an array default')
  t.throws(() => { (gatewayDefaults.stream as { keepaliveMs: number }).keepaliveMs = 1 }, TypeError)
  t.equal(gatewayDefaults.stream.keepaliveMs, 30_000)
})

test('schemaDefaults copies each default: the schema\'s own objects stay unfrozen', async t => {
  const schema = { type: 'object', properties: { a: { type: 'array', default: [1, 2] }, b: { type: 'object', default: {}, properties: { c: { type: 'integer', default: 3 } } }, d: { type: 'string' } } } as const
  const defaults = schemaDefaults(schema)
  t.same(defaults, { a: [1, 2], b: { c: 3 } })
  t.not(defaults.a, schema.properties.a.default, 'a copy')
  t.notOk(Object.isFrozen(schema.properties.a.default), 'the schema\'s array is left alone')
})

test('the Kafka client\'s fallbacks are the shared Kafka section\'s', async t => {
  t.equal(kafkaDefaults.connectionTimeoutMs, gatewayDefaults.kafka.connectionTimeoutMs)
  t.equal(kafkaDefaults.requestTimeoutMs, gatewayDefaults.kafka.requestTimeoutMs)
})
