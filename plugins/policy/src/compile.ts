// A policy's files validated, merged and compiled into a Policy. Every
// problem is reported at once with its file, line and JSON path, by the same
// loader the gateway's config uses: the schema's (schema.ts), then what no
// schema says: names unique across files, references to plans and products
// that exist, rules that grant something within their product's topics.
import { parseYaml, validate, type ConfigProblem } from '@sluice/config'
import type { Action } from './access.ts'
import type { PolicyFile } from './policy-dir.ts'
import { Policy, type CompiledProduct, type CompiledRule, type CompiledTopic, type PolicyDocument } from './policy.ts'
import type { PlanDocument, PolicyFileDocument, ProductDocument, RuleDocument } from './schema.ts'
import { policyFileSchema } from './schema.ts'
import { compilePattern, type TopicPattern } from './topics.ts'
import { transformSpec } from './transforms.ts'

// the schema's name rule, checked here so that a bad name gets one clear message
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
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
