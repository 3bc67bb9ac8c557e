// Fastify-free: the public product catalogue (GET /v1/products) from the
// policy in force. It shows what a client developer may buy and use: products,
// their topics and message schemas, the plans and their limits, and what each
// access rule grants. It never shows a rule's `match` (claims and roles are
// the admin's business), its name, or a product's transform modules.
import type { PolicyDocument, PlanLimits } from '@sluice/policy'
import { planLimitsSchema } from '@sluice/policy/schema'
import { exampleFor } from './example.ts'

export interface CataloguePlan {
  name: string
  title: string
  description?: string
  limits: PlanLimits
}

export interface CatalogueTopic {
  pattern: string
  encoding: 'json' | 'text' | 'base64'
  slowClient: 'lagging' | 'evict'
  description?: string
  schema?: Record<string, unknown>
  /** generated from the schema; without one, a value of the topic's encoding */
  example: unknown
  /** the product's resume window (how much of the topic's recent records a node keeps for resumes), when it sets one */
  resume?: { windowBytes?: number, windowMs?: number }
}

export interface CatalogueAccess {
  plan: string
  description?: string
  subscribe: string[]
  publish: string[]
}

export interface CatalogueProduct {
  name: string
  title: string
  description?: string
  plans: CataloguePlan[]
  topics: CatalogueTopic[]
  access: CatalogueAccess[]
  /** where this product's own AsyncAPI document is served */
  asyncapi: string
}

export interface Catalogue {
  products: CatalogueProduct[]
}

// what a topic without a schema shows as its example, by encoding (the frame's `value`)
const PLAIN_EXAMPLES = { json: {}, text: 'text', base64: Buffer.from('bytes').toString('base64') } as const

export function asyncapiPath (product: string): string {
  return `/asyncapi/${product}.json`
}

export function topicExample (topic: { encoding?: 'json' | 'text' | 'base64', schema?: Record<string, unknown> }): unknown {
  return topic.schema ? exampleFor(topic.schema) : PLAIN_EXAMPLES[topic.encoding ?? 'json']
}

export function catalogueProduct (document: PolicyDocument, name: string): CatalogueProduct | undefined {
  if (!Object.hasOwn(document.products, name)) return undefined
  const product = document.products[name]!
  const plans = product.plans.flatMap(plan => {
    if (!Object.hasOwn(document.plans, plan)) return []
    const { title, description, limits } = document.plans[plan]!
    return [{ name: plan, title: title ?? plan, ...(description ? { description } : {}), limits: { ...limits } }]
  })
  const topics = product.topics.map(topic => ({
    pattern: topic.pattern,
    encoding: topic.encoding ?? 'json',
    slowClient: topic.slowClient ?? 'lagging',
    ...(topic.description ? { description: topic.description } : {}),
    ...(topic.schema ? { schema: topic.schema } : {}),
    example: topicExample(topic),
    ...(product.resume ? { resume: { ...product.resume } } : {})
  }))
  const access = document.rules.filter(rule => rule.product === name).map(rule => ({
    plan: rule.plan,
    ...(rule.description ? { description: rule.description } : {}),
    subscribe: [...(rule.subscribe ?? [])],
    publish: [...(rule.publish ?? [])]
  }))
  return {
    name,
    title: product.title ?? name,
    ...(product.description ? { description: product.description } : {}),
    plans,
    topics,
    access,
    asyncapi: asyncapiPath(name)
  }
}

export function catalogue (document: PolicyDocument | undefined): Catalogue {
  if (!document) return { products: [] }
  return { products: Object.keys(document.products).map(name => catalogueProduct(document, name)!) }
}

const limitSchema = { type: 'integer', minimum: 0 }
const text = { type: 'string' }

/** A plan and its limits, as the catalogue and GET /v1/me show it. */
export const planSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'title', 'limits'],
  properties: {
    name: text,
    title: text,
    description: text,
    // the policy's own list of limits: a limit added there cannot go missing here
    limits: planLimitsSchema(limitSchema)
  }
} as const

/** The response schema of GET /v1/products (Fastify serializes with it; openapi/ documents it). */
export const catalogueSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['products'],
  properties: {
    products: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'title', 'plans', 'topics', 'access', 'asyncapi'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' },
          title: text,
          description: text,
          plans: { type: 'array', items: planSchema },
          topics: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['pattern', 'encoding', 'slowClient', 'example'],
              properties: {
                pattern: text,
                encoding: { type: 'string', enum: ['json', 'text', 'base64'] },
                slowClient: { type: 'string', enum: ['lagging', 'evict'] },
                description: text,
                schema: { type: 'object', additionalProperties: true, description: 'The JSON Schema of the record values, as the product declares it' },
                example: { description: 'An example value: from the schema when there is one, else a value of the encoding' },
                resume: {
                  type: 'object',
                  additionalProperties: false,
                  description: 'How much of the topic\'s recent records each node keeps at least, as the product sets it: a resume inside them is written from memory; 0 keeps none; absent, the gateway\'s own window',
                  properties: { windowBytes: { type: 'integer', minimum: 0 }, windowMs: { type: 'integer', minimum: 0 } }
                }
              }
            }
          },
          access: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['plan', 'subscribe', 'publish'],
              properties: {
                plan: text,
                description: text,
                subscribe: { type: 'array', items: text, description: 'Topic patterns as written; {claim} is filled from the credential' },
                publish: { type: 'array', items: text }
              }
            }
          },
          asyncapi: { type: 'string', description: 'The path of this product\'s AsyncAPI document' }
        }
      }
    }
  }
} as const
