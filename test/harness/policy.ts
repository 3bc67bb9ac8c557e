// Policy fixtures for the suites (not a test file): one policyDir() that
// writes a policy to a fresh temporary directory, and the policies the suites
// share. JSON is YAML, so a policy built as an object is written as JSON.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { PlanLimits } from '@sluice/policy'

/** The auth, policy and admin suites' policy: prices.* for everyone (basic), orders.{sub} per tenant (gold). */
export const TEST_POLICY = `
version: 1
plans:
  basic:
    limits: { connections: 5, connectsPerMinute: 60, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 }
  gold:
    limits: { connections: 50, connectsPerMinute: 600, deliveredPerSecond: 1000, publishedPerSecond: 100, bytesPerSecond: 1000000, dailyQuota: 10000000 }
products:
  market:
    plans: [basic, gold]
    topics:
      - pattern: prices.*
        encoding: json
      - pattern: orders.*
        encoding: json
        slowClient: evict
rules:
  - name: prices
    product: market
    plan: basic
    subscribe: ['prices.*']
  - name: tenant-orders
    product: market
    plan: gold
    subscribe: ['orders.{sub}']
    publish: ['orders.{sub}']
`

/** Generous everywhere: a rate-limit suite lowers the limit it is about. */
export const GENEROUS: PlanLimits = {
  connections: 1000,
  connectsPerMinute: 100_000,
  deliveredPerSecond: 100_000,
  publishedPerSecond: 100_000,
  bytesPerSecond: 100_000_000,
  dailyQuota: 100_000_000
}

/** The rate-limit suites' policy: plan `test` with these limits, every JWT subject on it for `rl.*` topics. */
export function limitsPolicy (limits: Partial<PlanLimits>, slowClient: 'lagging' | 'evict' = 'lagging'): string {
  return JSON.stringify({
    version: 1,
    plans: { test: { limits: { ...GENEROUS, ...limits } } },
    products: { market: { plans: ['test'], topics: [{ pattern: 'rl.*', encoding: 'json', slowClient }] } },
    rules: [{ name: 'everyone', product: 'market', plan: 'test', match: { kinds: ['jwt'] }, subscribe: ['rl.*'], publish: ['rl.*'] }]
  })
}

// the /v2/broker/ suites' plan: generous, most of them are about the protocol, not about plans
const COMPAT_LIMITS = { connections: 1000, connectsPerMinute: 10000, deliveredPerSecond: 1000000, publishedPerSecond: 100000, bytesPerSecond: 1000000000, dailyQuota: 1000000000 }

/** A policy file: one plan (`limits` over generous defaults), and products (name → YAML of their topics and transforms) for the dev identity. */
export function policyYaml (products: Record<string, { topics: string, transforms?: string, subscribe: string[], publish: string[] }>, limits: Partial<typeof COMPAT_LIMITS> = {}): string {
  return `
version: 1
plans:
  test: { limits: ${JSON.stringify({ ...COMPAT_LIMITS, ...limits })} }
products:
${Object.entries(products).map(([name, p]) => `  ${name}:
    plans: [test]
    topics: ${p.topics}
${p.transforms ? `    transforms: ${p.transforms}\n` : ''}`).join('')}
rules:
${Object.entries(products).map(([name, p]) => `  - name: ${name}-rule
    product: ${name}
    plan: test
    subscribe: ${JSON.stringify(p.subscribe)}
    publish: ${JSON.stringify(p.publish)}
`).join('')}
`
}

/** A fresh directory holding policy.yaml and any other files (by path relative to it, e.g. transforms/x.ts). */
export function policyDir (yaml = TEST_POLICY, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-policy-'))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  writeFileSync(join(dir, 'policy.yaml'), yaml)
  return dir
}
