// Fastify-free: what the policy in force grants one credential (GET /v1/me),
// so that the portal can tell its reader who they are to this gateway and
// fill examples with their own topics (orders.{sub} is orders.dev for the dev
// credential). Computed by the same Policy that authorizes every frame: the
// rules that match the identity (Policy.grants), their patterns with the
// identity's claims filled in, and the plan its connections are held to
// (subjectPlan, what the rate limiter uses). Like the catalogue it never shows
// a rule's `match` or name, nor the identity's other claims.
import type { Policy } from '@sluice/policy'
import { subjectPlan } from '@sluice/policy/plans'
import { fillClaims } from '@sluice/policy/topics'
import { planSchema, type CataloguePlan } from './catalogue.ts'

// the identity as the policy takes it (@sluice/auth's Identity, through the package this one depends on)
type Identity = Parameters<Policy['grants']>[0]

export interface ReaderProduct {
  name: string
  title: string
  /** the plans of the rules that grant this identity something here, in rule order */
  plans: string[]
  /** topic names or patterns, claims filled in */
  subscribe: string[]
  publish: string[]
}

export interface Reader {
  subject: string
  kind: Identity['kind']
  /** the plan its connections and deliveries are held to; absent when no rule grants it anything */
  plan?: CataloguePlan
  products: ReaderProduct[]
}

export function reader (policy: Policy | undefined, identity: Identity): Reader {
  const out: Reader = { subject: identity.subject, kind: identity.kind, products: [] }
  if (!policy) return out
  const document = policy.document
  const plan = subjectPlan(policy, identity)
  if (plan) {
    const { title, description } = document.plans[plan.name]!
    out.plan = { name: plan.name, title: title ?? plan.name, ...(description ? { description } : {}), limits: { ...plan.limits } }
  }
  const products = new Map<string, ReaderProduct>()
  for (const grant of policy.grants(identity)) {
    const rule = document.rules.find(r => r.name === grant.rule)
    if (!rule) continue
    const name = grant.product.name
    let product = products.get(name)
    if (!product) {
      product = { name, title: document.products[name]?.title ?? name, plans: [], subscribe: [], publish: [] }
      products.set(name, product)
    }
    if (!product.plans.includes(grant.plan)) product.plans.push(grant.plan)
    for (const action of ['subscribe', 'publish'] as const) {
      for (const source of rule[action] ?? []) {
        const topic = fillClaims(source, identity.claims)
        if (topic !== undefined && !product[action].includes(topic)) product[action].push(topic)
      }
    }
  }
  out.products = [...products.values()]
  return out
}

const text = { type: 'string' }
const topics = { type: 'array', items: text }

/** The response schema of GET /v1/me (Fastify serializes with it; openapi/ documents it). */
export const readerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['subject', 'kind', 'products'],
  properties: {
    subject: text,
    kind: { type: 'string', enum: ['jwt', 'api-key', 'dev'] },
    plan: planSchema,
    products: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'title', 'plans', 'subscribe', 'publish'],
        properties: {
          name: text,
          title: text,
          plans: { type: 'array', items: text },
          subscribe: topics,
          publish: topics
        }
      }
    }
  }
} as const
