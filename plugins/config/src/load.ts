// Fastify-free config loading for both apps: a YAML (or JSON) file plus
// environment variables, validated against a JSON Schema with Ajv. Every
// problem is reported at once as `- /path: message (file:line)`, so an admin
// fixes a file in one pass rather than one error per restart.
import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type SchemaObject } from 'ajv'
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml'

export interface EnvBinding {
  /** JSON pointer into the config, e.g. /kafka/brokers */
  path: string
  type: 'string' | 'integer' | 'number' | 'boolean' | 'list'
}

export interface LoadOptions {
  schema: SchemaObject
  /** a YAML or JSON file; optional: env and defaults may be enough */
  file?: string
  /** parsed already (tests, dev mode); merged under the file's values */
  base?: Record<string, unknown>
  env?: Record<string, string | undefined>
  envBindings?: Record<string, EnvBinding>
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

/** Reads, merges and validates; throws ConfigError naming every problem. */
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
    return fileLocate?.(pointer)
  }
  const result = validate<T>(options.schema, merged, locate)
  problems.push(...result.problems)
  if (problems.length > 0) throw new ConfigError(problems)
  return result.value
}
