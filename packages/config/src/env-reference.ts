// `${env:NAME}` references in config values, for both apps: the syntax of
// Kafka Connect's EnvVarConfigProvider, so that a migrated connector config
// keeps its references and a secret never has to be written into a file.
//
// A reference is resolved once. What comes from the environment (a referenced
// variable's value, or a variable bound to a path) is never read for
// references again, so one variable cannot pull in another; a secret that
// still looks like a reference after that is refused (unresolvedReference),
// because it would otherwise become the secret itself: an HMAC key of
// seventeen well-known characters.
import type { ConfigProblem } from './load.ts'

// built apart: '${' in a plain string reads to the linter as a template literal written by mistake
const DOLLAR = '$'
export const REFERENCE_SYNTAX = DOLLAR + '{env:NAME}'
export const ENV_REFERENCE = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g
const WHOLE_REFERENCE = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/
const ANY_ENV_REFERENCE = /\$\{env:([^}]*)\}?/
// shell, compose and Helm-style interpolation that nothing here performs: ${NAME}, ${NAME:-default}
const BRACED_REFERENCE = /\$\{[A-Za-z_][^}]*\}/
// $NAME as the whole value, or as a URL's password or host ("redis://:$REDIS_PASSWORD@redis:6379");
// a random secret may hold a "$" anywhere else, so the shape is refused only where a shell left it
const BARE_REFERENCE = /(^|[:@/])\$[A-Za-z_][A-Za-z0-9_]*($|[:@/])/

export interface ReferenceContext {
  env: Record<string, string | undefined>
  /** where an unset variable is reported */
  problems: ConfigProblem[]
  /** the source (`file:line`) of a JSON pointer, for the problems */
  locate: (pointer: string) => string | undefined
  /** told which variable a value at a pointer came from, so later problems there can name it */
  resolved?: (pointer: string, name: string) => void
}

function unset (name: string, path: string, ctx: ReferenceContext): void {
  ctx.problems.push({ path, message: `environment variable ${name} is not set`, source: ctx.locate(path) })
}

/** Replaces ${env:NAME} references; an unset (or empty) variable is a problem at `path` (its value never appears in a message). */
export function resolveReferences (text: string, path: string, ctx: ReferenceContext): string {
  return text.replace(ENV_REFERENCE, (_match, name: string) => {
    const value = ctx.env[name]
    if (value === undefined || value === '') {
      unset(name, path, ctx)
      return ''
    }
    ctx.resolved?.(path, name)
    return value
  })
}

/** Resolves every string inside `value` (arrays and mappings, keys left alone); each problem at the string's own pointer. */
export function resolveReferencesDeep (value: unknown, path: string, ctx: ReferenceContext): unknown {
  if (typeof value === 'string') return resolveReferences(value, path, ctx)
  if (Array.isArray(value)) return value.map((v, i) => resolveReferencesDeep(v, `${path}/${i}`, ctx))
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveReferencesDeep(v, `${path}/${escapePointer(k)}`, ctx)]))
  }
  return value
}

/**
 * A list field written as one whole reference, `issuers: ${env:JWT_ISSUERS}`:
 * the variable holds a JSON array (`[...]`, for lists of mappings such as
 * issuers) or comma-separated strings (`a,b`, as KAFKA_BROKERS). Returns
 * undefined when `text` is not one whole reference. A list from the
 * environment is taken as it is: nothing in it is resolved again.
 */
export function resolveListReference (text: string, path: string, ctx: ReferenceContext): unknown[] | undefined {
  const whole = WHOLE_REFERENCE.exec(text.trim())
  if (!whole) return undefined
  const name = whole[1]!
  const raw = ctx.env[name]
  if (raw === undefined || raw.trim() === '') {
    unset(name, path, ctx)
    return []
  }
  ctx.resolved?.(path, name)
  if (!raw.trimStart().startsWith('[')) return raw.split(',').map(s => s.trim()).filter(Boolean)
  try {
    const parsed: unknown = JSON.parse(raw)
    if (Array.isArray(parsed)) return parsed
  } catch {}
  // JSON.parse's own message quotes the text, and the text may hold a secret
  ctx.problems.push({ path, message: `environment variable ${name} starts with "[" but is not a JSON array`, source: ctx.locate(path) })
  return []
}

/**
 * Why `text` is not a usable value: it still holds a ${env:...} reference
 * (anywhere a reference could have been resolved), or, for a secret, a
 * ${NAME} or $NAME shape that some other tool was meant to expand. The
 * message never quotes the value; it names a variable at most.
 */
export function unresolvedReference (text: string, secret: boolean): string | undefined {
  const env = ANY_ENV_REFERENCE.exec(text)
  if (env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*\}/.test(text.slice(env.index + 6))) return `holds a malformed ${REFERENCE_SYNTAX}: a name is letters, digits and _, closed by }`
    return `holds an unresolved reference to ${env[1]}: ${REFERENCE_SYNTAX} is resolved once, in the config file, and never in a value from the environment`
  }
  if (!secret) return undefined
  if (BRACED_REFERENCE.test(text) || BARE_REFERENCE.test(text)) {
    return `looks like an unexpanded ${DOLLAR}{NAME} or ${DOLLAR}NAME, not a secret: write ${REFERENCE_SYNTAX} in the config file, or give the value itself`
  }
  return undefined
}

export function escapePointer (segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1')
}
