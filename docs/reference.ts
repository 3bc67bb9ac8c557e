// `reference write`: docs/reference.md, one table of every environment
// variable, config key and error code, generated from what the code declares:
// the apps' JSON Schemas and env bindings (descriptions are the comments above
// each key in the schema's source), the error catalogues (every
// createError(...) exported by an errors.ts, imported and enumerated), the wire
// codes and close codes of the stream API, and the environment variables the
// code reads directly. `reference check` exits 1 when the committed file is not
// what the code generates now (test/docs/reference.test.ts runs it).
//
//   npm run reference -- write [--out docs/reference.md]
//   npm run reference -- check [--out docs/reference.md]
//
// Exit 0: written / up to date. Exit 1: the file differs (check). Exit 2: usage.
import { globSync, readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve as resolvePath } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import ts from 'typescript'
import { REFERENCE_SYNTAX, type EnvBinding } from '@sluice/config'
import { gatewayConfigSchema, gatewayEnvBindings, gatewayReferenceFields, gatewaySecretFields } from '../apps/gateway/src/config.ts'
import { CONNECT_KEYS, FEED_DEFAULTS, ingestConfigSchema, ingestEnvBindings } from '../apps/ingest/src/config.ts'
import { CLOSE, WIRE_CODES } from '@sluice/protocol/codes'
import { wireCode } from '@sluice/stream'

export const ROOT = resolvePath(dirname(fileURLToPath(import.meta.url)), '..')
export const DEFAULT_OUT = 'docs/reference.md'
const USAGE = 'usage: reference write|check [--out <file>]\n'

// The schemas' own source, where each key's comment (its reason) is written.
const SCHEMA_SOURCES = ['packages/config/src/gateway.ts', 'apps/ingest/src/config-schema.ts', 'packages/config/src/schemas.ts']
// Where the code that runs lives: catalogues, and what reads the environment.
const SOURCE_GLOBS = ['apps/*/src/**/*.ts', 'plugins/*/src/**/*.ts', 'packages/*/src/**/*.ts']
const CATALOGUE_GLOBS = ['plugins/*/src/errors.ts', 'packages/*/src/errors.ts', 'apps/*/src/errors.ts']
// Variables of this project: what the code reads by name (PATH, HOME and the like are not its settings).
const OWN_VARIABLE = /^(SLUICE|KAFKA|REDIS)_[A-Z0-9_]+$/

// The catalogues whose errors can reach a /v1/stream socket after the upgrade (its session, the hub, Kafka,
// and the rate-limit and auth guards it is given): only their codes have a wire code. The policy's errors
// answer the admin API and stop a start; a frame the policy refuses is the stream's SLUICE_STREAM_FORBIDDEN.
const FRAME_CATALOGUES = new Set(['plugins/stream', 'plugins/hub', 'packages/kafka', 'plugins/rate-limit', 'plugins/auth'].map(p => `${p}/src/errors.ts`))

// Close codes have names in packages/protocol/src/codes.ts; their meanings (docs/design.md) are written here once.
// A close code without a meaning here stops the generator, so the table is never missing one.
const CLOSE_MEANINGS: Record<string, string> = {
  NORMAL: 'normal closure',
  GOING_AWAY: 'the node is going away (drain, shutdown): reconnect with your cursor',
  POLICY_VIOLATION: 'policy violation: too many invalid frames; an admin kicked the socket',
  TOO_LARGE: 'a frame over stream.maxFrameBytes',
  INTERNAL: 'internal error',
  TRY_LATER: 'try again later: rate limits failing closed, a subscription Kafka could not serve',
  CREDENTIALS: 'credentials expired or revoked',
  ACCESS_WITHDRAWN: 'access withdrawn by a policy change',
  TOO_SLOW: 'too slow: evicted (the product\'s slowClient is evict)',
  RATE_LIMITED: 'rate limited: kept publishing while told to wait'
}

// Variables the code reads itself rather than through a config binding, and what each is for.
// One the code reads that is missing here still gets its row (with where it is read).
const DIRECT_MEANINGS: Record<string, string> = {
  SLUICE_CONFIG: 'the config file, when `--config` is not given',
  SLUICE_INGEST_CONFIG: 'the ingest app\'s config file for `sluice ingest` (before `SLUICE_CONFIG`)',
  SLUICE_CWD: 'the directory the `sluice` command runs in (npm scripts run from the repository root)',
  SLUICE_URL: 'the gateway that `sluice keys` talks to (default `http://localhost:8080`)',
  SLUICE_JWT_SECRET: 'the HS256 secret `sluice token` signs with (the gateway issuer\'s `secret`)',
  SLUICE_JWT_ISSUER: 'the `iss` of tokens `sluice token` signs (default `sluice-dev`)',
  SLUICE_DEV_TOKEN: 'dev mode: the dev credential (default: random, printed at start)',
  SLUICE_PORT: 'dev mode: the gateway\'s port when `--port` is not given (default 8080)',
  SLUICE_ADMIN_TOKEN: 'dev mode: the admin token (default: random, printed at start); `sluice keys`: the token it sends'
}

type Schema = Record<string, unknown>

// ---- source comments: each schema key's reason, as written above it ----

interface Site { comment: string, alias?: string }

/** The `//` comments right above a node, joined; lint directives left out. */
function leadingComment (text: string, node: ts.Node): string {
  const ranges = ts.getLeadingCommentRanges(text, node.getFullStart()) ?? []
  return ranges
    .map(r => text.slice(r.pos, r.end))
    .filter(c => c.startsWith('//') && !/eslint/.test(c))
    .map(c => c.replace(/^\/\/\s?/, '').trim())
    .join(' ')
}

function unwrap (node: ts.Expression): ts.Expression {
  while (ts.isAsExpression(node) || ts.isParenthesizedExpression(node) || ts.isSatisfiesExpression(node)) node = node.expression
  return node
}

/**
 * For each top-level declaration (a const, or a function returning an object), the comment of every
 * schema key by its chain of names (`properties` and `items` skipped), and where a key's schema is
 * another declaration (`server: serverSchema(8080)`, `items: feedSchema`), that declaration's name.
 */
function schemaSites (files: string[]): Map<string, Map<string, Site>> {
  const declarations = new Map<string, Map<string, Site>>()
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
    const visit = (node: ts.Expression, chain: string[], sites: Map<string, Site>) => {
      node = unwrap(node)
      if (ts.isCallExpression(node)) {
        if (ts.isIdentifier(node.expression)) sites.set(chain.join('/'), { ...sites.get(chain.join('/')) ?? { comment: '' }, alias: node.expression.text })
        for (const arg of node.arguments) visit(arg, chain, sites)
        return
      }
      if (ts.isIdentifier(node)) {
        sites.set(chain.join('/'), { ...sites.get(chain.join('/')) ?? { comment: '' }, alias: node.text })
        return
      }
      if (!ts.isObjectLiteralExpression(node)) return
      for (const property of node.properties) {
        if (!ts.isPropertyAssignment(property)) continue
        const name = ts.isIdentifier(property.name) || ts.isStringLiteral(property.name) ? property.name.text : undefined
        if (name === undefined) continue
        const structural = name === 'properties' || name === 'items'
        const next = structural ? chain : [...chain, name]
        if (!structural) {
          const key = next.join('/')
          const previous = sites.get(key)
          // a key declared twice (a shared schema and its extension) keeps the comment that says something
          sites.set(key, { comment: leadingComment(text, property) || previous?.comment || '', alias: previous?.alias })
        }
        visit(property.initializer, next, sites)
      }
    }
    for (const statement of source.statements) {
      if (ts.isVariableStatement(statement)) {
        for (const d of statement.declarationList.declarations) {
          if (!ts.isIdentifier(d.name) || !d.initializer) continue
          const sites = new Map<string, Site>()
          visit(d.initializer, [], sites)
          declarations.set(d.name.text, sites)
        }
      } else if (ts.isFunctionDeclaration(statement) && statement.name && statement.body) {
        const sites = new Map<string, Site>()
        for (const inner of statement.body.statements) {
          if (ts.isReturnStatement(inner) && inner.expression) visit(inner.expression, [], sites)
        }
        declarations.set(statement.name.text, sites)
      }
    }
  }
  return declarations
}

/** The comment above a key, following a key whose schema is another declaration into it. */
function commentOf (declarations: Map<string, Map<string, Site>>, declaration: string, chain: string[], depth = 0): string {
  const sites = declarations.get(declaration)
  if (!sites || depth > 5) return ''
  const own = sites.get(chain.join('/'))
  if (own?.comment) return own.comment
  for (let i = chain.length; i >= 0; i--) {
    const alias = sites.get(chain.slice(0, i).join('/'))?.alias
    if (alias === undefined) continue
    const found = commentOf(declarations, alias, chain.slice(i), depth + 1)
    if (found) return found
  }
  return ''
}

// ---- the schema as rows ----

interface KeyRow {
  pointer: string
  type: string
  default: string
  allowed: string
  description: string
  /** the chain of property names, `*` left out (for the source comments) */
  chain: string[]
}

function code (text: string): string {
  // a pipe would end the table cell, even inside backticks
  return '`' + text.replaceAll('|', '\\|') + '`'
}

function cell (text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

function typeOf (schema: Schema): string {
  if (Array.isArray(schema.enum)) {
    const kinds = [...new Set(schema.enum.map(v => typeof v))]
    return kinds.length === 1 && kinds[0] === 'number' ? 'number' : 'string'
  }
  const type = schema.type
  if (Array.isArray(type)) return type.join(' or ')
  if (type === 'array') {
    const items = (schema.items ?? {}) as Schema
    return `list of ${items.type === 'object' || items.properties ? 'objects' : typeOf(items) + 's'}`
  }
  if (type === 'object' && !schema.properties && schema.additionalProperties) return `map of ${typeOf(schema.additionalProperties as Schema)}s`
  return typeof type === 'string' ? type : 'any'
}

function allowedOf (schema: Schema): string {
  const parts: string[] = []
  if (Array.isArray(schema.enum)) parts.push('one of ' + schema.enum.map(v => code(String(v))).join(', '))
  if (typeof schema.minimum === 'number' || typeof schema.maximum === 'number') parts.push(`${schema.minimum ?? '…'} to ${schema.maximum ?? '…'}`)
  if (schema.minLength === 1) parts.push('not empty')
  else if (typeof schema.minLength === 'number') parts.push(`at least ${schema.minLength} characters`)
  if (typeof schema.maxLength === 'number') parts.push(`at most ${schema.maxLength} characters`)
  if (typeof schema.pattern === 'string') parts.push(code(schema.pattern))
  if (schema.minItems === 1) parts.push('not empty')
  else if (typeof schema.minItems === 'number') parts.push(`at least ${schema.minItems} items`)
  if (typeof schema.maxItems === 'number') parts.push(`at most ${schema.maxItems} items`)
  if (schema.uniqueItems === true) parts.push('no duplicates')
  if (typeof schema.maxProperties === 'number') parts.push(`at most ${schema.maxProperties} entries`)
  const items = schema.items as Schema | undefined
  if (schema.type === 'array' && items && !items.properties) {
    const inner = allowedOf(items)
    if (inner) parts.push(`each: ${inner}`)
  }
  return parts.join('; ')
}

function defaultText (value: unknown): string {
  if (value === undefined) return ''
  if (typeof value === 'string') return code(value)
  return code(JSON.stringify(value))
}

/** Every key of a schema, depth first, in the schema's order; arrays of objects go on with `*`. */
function keyRows (schema: Schema, defaults: (pointer: string) => unknown = () => undefined): KeyRow[] {
  const rows: KeyRow[] = []
  // optional: the parent section may be left out (no default, not required), and then so may this key
  const walk = (node: Schema, pointer: string, chain: string[], required: boolean, optionalSection?: string) => {
    const given = node.default !== undefined ? node.default : defaults(pointer)
    // a section's default ({} or the defaults of its keys) is shown key by key
    const own = typeof given === 'object' && given !== null && !Array.isArray(given) ? undefined : given
    const requirement = !required ? '' : optionalSection !== undefined ? `required with ${code(optionalSection)}` : 'required'
    const section = optionalSection ?? (!required && node.default === undefined && node.type === 'object' ? pointer : undefined)
    rows.push({
      pointer,
      type: typeOf(node),
      default: own !== undefined ? defaultText(own) : requirement,
      allowed: allowedOf(node),
      description: '',
      chain
    })
    const properties = node.properties as Record<string, Schema> | undefined
    const requiredKeys = new Set((node.required as string[] | undefined) ?? [])
    if (properties) {
      for (const [name, child] of Object.entries(properties)) walk(child, `${pointer}/${name}`, [...chain, name], requiredKeys.has(name), section)
    }
    const items = node.items as Schema | undefined
    if (node.type === 'array' && items?.properties) {
      const itemRequired = new Set((items.required as string[] | undefined) ?? [])
      for (const [name, child] of Object.entries(items.properties as Record<string, Schema>)) {
        walk(child, `${pointer}/*/${name}`, [...chain, name], itemRequired.has(name), `${pointer}/*`)
      }
    }
  }
  for (const [name, child] of Object.entries(schema.properties as Record<string, Schema>)) {
    walk(child, `/${name}`, [name], ((schema.required as string[] | undefined) ?? []).includes(name))
  }
  return rows
}

function pointerGet (value: unknown, pointer: string): unknown {
  let node = value
  for (const segment of pointer.split('/').slice(1)) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[segment]
  }
  return node
}

/** A binding's pointer matched against the schema's pointers (`*` for an index). */
function matches (pattern: string, pointer: string): boolean {
  const a = pattern.split('/')
  const b = pointer.split('/')
  return a.length === b.length && a.every((s, i) => s === '*' || s === b[i])
}

interface App {
  name: string
  rows: KeyRow[]
  env: Record<string, EnvBinding>
}

function gatewayApp (declarations: Map<string, Map<string, Site>>): App {
  const rows = keyRows(gatewayConfigSchema as unknown as Schema)
  for (const row of rows) {
    row.description = commentOf(declarations, 'gatewayConfigSchema', row.chain)
    const notes: string[] = []
    if (gatewaySecretFields.some(p => matches(p, row.pointer))) notes.push('a secret')
    if (gatewayReferenceFields.some(f => matches(f.path, row.pointer) || (f.type === 'list' && row.pointer.startsWith(f.path + '/')))) notes.push(`takes \`${REFERENCE_SYNTAX}\``)
    if (notes.length > 0) row.description = [row.description, `(${notes.join('; ')})`].filter(Boolean).join(' ')
  }
  return { name: 'gateway', rows, env: gatewayEnvBindings }
}

function ingestApp (declarations: Map<string, Map<string, Site>>): App {
  // a feed's defaults live in FEED_DEFAULTS (a setting has two names); a Connect key's default is its native key's
  const connectNative = new Map(Object.entries(CONNECT_KEYS))
  const feedDefault = (pointer: string): unknown => {
    const m = /^\/feeds\/\*(\/.+)$/.exec(pointer)
    if (!m) return undefined
    const native = connectNative.get(m[1]!.slice(1)) ?? m[1]!
    return pointerGet(FEED_DEFAULTS, native)
  }
  const rows = keyRows(ingestConfigSchema as unknown as Schema, feedDefault)
  for (const row of rows) {
    row.description = commentOf(declarations, 'ingestConfigSchema', row.chain)
    const connect = /^\/feeds\/\*\/(.+)$/.exec(row.pointer)?.[1]
    const native = connect !== undefined ? connectNative.get(connect) : undefined
    // the comment above the first Connect key speaks for all of them: each row says which native key it stands for
    if (native !== undefined) row.description = `Kafka Connect's name for ${code('/feeds/*' + native)}.`
  }
  return { name: 'ingest', rows, env: ingestEnvBindings }
}

// ---- environment variables the code reads itself ----

function sourceFiles (): string[] {
  return SOURCE_GLOBS.flatMap(g => globSync(g, { cwd: ROOT })).filter(f => !f.includes('/test/')).sort()
}

/** Every project variable read by name in the sources (`env.NAME`, `env['NAME']`), with the files that read it. */
export function variablesReadInCode (): Map<string, string[]> {
  const found = new Map<string, Set<string>>()
  for (const file of sourceFiles()) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const m of text.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]*)|\[['"]([A-Z][A-Z0-9_]*)['"]\])/g)) {
      const name = m[1] ?? m[2]!
      if (!OWN_VARIABLE.test(name)) continue
      if (!found.has(name)) found.set(name, new Set())
      found.get(name)!.add(file)
    }
  }
  return new Map([...found].map(([name, files]) => [name, [...files].sort()]))
}

// ---- error catalogues ----

export interface CatalogueEntry {
  code: string
  status?: number
  message: string
  /** the export's name in its catalogue */
  name: string
  catalogue: string
  raisedIn: string[]
}

const FASTIFY_ERROR = Symbol.for('fastify-error-generic')

function packageName (catalogue: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(ROOT, catalogue, '..', '..', 'package.json'), 'utf8')) as { name?: string }).name
  } catch {
    return undefined
  }
}

/** Every createError(...) exported by a catalogue, with the source files that raise or name it. */
export async function catalogueEntries (): Promise<CatalogueEntry[]> {
  const catalogues = CATALOGUE_GLOBS.flatMap(g => globSync(g, { cwd: ROOT })).sort()
  const sources = sourceFiles().map(file => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }))
  const entries: CatalogueEntry[] = []
  for (const catalogue of catalogues) {
    const module = await import(pathToFileURL(join(ROOT, catalogue)).href) as Record<string, unknown>
    const pkgDir = dirname(dirname(catalogue))
    const pkg = packageName(catalogue)
    for (const [name, value] of Object.entries(module)) {
      if (typeof value !== 'function' || !(value.prototype as Record<symbol, unknown>)?.[FASTIFY_ERROR]) continue
      // built without arguments, the message keeps its %s placeholders: the message as catalogued
      const err = new (value as new () => Error & { code: string, statusCode?: number })()
      const word = new RegExp(`\\b${name}\\b`)
      // the same export name is in two catalogues: another package's file counts only when it imports this one's
      const imported = pkg === undefined ? undefined : new RegExp(`import\\s*(type\\s*)?\\{[^}]*\\b${name}\\b[^}]*\\}\\s*from\\s*'${pkg}(/[^']*)?'`)
      const raisedIn = sources.filter(({ file, text }) => {
        if (file === catalogue) return false
        if (text.includes(`'${err.code}'`)) return true
        if (!word.test(text)) return false
        if (file.startsWith(pkgDir + '/') || (imported?.test(text) ?? false)) return true
        // through the package's `errors` namespace: import { errors as policyErrors } ... policyErrors.PolicyInvalidError
        return pkg !== undefined && text.includes(`from '${pkg}`) && new RegExp(`\\.${name}\\b`).test(text)
      }).map(s => s.file)
      entries.push({ code: err.code, status: err.statusCode, message: err.message, name, catalogue, raisedIn })
    }
  }
  return entries
}

/** Codes that classes declare themselves (`readonly code = 'SLUICE_...'`), outside the catalogues. */
function classCodes (): Array<{ code: string, file: string, name: string }> {
  const out: Array<{ code: string, file: string, name: string }> = []
  for (const file of sourceFiles()) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const m of text.matchAll(/class (\w+)[^{]*\{[^}]*?readonly code = '(SLUICE_[A-Z0-9_]+)'/g)) out.push({ code: m[2]!, file, name: m[1]! })
  }
  return out
}

// ---- the document ----

function envSection (apps: App[], direct: Map<string, string[]>): string[] {
  const lines = [
    '## Environment variables',
    '',
    'A variable bound to a config key overrides the file\'s value for that key (lists are comma-separated).',
    'The meaning, range and default are the key\'s, in [Config keys](#config-keys).',
    '',
    '| variable | config key | app | type | default | description |',
    '|---|---|---|---|---|---|'
  ]
  const names = [...new Set(apps.flatMap(a => Object.keys(a.env)))].sort()
  for (const name of names) {
    const bound = apps.filter(a => a.env[name])
    const pointers = [...new Set(bound.map(a => a.env[name]!.path))]
    for (const pointer of pointers) {
      const using = bound.filter(a => a.env[name]!.path === pointer)
      const rows = using.map(a => ({ app: a.name, row: a.rows.find(r => r.pointer === pointer) }))
      const defaults = [...new Set(rows.map(r => r.row?.default ?? ''))]
      const defaultCell = defaults.length === 1 ? defaults[0] : rows.map(r => `${r.row?.default || 'none'} (${r.app})`).join(', ')
      const description = rows.find(r => r.row?.description)?.row?.description ?? ''
      lines.push(`| ${code(name)} | [${code(pointer)}](#${anchor(using[0]!.name, pointer)}) | ${using.map(a => a.name).join(', ')} | ${using[0]!.env[name]!.type} | ${defaultCell} | ${cell(description)} |`)
    }
  }
  lines.push('', '### Read by the code itself', '', 'Not config keys: read where named, by the process entries, dev mode and the `sluice` command.', '',
    '| variable | read by | what |', '|---|---|---|')
  for (const [name, files] of [...direct].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`| ${code(name)} | ${files.map(f => code(f)).join(', ')} | ${cell(DIRECT_MEANINGS[name] ?? '')} |`)
  }
  return lines
}

function anchor (app: string, pointer: string): string {
  return `${app}-${pointer.slice(1).replace(/[^A-Za-z0-9]+/g, '-').toLowerCase()}`
}

function configSection (apps: App[]): string[] {
  const lines = [
    '## Config keys',
    '',
    'Keys are JSON pointers, as the loader\'s errors print them: `/server/port` is `server:` `port:` in the YAML file;',
    '`*` stands for each item of a list. A key without a default and not required is unset unless given.',
    'Descriptions are the comments above each key in the schema\'s source.'
  ]
  for (const app of apps) {
    lines.push('', `### ${app.name}`, '', app.name === 'gateway'
      ? 'Schema: `packages/config/src/gateway.ts` (`gatewayConfigSchema`), shared parts in `packages/config/src/schemas.ts`; env bindings in `apps/gateway/src/config.ts`.'
      : 'Schema: `apps/ingest/src/config-schema.ts` (`ingestConfigSchema`); a feed\'s defaults are `FEED_DEFAULTS` there.', '')
    lines.push('| key | type | default | allowed | env | description |', '|---|---|---|---|---|---|')
    const envOf = (pointer: string) => Object.entries(app.env).filter(([, b]) => b.path === pointer).map(([n]) => code(n)).join(', ')
    for (const row of app.rows) {
      lines.push(`| <a id="${anchor(app.name, row.pointer)}"></a>${code(row.pointer)} | ${row.type} | ${row.default} | ${row.allowed} | ${envOf(row.pointer)} | ${cell(row.description)} |`)
    }
  }
  return lines
}

function errorSection (entries: CatalogueEntry[], classes: Array<{ code: string, file: string, name: string }>): string[] {
  const lines = [
    '## Error codes',
    '',
    'Every code of every catalogue (`createError(code, message, status)` in an `errors.ts`). An HTTP refusal carries',
    '`{"error":{"code","message"}}` with the status; after a WebSocket upgrade `/v1/stream` sends the **wire code** in an',
    '`error` frame (`/v2/broker/` sends the `SLUICE_` code itself); a code without one never reaches a socket.',
    '`%s` and `%d` in a message are filled in when it is raised.',
    '',
    '| code | HTTP | wire code | message | catalogue | raised in |',
    '|---|---|---|---|---|---|'
  ]
  const sample = (e: CatalogueEntry) => Object.assign(new Error(e.message), { code: e.code, statusCode: e.status })
  const wireOf = (e: CatalogueEntry) => FRAME_CATALOGUES.has(e.catalogue) ? wireCode(sample(e)) : undefined
  for (const e of entries) {
    const wire = wireOf(e)
    const raisedIn = e.raisedIn.length > 0 ? e.raisedIn.map(f => code(f)).join(', ') : 'nowhere (catalogued only)'
    lines.push(`| ${code(e.code)} | ${e.status ?? ''} | ${wire ? code(wire) : ''} | ${cell(e.message)} | ${code(e.catalogue)} | ${raisedIn} |`)
  }
  if (classes.length > 0) {
    lines.push('', 'Codes outside the catalogues (an error class of its own, never an HTTP answer):', '',
      '| code | class | declared in |', '|---|---|---|')
    for (const c of classes) lines.push(`| ${code(c.code)} | ${code(c.name)} | ${code(c.file)} |`)
  }
  lines.push('', '### Wire codes (`/v1/stream` error frames)', '',
    'docs/design.md\'s codes; `wireCode()` in `plugins/stream/src/errors.ts` maps each catalogued error to one.', '',
    '| wire code | the catalogued codes it stands for |', '|---|---|')
  for (const wire of WIRE_CODES) {
    const codes = entries.filter(e => wireOf(e) === wire).map(e => code(e.code))
    lines.push(`| ${code(wire)} | ${codes.join(', ') || (wire === 'INTERNAL' ? 'any uncatalogued error (a bug)' : '')} |`)
  }
  lines.push('', '### Close codes', '', 'From `CLOSE` in `packages/protocol/src/codes.ts`.', '', '| code | name | meaning |', '|---|---|---|')
  for (const [name, value] of Object.entries(CLOSE)) {
    const meaning = CLOSE_MEANINGS[name]
    if (meaning === undefined) throw new Error(`close code ${name} (${value}) has no meaning in docs/reference.ts CLOSE_MEANINGS`)
    lines.push(`| ${value} | ${code(name)} | ${cell(meaning)} |`)
  }
  return lines
}

/** The reference as the code declares it now. */
export async function referenceMarkdown (): Promise<string> {
  const declarations = schemaSites(SCHEMA_SOURCES)
  const apps = [gatewayApp(declarations), ingestApp(declarations)]
  const direct = variablesReadInCode()
  const lines = [
    '<!-- Generated by `npm run reference -- write` (docs/reference.ts) from the code: do not edit. -->',
    '',
    '# Reference: environment variables, config keys, error codes',
    '',
    'Generated from the apps\' config schemas and env bindings, the error catalogues and the stream API\'s',
    'codes. `npm run reference -- check` (and `test/docs/reference.test.ts`) fails when this file is stale.',
    '',
    ...envSection(apps, direct),
    '',
    ...configSection(apps),
    '',
    ...errorSection(await catalogueEntries(), classCodes()),
    ''
  ]
  return lines.join('\n')
}

export async function main (argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' } } })
  } catch (error) {
    err.write(`${(error as Error).message}\n${USAGE}`)
    return 2
  }
  const [command, ...rest] = parsed.positionals
  if ((command !== 'write' && command !== 'check') || rest.length > 0) {
    err.write(USAGE)
    return 2
  }
  const file = resolvePath(ROOT, parsed.values.out ?? DEFAULT_OUT)
  const shown = relative(ROOT, file)
  const text = await referenceMarkdown()
  if (command === 'write') {
    await writeFile(file, text)
    out.write(`reference: wrote ${shown}\n`)
    return 0
  }
  const committed = await readFile(file, 'utf8').catch(() => undefined)
  if (committed !== text) {
    err.write(`reference: ${shown} is not what the code generates; run \`npm run reference -- write\` and commit it\n`)
    return 1
  }
  out.write(`reference: ${shown} is up to date\n`)
  return 0
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, error => {
    process.stderr.write(`reference: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
