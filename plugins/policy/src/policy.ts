// Fastify-free: a compiled policy, the AccessControl the stream asks on every
// frame. Which rules apply to an identity (its kind, its claims, an API key's
// product and plan) is worked out once per identity and policy; a topic is
// then tested against the grants' patterns. Reading the directory is
// policy-dir.ts; validating and compiling, compile.ts.
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl, AccessDecision, Action } from './access.ts'
import { isTopicName, type TopicPattern } from './topics.ts'
import type { ProductTransforms, TransformSpec } from './transforms.ts'
import type { PlanDocument, PlanLimits, ProductDocument, ProductTopicDocument, ResumeWindowDocument, RuleDocument } from './schema.ts'

export interface PolicyDocument {
  plans: Record<string, PlanDocument>
  products: Record<string, ProductDocument>
  rules: RuleDocument[]
}

export interface CompiledTopic extends ProductTopicDocument {
  matcher: RegExp
}

export interface CompiledProduct {
  name: string
  plans: ReadonlySet<string>
  topics: CompiledTopic[]
  /** the modules the product names; `loaded` is set by loadTransforms before the policy is used */
  transforms: { input?: TransformSpec, output?: TransformSpec }
  resume?: ResumeWindowDocument
}

export interface CompiledRule {
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
