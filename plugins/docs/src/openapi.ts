// Fastify-free: the OpenAPI 3.1 document of the gateway's REST routes, composed
// from the hand-written documents in openapi/:
//
//   gateway.yaml   the public routes (catalogue, AsyncAPI, docs, portal, health, readiness, metrics)
//   admin.yaml     the admin API (/admin), present only when the gateway has an admin token
//
// Each file is a complete OpenAPI document of its own (reviewable and
// validatable alone); composing them takes gateway.yaml's info and servers,
// adds admin.yaml's paths with its document-wide `security` moved onto each
// of its operations (the public routes need no credential), and merges the
// components. A path or component declared differently in two files is an
// error, never a silent overwrite. test/docs/openapi.test.ts checks the result
// against the routes the gateway registers and their schemas.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { parse } from 'yaml'

export type OpenApiDocument = Record<string, unknown> & {
  openapi: string
  paths: Record<string, Record<string, unknown>>
  components?: Record<string, Record<string, unknown>>
}

export const GATEWAY_DOCUMENT = 'gateway.yaml'
export const ADMIN_DOCUMENT = 'admin.yaml'
export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkDocument (value: unknown, file: string): OpenApiDocument {
  if (!isObject(value) || typeof value.openapi !== 'string' || !value.openapi.startsWith('3.1.') || !isObject(value.paths)) {
    throw new Error(`${file}: not an OpenAPI 3.1 document with paths`)
  }
  return value as OpenApiDocument
}

/** Adds `part`'s paths and components to `into`; `security` is what part's operations need when they say nothing. */
function add (into: OpenApiDocument, part: OpenApiDocument, file: string): void {
  const security = part.security
  for (const [path, item] of Object.entries(part.paths)) {
    if (Object.hasOwn(into.paths, path)) throw new Error(`${file}: path ${path} is already described`)
    const copy: Record<string, unknown> = { ...item }
    for (const method of HTTP_METHODS) {
      const operation = copy[method]
      if (isObject(operation) && security !== undefined && operation.security === undefined) copy[method] = { ...operation, security }
    }
    into.paths[path] = copy
  }
  for (const [section, entries] of Object.entries(part.components ?? {})) {
    into.components ??= {}
    const target = (into.components[section] ??= {}) as Record<string, unknown>
    for (const [name, value] of Object.entries(entries)) {
      if (Object.hasOwn(target, name) && !isDeepStrictEqual(target[name], value)) {
        throw new Error(`${file}: components.${section}.${name} differs from the one already declared`)
      }
      target[name] = value
    }
  }
  if (Array.isArray(part.tags)) {
    const tags = (into.tags ??= []) as Array<{ name: string }>
    for (const tag of part.tags as Array<{ name: string }>) if (!tags.some(t => t.name === tag.name)) tags.push(tag)
  }
}

/** Composes the documents: the first gives info and servers, the others add their paths and components. */
export function composeOpenApi (documents: Array<{ file: string, document: unknown }>): OpenApiDocument {
  const [first, ...rest] = documents.map(d => ({ file: d.file, document: checkDocument(d.document, d.file) }))
  if (!first) throw new Error('no OpenAPI document to compose')
  const composed: OpenApiDocument = structuredClone({ ...first.document, paths: {} })
  delete composed.security
  add(composed, structuredClone(first.document), first.file)
  for (const { file, document } of rest) add(composed, structuredClone(document), file)
  return composed
}

/** Reads openapi/ and composes the gateway's document (with the admin API when it is served). */
export async function loadOpenApi (dir: string, options: { admin: boolean }): Promise<OpenApiDocument> {
  const files = [GATEWAY_DOCUMENT, ...(options.admin ? [ADMIN_DOCUMENT] : [])]
  const documents = await Promise.all(files.map(async name => {
    const file = join(dir, name)
    return { file, document: parse(await readFile(file, 'utf8')) as unknown }
  }))
  return composeOpenApi(documents)
}
