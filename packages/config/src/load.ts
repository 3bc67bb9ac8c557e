// Fastify-free config loading for both apps: a YAML (or JSON) file plus
// environment variables, validated against a JSON Schema with Ajv. Every
// problem is reported at once as `- /path: message (file:line)`, so an admin
// fixes a file in one pass rather than one error per restart.
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type SchemaObject } from 'ajv'
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml'
import { REFERENCE_SYNTAX, escapePointer, resolveListReference, resolveReferencesDeep, unresolvedReference, type ReferenceContext } from './env-reference.ts'

export { ENV_REFERENCE, REFERENCE_SYNTAX, escapePointer, resolveListReference, resolveReferences, resolveReferencesDeep, unresolvedReference, type ReferenceContext } from './env-reference.ts'

export interface EnvBinding {
  /** JSON pointer into the config, e.g. /kafka/brokers */
  path: string
  type: 'string' | 'integer' | 'number' | 'boolean' | 'list'
}

/** A field that takes `${env:NAME}` references; `*` in its pointer stands for any array index or key. */
export interface ReferenceField {
  path: string
  /** a list may also be one whole reference to a variable holding a JSON array or comma-separated strings */
  type: 'string' | 'list'
}

export interface LoadOptions {
  schema: SchemaObject
  /** a YAML or JSON file; optional: env and defaults may be enough */
  file?: string
  /** parsed already (tests, dev mode); merged under the file's values */
  base?: Record<string, unknown>
  env?: Record<string, string | undefined>
  envBindings?: Record<string, EnvBinding>
  /**
   * Where `${env:NAME}` is resolved (in the file's and base's values, never in
   * env-bound ones). Given, a `${env:` left anywhere in the config is a problem.
   */
  references?: ReferenceField[]
  /** Fields (same pointer syntax) holding secrets: a value shaped like an unexpanded reference is a problem. */
  secrets?: string[]
}

export interface ConfigProblem {
  path: string
  message: string
  /** where the value came from: `file:line` or `env NAME` */
  source?: string
}

export class ConfigError extends Error {
  readonly code = 'SLUICE_CONFIG_INVALID'
  readonly problems: ConfigProblem[]

  constructor (problems: ConfigProblem[]) {
    super('Invalid configuration:\n' + formatProblems(problems))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export function formatProblems (problems: ConfigProblem[]): string {
  return problems
    .map(p => `- ${p.path || '/'}: ${p.message}${p.source ? ` (${p.source})` : ''}`)
    .join('\n')
}

function pointerSegments (pointer: string): string[] {
  return pointer.split('/').slice(1).map(s => s.replaceAll('~1', '/').replaceAll('~0', '~'))
}

function setAtPointer (target: Record<string, unknown>, pointer: string, value: unknown): void {
  const segments = pointerSegments(pointer)
  let node: Record<string, unknown> = target
  for (const segment of segments.slice(0, -1)) {
    const next = node[segment]
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[segment] = {}
    node = node[segment] as Record<string, unknown>
  }
  node[segments[segments.length - 1]!] = value
}

/** `*` in a pattern's segment matches any one segment (an array index or a key). */
function patternMatches (pattern: string, pointer: string): boolean {
  const want = pattern.split('/')
  const got = pointer.split('/')
  return want.length === got.length && want.every((segment, i) => segment === '*' || segment === got[i])
}

/** Equal to, or inside, a value the pattern matches. */
function underPattern (pattern: string, pointer: string): boolean {
  const depth = pattern.split('/').length
  return patternMatches(pattern, pointer.split('/').slice(0, depth).join('/'))
}

type Container = Record<string, unknown> | unknown[]

/** Every present value a pattern matches, with its pointer and the container holding it. */
function * atPattern (root: unknown, pattern: string): Generator<{ pointer: string, parent: Container, key: string | number }> {
  const segments = pointerSegments(pattern)
  function * walk (node: unknown, depth: number, pointer: string): Generator<{ pointer: string, parent: Container, key: string | number }> {
    const segment = segments[depth]!
    let keys: Array<string | number> = []
    if (Array.isArray(node)) keys = segment === '*' ? node.map((_v, i) => i) : /^\d+$/.test(segment) && Number(segment) < node.length ? [Number(segment)] : []
    else if (isPlainObject(node)) keys = segment === '*' ? Object.keys(node) : Object.hasOwn(node, segment) ? [segment] : []
    for (const key of keys) {
      const child = (node as Record<string | number, unknown>)[key]
      const at = `${pointer}/${escapePointer(String(key))}`
      if (depth === segments.length - 1) yield { pointer: at, parent: node as Container, key }
      else yield * walk(child, depth + 1, at)
    }
  }
  yield * walk(root, 0, '')
}

function eachString (value: unknown, pointer: string, visit: (text: string, pointer: string) => void): void {
  if (typeof value === 'string') visit(value, pointer)
  else if (Array.isArray(value)) value.forEach((v, i) => eachString(v, `${pointer}/${i}`, visit))
  else if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) eachString(v, `${pointer}/${escapePointer(k)}`, visit)
}

/** Env strings become the bound type; a string that does not convert stays a string, so the schema names the problem. */
function convert (raw: string, type: EnvBinding['type']): unknown {
  switch (type) {
    case 'list': return raw.split(',').map(s => s.trim()).filter(Boolean)
    case 'integer':
    case 'number': return raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw
    case 'boolean': return raw === 'true' ? true : raw === 'false' ? false : raw
    default: return raw
  }
}

export function deepMerge (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key]
    if (isPlainObject(prior) && isPlainObject(value)) out[key] = deepMerge(prior, value)
    else out[key] = value
  }
  return out
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export interface ParsedYaml {
  value: unknown
  /** `file:line` of the node at a JSON pointer, or of its nearest parent in the file */
  locate (pointer: string): string | undefined
  problems: ConfigProblem[]
}

/** Parses YAML text keeping positions, so that schema errors can name their line. */
export function parseYaml (text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter()
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const problems: ConfigProblem[] = doc.errors.map(e => ({
    path: '',
    message: e.message.split('\n')[0] ?? e.message,
    source: `${file}:${lineCounter.linePos(e.pos[0]).line}`
  }))
  const line = (offset: number) => `${file}:${lineCounter.linePos(offset).line}`
  // A key's own line, or its nearest ancestor's when it is missing (a "required" error).
  const locate = (pointer: string): string | undefined => {
    let segments = pointerSegments(pointer)
    while (segments.length > 0) {
      const parent = segments.length === 1 ? doc.contents : doc.getIn(segments.slice(0, -1).map(s => /^\d+$/.test(s) ? Number(s) : s), true)
      const last = segments[segments.length - 1]!
      if (isMap(parent)) {
        const pair = parent.items.find(i => String(isScalar(i.key) ? i.key.value : i.key) === last)
        const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range
        if (range) return line(range[0])
      } else if (isSeq(parent) && /^\d+$/.test(last)) {
        const range = (parent.items[Number(last)] as { range?: [number, number, number] } | undefined)?.range
        if (range) return line(range[0])
      }
      segments = segments.slice(0, -1)
    }
    return text.trim() === '' ? undefined : `${file}:1`
  }
  return { value: doc.errors.length > 0 ? undefined : doc.toJS(), locate, problems }
}

/** Reads a YAML (or JSON) config file that must be a mapping; problems carry the file and line. */
export function readConfigFile (file: string): { value: Record<string, unknown> | undefined, locate: (pointer: string) => string | undefined, problems: ConfigProblem[] } {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return { value: undefined, locate: () => undefined, problems: [{ path: '', message: `cannot read config file: ${(err as Error).message}`, source: file }] }
  }
  const parsed = parseYaml(text, file)
  const problems = [...parsed.problems]
  let value: Record<string, unknown> | undefined
  if (isPlainObject(parsed.value)) value = parsed.value
  else if (parsed.value !== undefined && parsed.value !== null) problems.push({ path: '', message: 'must be a mapping of keys to values', source: `${file}:1` })
  return { value, locate: parsed.locate, problems }
}

const ajvCache = new WeakMap<SchemaObject, ReturnType<Ajv['compile']>>()

function compile (schema: SchemaObject) {
  let validate = ajvCache.get(schema)
  if (!validate) {
    // allErrors: report every problem at once; useDefaults: the schema is where defaults live
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true })
    validate = ajv.compile(schema)
    ajvCache.set(schema, validate)
  }
  return validate
}

function describe (error: ErrorObject): { path: string, message: string } {
  const params = error.params as Record<string, unknown>
  if (error.keyword === 'additionalProperties') {
    return { path: `${error.instancePath}/${String(params.additionalProperty)}`, message: 'unknown key' }
  }
  if (error.keyword === 'required') {
    return { path: `${error.instancePath}/${String(params.missingProperty)}`, message: 'is required' }
  }
  if (error.keyword === 'enum') {
    return { path: error.instancePath, message: `must be one of ${(params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}` }
  }
  return { path: error.instancePath, message: error.message ?? error.keyword }
}

/** Validates a value against a schema (applying its defaults); every problem at once. */
export function validate<T> (schema: SchemaObject, value: unknown, locate?: (pointer: string) => string | undefined): { value: T, problems: ConfigProblem[] } {
  const check = compile(schema)
  const copy = structuredClone(value)
  if (check(copy)) return { value: copy as T, problems: [] }
  const seen = new Set<string>()
  const problems: ConfigProblem[] = []
  for (const error of check.errors ?? []) {
    // oneOf/anyOf repeat their branches' errors; the branch errors say more
    if (error.keyword === 'oneOf' || error.keyword === 'anyOf' || error.keyword === 'if') continue
    const { path, message } = describe(error)
    const id = `${path}\0${message}`
    if (seen.has(id)) continue
    seen.add(id)
    problems.push({ path, message, source: locate?.(path) })
  }
  return { value: copy as T, problems }
}

/**
 * Values that would be used as written although they meant to come from the
 * environment: a secret shaped like a reference, and (where the config takes
 * references) a `${env:` anywhere, from the file or from a variable.
 */
function unresolvedProblems (config: unknown, options: LoadOptions, locate: (pointer: string) => string | undefined): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  const secrets = options.secrets ?? []
  const fields = options.references
  const isSecret = (pointer: string) => secrets.some(p => patternMatches(p, pointer))
  for (const pattern of secrets) {
    for (const at of atPattern(config, pattern)) {
      const value = (at.parent as Record<string | number, unknown>)[at.key]
      const message = typeof value === 'string' ? unresolvedReference(value, true) : undefined
      if (message) problems.push({ path: at.pointer, message, source: locate(at.pointer) })
    }
  }
  if (!fields) return problems
  eachString(config, '', (text, pointer) => {
    if (isSecret(pointer)) return
    const message = unresolvedReference(text, false)
    if (!message) return
    problems.push({
      path: pointer,
      message: fields.some(f => underPattern(f.path, pointer))
        ? message
        : `holds a ${REFERENCE_SYNTAX} reference, which is resolved only in ${fields.map(f => f.path).join(', ')}`,
      source: locate(pointer)
    })
  })
  return problems
}

/** Reads, merges, resolves references and validates; throws ConfigError naming every problem. */
export function loadConfig<T> (options: LoadOptions): T {
  let merged: Record<string, unknown> = structuredClone(options.base ?? {})
  const problems: ConfigProblem[] = []
  let fileLocate: ((pointer: string) => string | undefined) | undefined
  const fromEnv = new Map<string, string>()

  if (options.file) {
    const read = readConfigFile(options.file)
    problems.push(...read.problems)
    fileLocate = read.locate
    if (read.value) merged = deepMerge(merged, read.value)
  }

  // references first: a value bound from the environment below is never read for them
  const referenced = new Map<string, string>()
  const ctx: ReferenceContext = {
    env: options.env ?? {},
    problems,
    locate: pointer => fileLocate?.(pointer),
    resolved: (pointer, name) => referenced.set(pointer, name)
  }
  const before = problems.length
  for (const field of options.references ?? []) {
    for (const at of [...atPattern(merged, field.path)]) {
      const value = (at.parent as Record<string | number, unknown>)[at.key]
      const list = field.type === 'list' && typeof value === 'string' ? resolveListReference(value, at.pointer, ctx) : undefined
      ;(at.parent as Record<string | number, unknown>)[at.key] = list ?? resolveReferencesDeep(value, at.pointer, ctx)
    }
  }

  const unresolved = problems.slice(before).map(p => p.path)

  for (const [name, binding] of Object.entries(options.envBindings ?? {})) {
    const raw = options.env?.[name]
    if (raw === undefined || raw === '') continue
    setAtPointer(merged, binding.path, convert(raw, binding.type))
    fromEnv.set(binding.path, name)
  }

  const locate = (pointer: string): string | undefined => {
    for (const [path, name] of fromEnv) {
      if (pointer === path || pointer.startsWith(path + '/')) return `env ${name}`
    }
    const file = fileLocate?.(pointer)
    // the longest referenced pointer at or above this one names the variable the value came from
    let via: [string, string] | undefined
    for (const [path, name] of referenced) {
      if ((pointer === path || pointer.startsWith(path + '/')) && path.length > (via?.[0].length ?? -1)) via = [path, name]
    }
    if (via) return file ? `${file}, env ${via[1]}` : `env ${via[1]}`
    return file
  }
  const result = validate<T>(options.schema, merged, locate)
  // an unset variable leaves an empty value behind: its schema problem ("fewer than 32 characters") would only repeat it
  problems.push(...result.problems.filter(p => !unresolved.some(path => p.path === path || p.path.startsWith(path + '/'))))
  problems.push(...unresolvedProblems(result.value, options, locate))
  if (problems.length > 0) throw new ConfigError(problems)
  return result.value
}
