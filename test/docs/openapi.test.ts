// The OpenAPI document a gateway serves (/openapi.json: openapi/gateway.yaml
// + openapi/admin.yaml, composed by @sluice/docs) against the gateway itself,
// built by buildApp on the real broker with every plugin:
//   - each file and the composed document pass an OpenAPI 3.1 validator;
//   - every route the gateway registers is documented with the same methods,
//     and every documented path and method is served. Not documented here:
//     the WebSocket upgrade routes (the AsyncAPI document covers them), the
//     UI's static assets under /docs/static/, HEAD twins of GET routes (HTTP
//     semantics, Fastify's exposeHeadRoutes) and trailing-slash twins
//     (/docs/ of /docs);
//   - where a route has a Fastify schema (body, querystring, params,
//     responses), the document's schema is the same once both are
//     normalized: $refs resolved, allOf of objects merged, annotations
//     (description, examples, default, ...) and `additionalProperties: true`
//     (the default) left out, `required` and type lists sorted.
// Replaces test/admin-openapi.test.ts, which checked the admin routes alone.
import { test, type Test } from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { parse } from 'yaml'
import { Validator } from '@seriousme/openapi-schema-validator'
import { HTTP_METHODS, type OpenApiDocument } from '@sluice/docs'
import { OPENAPI_DIR } from '@sluice/gateway'
import { startGateway } from '../harness/gateway.ts'

type Schema = Record<string, unknown>

interface Route {
  method: string
  url: string
  websocket: boolean
  schema?: Record<string, unknown>
  /** the schemas added with addSchema where the route lives, by $id */
  shared: Record<string, unknown>
}

function isObject (value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

async function gateway (t: Test, admin: boolean): Promise<{ app: FastifyInstance, routes: Route[] }> {
  const routes: Route[] = []
  const { app } = await startGateway({
    t,
    config: { policy: { watch: false }, ...(admin ? { admin: { token: 'openapi-suite-admin-token-0123456789' } } : {}) },
    build: {
      onRoute (this: FastifyInstance, route: RouteOptions) {
        for (const method of [route.method].flat()) {
          routes.push({ method, url: route.url, websocket: (route as { websocket?: boolean }).websocket === true, schema: route.schema as Schema | undefined, shared: this.getSchemas() })
        }
      }
    }
  })
  return { app, routes }
}

/** Routes the document must describe: everything but the exemptions listed at the top. */
function documentable (routes: Route[]): Route[] {
  const served = new Set(routes.map(r => `${r.method} ${r.url}`))
  return routes.filter(r =>
    !r.websocket &&
    !r.url.startsWith('/docs/static/') &&
    !(r.method === 'HEAD' && served.has(`GET ${r.url}`)) &&
    !(r.url.length > 1 && r.url.endsWith('/') && served.has(`${r.method} ${r.url.slice(0, -1)}`)))
}

function documented (doc: OpenApiDocument): Map<string, { path: string, item: Schema, operation: Schema }> {
  const out = new Map<string, { path: string, item: Schema, operation: Schema }>()
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method]
      // OpenAPI {id} is Fastify :id
      if (isObject(operation)) out.set(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`, { path, item, operation })
    }
  }
  return out
}

// keywords that say nothing about which values are valid
const ANNOTATIONS = new Set(['description', 'summary', 'title', 'examples', 'example', 'default', '$comment', 'deprecated', 'readOnly', 'writeOnly', '$id', '$schema'])
const SCHEMA_KEYWORDS = new Set(['items', 'additionalProperties', 'propertyNames', 'not', 'contains', 'if', 'then', 'else', 'unevaluatedProperties', 'unevaluatedItems'])
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'])
const SCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'allOf', 'prefixItems'])

function mergeAllOf (schema: Schema, resolve: (ref: string) => unknown): Schema {
  if (!Array.isArray(schema.allOf)) return schema
  const parts = schema.allOf.map(part => isObject(part) && typeof part.$ref === 'string' ? { ...resolve(part.$ref) as Schema, ...part, $ref: undefined } : part)
  if (!parts.every(isObject)) return schema
  const merged: Schema = { ...schema }
  delete merged.allOf
  const properties: Schema = isObject(merged.properties) ? { ...merged.properties } : {}
  const required = new Set<string>(Array.isArray(merged.required) ? merged.required as string[] : [])
  for (const part of parts as Schema[]) {
    for (const [key, value] of Object.entries(part)) {
      if (value === undefined || ANNOTATIONS.has(key)) continue
      if (key === 'properties' && isObject(value)) {
        for (const [name, property] of Object.entries(value)) {
          if (Object.hasOwn(properties, name)) return schema // a property constrained twice: keep allOf as it is
          properties[name] = property
        }
      } else if (key === 'required' && Array.isArray(value)) {
        for (const name of value) required.add(name as string)
      } else if (Object.hasOwn(merged, key) && JSON.stringify(merged[key]) !== JSON.stringify(value)) {
        return schema
      } else {
        merged[key] = value
      }
    }
  }
  if (Object.keys(properties).length > 0) merged.properties = properties
  if (required.size > 0) merged.required = [...required]
  return merged
}

function normalize (schema: unknown, resolve: (ref: string) => unknown, depth = 0): unknown {
  if (depth > 64) throw new Error('schema nested too deep (a $ref cycle?)')
  if (Array.isArray(schema)) return schema.map(s => normalize(s, resolve, depth + 1))
  if (!isObject(schema)) return schema
  let current = schema
  if (typeof current.$ref === 'string') {
    const { $ref, ...rest } = current
    const target = resolve($ref)
    if (!isObject(target)) throw new Error(`$ref ${$ref} does not resolve`)
    current = { ...target, ...rest }
  }
  current = mergeAllOf(current, resolve)
  const out: Schema = {}
  for (const key of Object.keys(current).sort()) {
    const value = current[key]
    if (ANNOTATIONS.has(key)) continue
    if (key === 'additionalProperties' && value === true) continue
    if (key === 'required' && Array.isArray(value)) out[key] = [...new Set(value)].sort()
    else if (key === 'type' && Array.isArray(value)) out[key] = [...value].sort()
    else if (SCHEMA_KEYWORDS.has(key)) out[key] = normalize(value, resolve, depth + 1)
    else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) out[key] = value.map(s => normalize(s, resolve, depth + 1))
    else if (SCHEMA_MAPS.has(key) && isObject(value)) out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v, resolve, depth + 1)]))
    else out[key] = value
  }
  return out
}

function pointer (doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs: ${ref}`)
  return ref.slice(2).split('/').map(s => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce<unknown>((node, key) => isObject(node) ? node[key] : undefined, doc)
}

function validatorErrors (result: { valid: boolean, errors?: unknown }): unknown {
  return result.valid ? [] : result.errors
}

test('openapi/gateway.yaml, openapi/admin.yaml and the document the gateway serves pass an OpenAPI 3.1 validator', async t => {
  for (const file of ['gateway.yaml', 'admin.yaml']) {
    const validator = new Validator()
    const result = await validator.validate(parse(readFileSync(join(OPENAPI_DIR, file), 'utf8')))
    t.same(validatorErrors(result), [], file)
    t.match(validator.version, /^3\.1/, `${file} is OpenAPI 3.1`)
  }
  const { app } = await gateway(t, true)
  const served = await app.inject('/openapi.json')
  t.equal(served.statusCode, 200)
  const doc = served.json()
  const validator = new Validator()
  t.same(validatorErrors(await validator.validate(doc)), [], '/openapi.json')
  t.match(validator.version, /^3\.1/)
  t.same((await app.inject('/docs/json')).json(), doc, 'the UI shows the same document')

  // every $ref of the document resolves (a validator of the shape does not look)
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? []
  t.ok(refs.length > 10, `${refs.length} $refs`)
  for (const ref of new Set(refs)) t.ok(isObject(pointer(doc, JSON.parse(`{${ref}}`).$ref)), `${ref} resolves`)
  // the admin API keeps its own credential; the public routes need none
  t.same(doc.paths['/admin/keys'].post.security, [{ adminToken: [] }])
  t.equal(doc.paths['/v1/products'].get.security, undefined)
  t.equal(doc.security, undefined)
})

test('every route the gateway registers is documented with its methods, and every documented path is served', async t => {
  const { app, routes } = await gateway(t, true)
  const doc = (await app.inject('/openapi.json')).json() as OpenApiDocument
  const registered = new Set(documentable(routes).map(r => `${r.method} ${r.url}`))
  const paths = documented(doc)
  t.ok(registered.size >= 20, `the gateway registered ${registered.size} routes to document`)
  for (const route of [...registered].sort()) t.ok(paths.has(route), `${route} is documented`)
  for (const route of [...paths.keys()].sort()) t.ok(registered.has(route), `${route} is served`)
  // what the exemptions leave out is what they say
  t.ok(routes.some(r => r.websocket && r.url === '/v1/stream'), '/v1/stream is a WebSocket route (AsyncAPI)')
  t.ok(routes.some(r => r.url === '/docs/static/*'), 'the UI\'s static assets')
})

test('without an admin token the document has no /admin path, as the gateway has no /admin route', async t => {
  const { app, routes } = await gateway(t, false)
  const doc = (await app.inject('/openapi.json')).json() as OpenApiDocument
  t.same(Object.keys(doc.paths).filter(p => p.startsWith('/admin')), [])
  t.same(routes.filter(r => r.url.startsWith('/admin')), [])
  t.equal(doc.components?.securitySchemes?.adminToken, undefined)
})

test('where a route has a Fastify schema, the document says the same', async t => {
  const { app, routes } = await gateway(t, true)
  const doc = (await app.inject('/openapi.json')).json() as OpenApiDocument
  const paths = documented(doc)
  const fromDoc = (schema: unknown) => normalize(schema, ref => pointer(doc, ref))
  let compared = 0
  for (const route of documentable(routes)) {
    if (!route.schema) continue
    const entry = paths.get(`${route.method} ${route.url}`)
    if (!entry) continue // reported by the suite above
    const { item, operation } = entry
    const fromRoute = (schema: unknown) => normalize(schema, ref => route.shared[ref.replace(/#$/, '')])
    const name = `${route.method} ${route.url}`
    const parameters = [...(Array.isArray(item.parameters) ? item.parameters : []), ...(Array.isArray(operation.parameters) ? operation.parameters : [])] as Schema[]

    for (const [part, where] of [['params', 'path'], ['querystring', 'query']] as const) {
      const schema = route.schema[part]
      if (!isObject(schema)) continue
      const declared = parameters.map(p => isObject(p) && typeof p.$ref === 'string' ? pointer(doc, p.$ref) as Schema : p).filter(p => p.in === where)
      const properties = isObject(schema.properties) ? schema.properties : {}
      t.same(declared.map(p => p.name).sort(), Object.keys(properties).sort(), `${name}: the ${where} parameters`)
      const required = new Set(Array.isArray(schema.required) ? schema.required : [])
      for (const p of declared) {
        if (!Object.hasOwn(properties, p.name as string)) continue
        t.same(fromDoc(p.schema), fromRoute(properties[p.name as string]), `${name}: ${where} parameter ${String(p.name)}`)
        // path parameters are always required (OpenAPI says so; Fastify cannot match a route without them)
        if (where === 'query') t.equal(p.required === true, required.has(p.name), `${name}: ${String(p.name)} required or not`)
        compared++
      }
    }
    if (route.schema.body !== undefined) {
      const body = isObject(operation.requestBody) ? operation.requestBody : undefined
      const content = isObject(body?.content) ? body.content['application/json'] : undefined
      t.ok(isObject(content), `${name}: the request body is documented`)
      t.same(fromDoc(isObject(content) ? content.schema : undefined), fromRoute(route.schema.body), `${name}: the request body`)
      compared++
    }
    const responses = isObject(route.schema.response) ? route.schema.response : {}
    for (const [status, schema] of Object.entries(responses)) {
      const response = isObject(operation.responses) ? operation.responses[status] : undefined
      const resolved = isObject(response) && typeof response.$ref === 'string' ? pointer(doc, response.$ref) : response
      const content = isObject(resolved) && isObject(resolved.content) ? resolved.content['application/json'] : undefined
      t.ok(isObject(content), `${name}: the ${status} response is documented as JSON`)
      t.same(fromDoc(isObject(content) ? content.schema : undefined), fromRoute(schema), `${name}: the ${status} response`)
      compared++
    }
  }
  t.ok(compared >= 20, `${compared} schemas compared`)
})

test('without openapi/ the gateway serves everything but /openapi.json and /docs; a broken document fails the boot', async t => {
  const config = { policy: { watch: false } }
  const { app } = await startGateway({ t, config, build: { openapiDir: join(tmpdir(), 'no-such-openapi-dir-for-sluice') } })
  t.equal((await app.inject('/openapi.json')).statusCode, 404)
  t.equal((await app.inject('/docs')).statusCode, 404)
  t.equal((await app.inject('/v1/products')).statusCode, 200, 'the catalogue still is')

  const broken = mkdtempSync(join(tmpdir(), 'sluice-openapi-'))
  writeFileSync(join(broken, 'gateway.yaml'), 'openapi: 3.0.3\npaths: {}\n')
  await t.rejects(startGateway({ t, config, build: { openapiDir: broken } }), /gateway\.yaml: not an OpenAPI 3\.1 document/)
})

test('the comparison sees a difference: a changed pattern, a missing property, a required flag', async t => {
  const none = () => undefined
  const base = { type: 'object', required: ['a'], properties: { a: { type: 'string', pattern: '^x$' }, b: { type: 'integer' } } }
  t.notSame(normalize({ ...base, properties: { ...base.properties, a: { type: 'string', pattern: '^y$' } } }, none), normalize(base, none))
  t.notSame(normalize({ ...base, properties: { a: base.properties.a } }, none), normalize(base, none))
  t.notSame(normalize({ ...base, required: [] }, none), normalize(base, none))
  // and is blind only to annotations, order and spelling out the defaults
  t.same(normalize({ ...base, required: ['a'], description: 'x', additionalProperties: true, properties: { b: { type: 'integer', default: 1 }, a: base.properties.a } }, none), normalize(base, none))
  t.same(normalize({ allOf: [{ type: 'object', required: ['a'], properties: { a: base.properties.a } }, { properties: { b: { type: 'integer' } } }] }, none), normalize(base, none))
})
