// Fastify-free: the transform modules a product names (docs/design.md, the
// kafka-websocket compatibility section). They are JS/TS files the admin
// points to, resolved against the policy file that names them and loaded when
// the policy loads, so that a broken module is a policy problem (file, line,
// path) and never a surprise in the hot path. Running them (time budget,
// failure counting) is the route's business: see plugins/compat.
//
// Contract of a module:
//   export default function (message) { return message | null | undefined }
//     message: { topic: string, key: Buffer | null, value: Buffer | null,
//                headers: Record<string, Buffer>, timestamp: number }
//     null discards the message; undefined keeps it as it was passed (and as
//     the function may have changed it).
//   export function configure (options) { return transformFunction }   (optional)
//     called once at load with the product's `options`; a throw is a policy
//     problem at `.../options`. A module without it takes no options.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname, extname, isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { ConfigProblem } from '@sluice/config'

export interface TransformMessage {
  topic: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, Buffer>
  /** ms since the epoch: the record's timestamp (output) or when the gateway received the frame (input) */
  timestamp: number
}

export type TransformFunction = (message: TransformMessage) => TransformMessage | null | undefined

export type TransformDirection = 'input' | 'output'

/** A loaded module, shared by every product that names the same file with the same options. */
export interface LoadedTransform {
  /** changes when the file's content or the options change: a new id is a new transform */
  readonly id: string
  readonly file: string
  readonly fn: TransformFunction
}

export interface ProductTransforms {
  input?: LoadedTransform
  output?: LoadedTransform
}

/** What the policy file says, located, before loading. */
export interface TransformSpec {
  direction: TransformDirection
  /** the absolute path of the module */
  file: string
  options?: Record<string, unknown>
  /** JSON pointer of the reference in its policy file, and `file:line` */
  path: string
  source?: string
  /** set by loadTransforms */
  loaded?: LoadedTransform
}

// Node runs these itself (TypeScript by type stripping); anything else is a mistake in the path.
export const TRANSFORM_EXTENSIONS = new Set(['.js', '.mjs', '.ts', '.mts'])
// A transform is a function of a few lines; a module this big is a wrong path (a bundle, a data file).
export const MAX_TRANSFORM_FILE_BYTES = 1024 * 1024

/** A product's `transforms.input` / `transforms.output` as written: a path, or a path with options. */
export type TransformReference = string | { module: string, options?: Record<string, unknown> }

export function transformSpec (direction: TransformDirection, reference: TransformReference, policyFile: string, path: string, source?: string): TransformSpec {
  const module = typeof reference === 'string' ? reference : reference.module
  const file = isAbsolute(module) ? module : resolve(dirname(policyFile), module)
  return { direction, file, options: typeof reference === 'string' ? undefined : reference.options, path, source }
}

// Loaded modules by id, for the life of the process: an unchanged module
// reloads as the same object (its runtime state, e.g. a disabled flag, stays),
// and an edited one gets a new id. Bounded by the number of edits, as Node's
// own module cache is (an ES module cannot be unloaded).
const loadedById = new Map<string, LoadedTransform>()

async function loadOne (spec: TransformSpec): Promise<{ loaded?: LoadedTransform, problem?: ConfigProblem, digest: string }> {
  const fail = (message: string, path = spec.path) => ({ problem: { path, message, source: spec.source }, digest: '' })
  if (!TRANSFORM_EXTENSIONS.has(extname(spec.file))) return fail(`a transform is a .js, .mjs, .ts or .mts module: "${spec.file}"`)
  let text: Buffer
  try {
    text = await readFile(spec.file)
  } catch (err) {
    return fail(`cannot read transform module: ${(err as Error).message}`)
  }
  if (text.length > MAX_TRANSFORM_FILE_BYTES) return fail(`transform module "${spec.file}" is larger than ${MAX_TRANSFORM_FILE_BYTES} bytes`)
  const digest = createHash('sha256').update(text).digest('hex')
  const id = createHash('sha256').update(spec.file).update('\0').update(digest).update('\0').update(JSON.stringify(spec.options ?? null)).digest('hex').slice(0, 16)
  const known = loadedById.get(id)
  if (known) return { loaded: known, digest }

  let module: Record<string, unknown>
  try {
    // the content hash in the URL: an edited file is imported afresh, an unchanged one comes from Node's cache
    module = await import(`${pathToFileURL(spec.file).href}?v=${digest.slice(0, 16)}`) as Record<string, unknown>
  } catch (err) {
    return fail(`cannot load transform module "${spec.file}": ${String((err as Error)?.message ?? err).split('\n')[0]}`)
  }
  let fn: unknown = module.default
  if (typeof fn !== 'function') return fail(`transform module "${spec.file}" must have a default export function (message) => message | null`)
  if (typeof module.configure === 'function') {
    try {
      fn = (module.configure as (options: Record<string, unknown>) => unknown)(structuredClone(spec.options ?? {}))
    } catch (err) {
      return fail(`options refused by "${spec.file}": ${String((err as Error)?.message ?? err)}`, `${spec.path}/options`)
    }
    if (typeof fn !== 'function') return fail(`configure() of "${spec.file}" must return a function (message) => message | null`)
  } else if (spec.options !== undefined) {
    return fail(`transform module "${spec.file}" takes no options (it exports no configure(options))`, `${spec.path}/options`)
  }
  const loaded: LoadedTransform = Object.freeze({ id, file: spec.file, fn: fn as TransformFunction })
  loadedById.set(id, loaded)
  return { loaded, digest }
}

/**
 * Loads every module the specs name and sets `spec.loaded`. Returns every
 * problem, and a digest of the modules' contents (so that editing a module
 * changes the policy's fingerprint and the hot reload picks it up).
 */
export async function loadTransforms (specs: TransformSpec[]): Promise<{ problems: ConfigProblem[], digest: string }> {
  const problems: ConfigProblem[] = []
  const hash = createHash('sha256')
  for (const spec of specs) {
    const result = await loadOne(spec)
    if (result.problem) problems.push(result.problem)
    spec.loaded = result.loaded
    // the contents only, in the policy's order: the reference itself is in the policy file's text, and the
    // resolved path changes with how the directory was spelled (a relative path, a symlink)
    hash.update(result.digest).update('\0')
  }
  return { problems, digest: specs.length === 0 ? '' : hash.digest('hex') }
}
