// The policy plugin: loads the policy directory, keeps it hot (watch.ts),
// decorates `fastify.policy` (the AccessControl the stream asks per frame,
// plus what the admin API needs), reports readiness and metrics, and after
// each reload withdraws access that live sockets no longer have.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import { formatProblems } from '@sluice/config'
// type-only: brings fastify.sessions into scope (the live sockets a reload withdraws access from)
import type {} from '@sluice/sessions'
import { LivePolicy } from './live-policy.ts'
import { checkPolicyDir } from './policy-dir.ts'
import { PolicyWatcher } from './watch.ts'
import { withdrawAccess, type PolicySession } from './withdraw.ts'
import { PolicyNotLoadedError } from './errors.ts'

export type { AccessControl, AccessDecision, Action, TopicTerms, ValueEncoding, SlowClientPolicy } from './access.ts'
export { loadTransforms, TRANSFORM_EXTENSIONS, MAX_TRANSFORM_FILE_BYTES } from './transforms.ts'
export type { LoadedTransform, ProductTransforms, TransformDirection, TransformFunction, TransformMessage, TransformSpec } from './transforms.ts'
export { LivePolicy } from './live-policy.ts'
export type { PolicyStatus, ReloadResult } from './live-policy.ts'
export { Policy } from './policy.ts'
export type { PolicyDocument } from './policy.ts'
export { compilePolicy } from './compile.ts'
export { checkPolicyDir, loadPolicyDir, readPolicyDir } from './policy-dir.ts'
export type { PolicyFile } from './policy-dir.ts'
export type { MqttMappingDocument, PlanLimits } from './schema.ts'
export { withdrawAccess } from './withdraw.ts'
export { PolicyWatcher } from './watch.ts'
export * as errors from './errors.ts'

export interface PolicyPluginOptions {
  /** the directory of *.yaml policy files */
  dir: string
  /** hot reload (default true) */
  watch?: boolean
  debounceMs?: number
  pollIntervalMs?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    policy: LivePolicy
  }
}

async function policy (fastify: FastifyInstance, opts: PolicyPluginOptions): Promise<void> {
  // a mistyped path would boot a gateway that refuses every client while it looks up: refuse to start instead
  await checkPolicyDir(opts.dir)
  const metrics = fastify.hasDecorator('metrics') ? fastify.metrics : undefined
  const registers = metrics ? [metrics] : []
  const reloads = new Counter({ name: 'sluice_policy_reloads_total', help: 'Policy reloads that found changed files, by outcome (applied, invalid)', labelNames: ['outcome'], registers })
  const valid = new Gauge({ name: 'sluice_policy_valid', help: '1 when the policy files on disk were valid at the last reload, 0 when the last good policy is kept instead', registers })
  const loadedAt = new Gauge({ name: 'sluice_policy_loaded_timestamp_seconds', help: 'When the policy in force was loaded', registers })
  const withdrawn = new Counter({ name: 'sluice_policy_withdrawn_total', help: 'Live sockets affected by a policy reload, by action (closed, unsubscribed)', labelNames: ['action'], registers })

  const live: LivePolicy = new LivePolicy(opts.dir, result => {
    reloads.inc({ outcome: result.outcome })
    if (result.outcome === 'applied') {
      valid.set(1)
      loadedAt.set(Math.round(Date.now() / 1000))
      fastify.log.info({ dir: opts.dir, version: result.version }, 'policy loaded')
    } else {
      valid.set(0)
      fastify.log.error({ dir: opts.dir, problems: result.problems, version: result.version },
        `invalid policy: ${live.loaded ? 'keeping the last good policy' : 'no policy in force, every request is refused'}\n${formatProblems(result.problems)}`)
    }
  })

  const sessions = (): PolicySession[] => fastify.sessions.list()

  live.onChange(() => {
    const { closed, unsubscribed } = withdrawAccess(sessions(), live)
    if (closed > 0) withdrawn.inc({ action: 'closed' }, closed)
    if (unsubscribed > 0) withdrawn.inc({ action: 'unsubscribed' }, unsubscribed)
    if (closed + unsubscribed > 0) fastify.log.info({ closed, unsubscribed }, 'policy change withdrew access from live sockets')
  })

  await live.reload()
  fastify.decorate('policy', live)

  fastify.readiness.add('policy', async () => {
    const { lastError, version } = live.status()
    const problems = lastError ? `${lastError.problems.length} problem(s), first: ${formatProblems(lastError.problems.slice(0, 1))}` : ''
    if (!live.loaded) throw new PolicyNotLoadedError(opts.dir, problems ? `: ${problems}` : '')
    // ready on the last good policy, but say that the files on disk are not it
    return lastError ? `serving policy ${version}; the last reload failed: ${problems}` : `policy ${version}`
  })

  const watcher = new PolicyWatcher({
    dir: opts.dir,
    reload: () => live.reload(),
    debounceMs: opts.debounceMs,
    pollIntervalMs: opts.pollIntervalMs,
    onError: err => fastify.log.error({ err }, 'policy reload failed')
  })
  if (opts.watch !== false) {
    fastify.addHook('onReady', async () => { watcher.start() })
    fastify.addHook('onClose', async () => { watcher.stop() })
  }
}

export default fp(policy, { fastify: '5.x', name: 'sluice-policy', dependencies: ['sluice-health', 'sluice-sessions'] })
