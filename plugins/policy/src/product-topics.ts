// Fastify-free: which product of a policy a topic belongs to, and the topics
// a policy names exactly. What creates topics (the admin API, `sluice topics
// create`) asks this, so that a topic is made for a product, never for nothing.
import { compilePattern } from './topics.ts'
import type { PolicyDocument } from './policy.ts'

export interface ProductTopics {
  /** topics named without `*` or `{claim}`: they can be created as they are */
  readonly exact: string[]
  /** the product whose topics include `topic`, if any */
  productOf (topic: string): string | undefined
}

export function productTopics (document: PolicyDocument): ProductTopics {
  const exact: string[] = []
  const matchers: Array<{ product: string, pattern: RegExp }> = []
  for (const [name, product] of Object.entries(document.products)) {
    for (const topic of product.topics) {
      if (!/[*{]/.test(topic.pattern)) exact.push(topic.pattern)
      // product topics take no claim templates (the schema refuses them), so every pattern resolves
      const pattern = compilePattern(topic.pattern, { templates: false }).resolve({})
      if (pattern) matchers.push({ product: name, pattern })
    }
  }
  return { exact, productOf: topic => matchers.find(m => m.pattern.test(topic))?.product }
}
