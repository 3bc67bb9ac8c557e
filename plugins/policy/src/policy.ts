// Fastify-free: a policy directory read, validated and compiled into the
// AccessControl the stream asks on every frame. Every problem is reported at
// once with its file, line and JSON path, by the same loader the gateway's
// config uses. The CLI (`policy check`), the hot reload and the admin API's
// validate all run loadPolicyDir / compilePolicy.
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, isAbsolute, join, resolve } from 'node:path'
import { parseYaml, validate, type ConfigProblem } from '@sluice/config'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl, AccessDecision, Action } from './access.ts'
import { PolicyDirMissingError } from './errors.ts'
import { compilePattern, isTopicName, type TopicPattern } from './topics.ts'
import { loadTransforms, transformSpec, type ProductTransforms, type TransformSpec } from './transforms.ts'
import {
  policyFileSchema, type PlanDocument, type PlanLimits, type PolicyFileDocument, type ProductDocument,
  type ProductTopicDocument, type ResumeWindowDocument, type RuleDocument
} from './schema.ts'

// An admin-edited directory, not a data store: more than this is a mistake (or a mount of the wrong volume).
export const MAX_POLICY_FILES = 100
// 1 MiB of YAML is tens of thousands of rules; it also bounds what a reload reads every poll.
export const MAX_POLICY_FILE_BYTES = 1024 * 1024
const POLICY_FILE = /^[^.].*\.ya?ml$/
// the schema's name rule, checked here so that a bad name gets one clear message
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export interface PolicyFile {
  /** the name shown in errors: the path as given */
  file: string
  text: string
}

export interface PolicyDocument {
  plans: Record<string, PlanDocument>
  products: Record<string, ProductDocument>
  rules: RuleDocument[]
}

export interface LoadResult {
  /** the compiled policy, when there is no problem */
  policy?: Policy
  problems: ConfigProblem[]
  files: string[]
  /** sha256 of the files' names (within the directory) and contents: what a reload compares to skip unchanged files */
  fingerprint: string
}

/**
 * Reads the *.yaml / *.yml files of a directory (following symlinks, as a
 * Kubernetes ConfigMap mount needs; names starting with a dot are skipped).
 */
/**
 * Throws SLUICE_POLICY_DIR_MISSING, naming the path as given and as resolved, unless `dir` is a directory
 * (a symlink to one is). A gateway started on a mistyped path would otherwise serve with no policy, refusing
 * every client while it looks up.
 */
export async function checkPolicyDir (dir: string): Promise<void> {
  const shown = `"${dir}"${isAbsolute(dir) ? '' : ` (${resolve(dir)})`}`
  let info
  try {
    info = await stat(dir)
  } catch (err) {
    throw new PolicyDirMissingError(shown, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (err as Error).message)
  }
  if (!info.isDirectory()) throw new PolicyDirMissingError(shown, 'it is not a directory')
}

export async function readPolicyDir (dir: string): Promise<{ files: PolicyFile[], problems: ConfigProblem[] }> {
  const problems: ConfigProblem[] = []
  let names: string[]
  try {
    names = (await readdir(dir)).filter(n => POLICY_FILE.test(n)).sort()
  } catch (err) {
    return { files: [], problems: [{ path: '', message: `cannot read the policy directory: ${(err as Error).message}`, source: dir }] }
  }
  if (names.length > MAX_POLICY_FILES) {
    return { files: [], problems: [{ path: '', message: `more than ${MAX_POLICY_FILES} policy files`, source: dir }] }
  }
  const files: PolicyFile[] = []
  for (const name of names) {
    const file = join(dir, name)
    try {
      const info = await stat(file)
      if (!info.isFile()) continue
      if (info.size > MAX_POLICY_FILE_BYTES) {
        problems.push({ path: '', message: `larger than ${MAX_POLICY_FILE_BYTES} bytes`, source: file })
        continue
      }
      files.push({ file, text: await readFile(file, 'utf8') })
    } catch (err) {
      // a file renamed away between readdir and read: the next reload sees the new state
      problems.push({ path: '', message: `cannot read: ${(err as Error).message}`, source: file })
    }
  }
  if (files.length === 0 && problems.length === 0) problems.push({ path: '', message: 'no policy files (*.yaml, *.yml)', source: dir })
  return { files, problems }
}

/**
 * The policy's version: its files' names within the directory and their contents, and nothing of how the
 * directory was spelled (`policies/`, its absolute path, a symlink to it), so that `policy check`, /readyz
 * and every node name the same files the same version.
 */
export function fingerprint (files: PolicyFile[]): string {
  const hash = createHash('sha256')
  for (const f of files) hash.update(basename(f.file)).update('\0').update(f.text).update('\0')
  return hash.digest('hex')
}

export async function loadPolicyDir (dir: string): Promise<LoadResult> {
  const read = await readPolicyDir(dir)
  const compiled = compilePolicy(read.files)
  const problems = [...read.problems, ...compiled.problems]
  // transform modules load only into an otherwise valid policy; their contents count in the fingerprint
  let transforms = ''
  if (compiled.policy && problems.length === 0) {
    const loaded = await loadTransforms(compiled.policy.transformSpecs())
    problems.push(...loaded.problems)
    transforms = loaded.digest
  }
  return {
    policy: problems.length === 0 ? compiled.policy : undefined,
    problems,
    files: read.files.map(f => f.file),
    fingerprint: transforms === '' ? fingerprint(read.files) : createHash('sha256').update(fingerprint(read.files)).update(transforms).digest('hex')
  }
}

interface Located<T> {
  value: T
  /** JSON pointer inside its file */
  path: string
  /** the policy file that declares it */
  file: string
  locate (pointer: string): string | undefined
}

/** Validates every file, merges them and compiles the result; every problem at once. */
export function compilePolicy (files: PolicyFile[]): { policy?: Policy, problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = []
  const plans = new Map<string, Located<PlanDocument>>()
  const products = new Map<string, Located<ProductDocument>>()
  const rules: Array<Located<RuleDocument>> = []

  for (const { file, text } of files) {
    const parsed = parseYaml(text, file)
    problems.push(...parsed.problems)
    if (parsed.problems.length > 0) continue
    if (parsed.value === null || parsed.value === undefined) continue // an empty file declares nothing
    const checked = validate<PolicyFileDocument>(policyFileSchema, parsed.value, parsed.locate)
    problems.push(...checked.problems.map(p => ({ ...p, source: p.source ?? file })))
    // Entries are merged and cross-checked even when the schema found problems
    // in them, so that every problem is listed in one pass; any problem at all
    // means no policy is produced, so the checks below only need to be defensive.
    const doc = checked.value
    if (!isObject(doc)) continue
    const named = <T>(kind: 'plan' | 'product', section: unknown, into: Map<string, Located<T>>) => {
      if (!isObject(section)) return
      for (const [name, value] of Object.entries(section)) {
        const path = `/${kind}s/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`
        if (!NAME.test(name)) {
          problems.push({ path, message: `${kind} name "${name}" must be lower-case letters, digits, - and _ (at most 63)`, source: parsed.locate(path) })
          continue
        }
        const earlier = into.get(name)
        if (earlier) problems.push({ path, message: `${kind} "${name}" is already declared (${earlier.locate(earlier.path)})`, source: parsed.locate(path) })
        else into.set(name, { value: value as T, path, file, locate: parsed.locate })
      }
    }
    named<PlanDocument>('plan', doc.plans, plans)
    named<ProductDocument>('product', doc.products, products)
    if (Array.isArray(doc.rules)) {
      doc.rules.forEach((rule, i) => {
        if (isObject(rule)) rules.push({ value: rule as unknown as RuleDocument, path: `/rules/${i}`, file, locate: parsed.locate })
      })
    }
  }

  const compiledProducts = new Map<string, CompiledProduct>()
  for (const [name, { value: product, path, locate, file }] of products) {
    const offered = Array.isArray(product.plans) ? product.plans : []
    offered.forEach((plan, i) => {
      if (typeof plan === 'string' && !plans.has(plan)) problems.push({ path: `${path}/plans/${i}`, message: `unknown plan "${plan}"`, source: locate(`${path}/plans/${i}`) })
    })
    const topics: CompiledTopic[] = []
    ;(Array.isArray(product.topics) ? product.topics : []).forEach((topic, i) => {
      if (typeof topic?.pattern !== 'string') return
      try {
        topics.push({ ...topic, matcher: compilePattern(topic.pattern, { templates: false }).resolve({})! })
      } catch (err) {
        problems.push({ path: `${path}/topics/${i}/pattern`, message: (err as Error).message, source: locate(`${path}/topics/${i}/pattern`) })
      }
    })
    const transforms: CompiledProduct['transforms'] = {}
    for (const direction of ['input', 'output'] as const) {
      const reference = isObject(product.transforms) ? product.transforms[direction] : undefined
      if (reference === undefined) continue
      const at = `${path}/transforms/${direction}`
      // the schema has checked the shape already (a problem there means no policy at all)
      if (typeof reference === 'string' || (isObject(reference) && typeof reference.module === 'string')) {
        transforms[direction] = transformSpec(direction, reference, file, at, locate(at))
      }
    }
    const resume = isObject(product.resume) ? product.resume : undefined
    compiledProducts.set(name, { name, plans: new Set(offered), topics, transforms, resume })
  }

  const compiledRules: CompiledRule[] = []
  const ruleNames = new Map<string, string | undefined>()
  for (const { value: rule, path, locate } of rules) {
    const at = (p: string) => ({ path: `${path}${p}`, source: locate(`${path}${p}`) })
    if (typeof rule.name === 'string') {
      if (ruleNames.has(rule.name)) problems.push({ ...at('/name'), message: `rule "${rule.name}" is already declared (${ruleNames.get(rule.name)})` })
      else ruleNames.set(rule.name, locate(`${path}/name`))
    }
    const product = compiledProducts.get(rule.product)
    if (typeof rule.product === 'string' && !product) problems.push({ ...at('/product'), message: `unknown product "${rule.product}"` })
    if (typeof rule.plan === 'string') {
      if (!plans.has(rule.plan)) problems.push({ ...at('/plan'), message: `unknown plan "${rule.plan}"` })
      else if (product && !product.plans.has(rule.plan)) problems.push({ ...at('/plan'), message: `product "${rule.product}" does not offer plan "${rule.plan}"` })
    }
    const listed = (action: Action): unknown[] => Array.isArray(rule[action]) ? rule[action] : []
    if (listed('subscribe').length === 0 && listed('publish').length === 0) {
      problems.push({ ...at(''), message: 'grants nothing: list `subscribe` or `publish` topics' })
    }
    const compile = (action: Action): TopicPattern[] => listed(action).flatMap((source, i) => {
      if (typeof source !== 'string') return []
      try {
        const pattern = compilePattern(source, { templates: true })
        // the rule may only reach topics its product declares (checked on a sample topic)
        if (product && !product.topics.some(t => t.matcher.test(pattern.sample))) {
          problems.push({ ...at(`/${action}/${i}`), message: `"${source}" is not among the topics of product "${rule.product}"` })
        }
        return [pattern]
      } catch (err) {
        problems.push({ ...at(`/${action}/${i}`), message: (err as Error).message })
        return []
      }
    })
    const claims = isObject(rule.match?.claims) ? rule.match.claims : {}
    compiledRules.push({
      name: rule.name,
      product: rule.product,
      plan: rule.plan,
      kinds: Array.isArray(rule.match?.kinds) ? new Set(rule.match.kinds) : undefined,
      claims: Object.entries(claims).map(([name, expected]) => ({
        name,
        values: new Set((Array.isArray(expected) ? expected : [expected]).map(String))
      })),
      subscribe: compile('subscribe'),
      publish: compile('publish')
    })
  }

  if (problems.length > 0) return { problems }
  const document: PolicyDocument = {
    plans: Object.fromEntries([...plans].map(([n, p]) => [n, p.value])),
    products: Object.fromEntries([...products].map(([n, p]) => [n, p.value])),
    rules: rules.map(r => r.value)
  }
  return { policy: new Policy(document, compiledProducts, compiledRules), problems }
}

interface CompiledTopic extends ProductTopicDocument {
  matcher: RegExp
}

interface CompiledProduct {
  name: string
  plans: ReadonlySet<string>
  topics: CompiledTopic[]
  /** the modules the product names; `loaded` is set by loadTransforms before the policy is used */
  transforms: { input?: TransformSpec, output?: TransformSpec }
  resume?: ResumeWindowDocument
}

interface CompiledRule {
  name: string
  product: string
  plan: string
  kinds?: ReadonlySet<string>
  claims: Array<{ name: string, values: ReadonlySet<string> }>
  subscribe: TopicPattern[]
  publish: TopicPattern[]
}

/** A rule as it applies to one identity: templates filled, plan decided. */
interface Grant {
  rule: string
  product: CompiledProduct
  plan: string
  subscribe: RegExp[]
  publish: RegExp[]
}

// OAuth's scope claims are space-separated lists (RFC 6749 §3.3, RFC 8693 §4.2)
const LIST_CLAIMS = new Set(['scope', 'scp'])

function claimValues (name: string, value: unknown): string[] {
  if (Array.isArray(value)) return value.filter(v => ['string', 'number', 'boolean'].includes(typeof v)).map(String)
  if (typeof value === 'string') return LIST_CLAIMS.has(name) ? value.split(/\s+/).filter(Boolean) : [value]
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)]
  return []
}

/** A compiled, immutable policy. A reload builds a new one. */
export class Policy implements AccessControl {
  readonly document: PolicyDocument
  readonly #products: ReadonlyMap<string, CompiledProduct>
  readonly #rules: CompiledRule[]
  // identities live as long as their socket; their grants are computed once per policy
  readonly #grants = new WeakMap<Identity, Grant[]>()
  readonly #loaded = new WeakMap<CompiledProduct, ProductTransforms>()
  readonly #resumeSet: boolean

  constructor (document: PolicyDocument, products: ReadonlyMap<string, CompiledProduct>, rules: CompiledRule[]) {
    this.document = document
    this.#products = products
    this.#rules = rules
    this.#resumeSet = [...products.values()].some(p => p.resume !== undefined)
  }

  /**
   * The `resume` of every product whose topics include `topic` ({} for one that sets none), which the hub
   * sizes the topic's window from; empty when no product serves it. Asked when a topic's live feed starts and
   * after each reload, never per frame.
   */
  resumeWindows (topic: string): ResumeWindowDocument[] {
    // no product says anything: the gateway's defaults, with no pattern tested
    if (!this.#resumeSet) return []
    const out: ResumeWindowDocument[] = []
    for (const product of this.#products.values()) {
      if (product.topics.some(t => t.matcher.test(topic))) out.push(product.resume ?? {})
    }
    return out
  }

  plan (name: string): PlanLimits | undefined {
    return Object.hasOwn(this.document.plans, name) ? this.document.plans[name]!.limits : undefined
  }

  product (name: string): ProductDocument | undefined {
    return Object.hasOwn(this.document.products, name) ? this.document.products[name] : undefined
  }

  /** The rules that apply to this identity, templates resolved. */
  grants (identity: Identity): Grant[] {
    let grants = this.#grants.get(identity)
    if (!grants) {
      grants = this.#rules.flatMap(rule => {
        const grant = this.#grant(rule, identity)
        return grant ? [grant] : []
      })
      this.#grants.set(identity, grants)
    }
    return grants
  }

  #grant (rule: CompiledRule, identity: Identity): Grant | undefined {
    if (rule.kinds && !rule.kinds.has(identity.kind)) return undefined
    for (const { name, values } of rule.claims) {
      if (!claimValues(name, identity.claims[name]).some(v => values.has(v))) return undefined
    }
    const product = this.#products.get(rule.product)!
    let plan = rule.plan
    if (identity.kind === 'api-key') {
      // an API key was sold for one product and plan: only that product's
      // rules apply, under the key's plan while the product still offers it
      if (identity.claims.product !== rule.product) return undefined
      const keyPlan = identity.claims.plan
      if (typeof keyPlan !== 'string' || !product.plans.has(keyPlan)) return undefined
      plan = keyPlan
    }
    const resolve = (patterns: TopicPattern[]) => patterns.flatMap(p => {
      const matcher = p.resolve(identity.claims)
      return matcher ? [matcher] : []
    })
    const subscribe = resolve(rule.subscribe)
    const publish = resolve(rule.publish)
    if (subscribe.length === 0 && publish.length === 0) return undefined
    return { rule: rule.name, product, plan, subscribe, publish }
  }

  /** Whether any rule gives this identity access to anything. */
  hasAccess (identity: Identity): boolean {
    return this.grants(identity).length > 0
  }

  /** The transform modules the products name, for loadTransforms (loadPolicyDir loads them). */
  transformSpecs (): TransformSpec[] {
    return [...this.#products.values()].flatMap(p => [p.transforms.input, p.transforms.output].filter(s => s !== undefined))
  }

  /** A product's loaded transforms; null when it names one that is not loaded (compilePolicy alone). */
  #transforms (product: CompiledProduct): ProductTransforms | undefined | null {
    const { input, output } = product.transforms
    if (!input && !output) return undefined
    if ((input && !input.loaded) || (output && !output.loaded)) return null
    let loaded = this.#loaded.get(product)
    if (!loaded) {
      loaded = Object.freeze({ input: input?.loaded, output: output?.loaded })
      this.#loaded.set(product, loaded)
    }
    return loaded
  }

  authorize (identity: Identity, action: Action, topic: string): AccessDecision {
    if (!isTopicName(topic)) return { allowed: false, reason: 'not a valid topic name' }
    for (const grant of this.grants(identity)) {
      const patterns = action === 'subscribe' ? grant.subscribe : grant.publish
      if (!patterns.some(p => p.test(topic))) continue
      const terms = grant.product.topics.find(t => t.matcher.test(topic))
      if (!terms) continue
      const transforms = this.#transforms(grant.product)
      // a product's transforms may be what keeps data from a client: without them loaded, no access
      if (transforms === null) return { allowed: false, reason: `the transforms of product "${grant.product.name}" are not loaded` }
      const decision: AccessDecision = { allowed: true, product: grant.product.name, plan: grant.plan, encoding: terms.encoding, slowClient: terms.slowClient }
      if (transforms) decision.transforms = transforms
      return decision
    }
    return { allowed: false, reason: `no access rule grants ${action} on this topic` }
  }

  onChange (): () => void {
    // a compiled policy never changes; LivePolicy carries the listeners
    return () => {}
  }
}
