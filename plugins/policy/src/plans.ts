// Which plan a subject's connection and delivery limits come from. They are
// checked before the upgrade, where only the identity is known (not the
// topics it will use), so the answer depends on the identity alone:
//   - an API key: the plan it was issued for (its rules all carry that plan);
//   - a JWT or the dev credential: the most generous plan among the rules
//     that match it — a subject entitled to "pro" on one product is never
//     held to "free" because another rule also lets it read a free topic.
// "Most generous" compares limits in this order: connections, connects per
// minute, delivered per second, bytes per second, published per second,
// daily quota; the first that differs decides, and equal plans go to the
// first matching rule. A subject no rule matches has no plan (undefined).
import type { Identity } from '@sluice/protocol/identity'
import type { Policy } from './policy.ts'
import type { PlanLimits } from './schema.ts'

export interface SubjectPlan {
  name: string
  limits: PlanLimits
}

const GENEROSITY: ReadonlyArray<keyof PlanLimits> = ['connections', 'connectsPerMinute', 'deliveredPerSecond', 'bytesPerSecond', 'publishedPerSecond', 'dailyQuota']

export function moreGenerous (a: PlanLimits, b: PlanLimits): boolean {
  for (const limit of GENEROSITY) {
    if (a[limit] !== b[limit]) return a[limit] > b[limit]
  }
  return false
}

export function subjectPlan (policy: Policy | undefined, identity: Identity): SubjectPlan | undefined {
  if (!policy) return undefined
  let best: SubjectPlan | undefined
  for (const grant of policy.grants(identity)) {
    if (best?.name === grant.plan) continue
    const limits = policy.plan(grant.plan)
    if (!limits) continue
    if (!best || moreGenerous(limits, best.limits)) best = { name: grant.plan, limits }
  }
  return best
}
