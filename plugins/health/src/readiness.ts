// Fastify-free readiness: named checks, each asked in parallel with a deadline.
// A check resolves when its dependency serves and throws with the reason when not.
// It may resolve with a detail that an operator should see while it is ready
// (the policy: "serving the last good version; the files on disk are invalid").

export type ReadinessCheck = () => Promise<void | string>

export interface ReadinessReport {
  ready: boolean
  checks: Record<string, { ok: boolean, reason?: string, detail?: string, ms: number }>
}

// A probe that waits longer than a load balancer's own probe timeout (1 s is
// Kubernetes' default) is worse than an honest "not ready".
export const DEFAULT_CHECK_TIMEOUT_MS = 900

export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>()
  #draining: string | undefined

  add (name: string, check: ReadinessCheck): void {
    if (this.#checks.has(name)) throw new Error(`readiness check "${name}" is registered twice`)
    this.#checks.set(name, check)
  }

  /** From now on the node reports not ready (graceful drain), whatever its checks say. */
  drain (reason: string): void {
    this.#draining = reason
  }

  async report (timeoutMs = DEFAULT_CHECK_TIMEOUT_MS): Promise<ReadinessReport> {
    const entries = await Promise.all([...this.#checks].map(async ([name, check]) => {
      const started = performance.now()
      let timer: NodeJS.Timeout | undefined
      try {
        const detail = await Promise.race([
          check(),
          new Promise<never>((_resolve, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
          })
        ])
        const ms = Math.round(performance.now() - started)
        return [name, typeof detail === 'string' ? { ok: true, detail, ms } : { ok: true, ms }] as const
      } catch (err) {
        return [name, { ok: false, reason: (err as Error).message, ms: Math.round(performance.now() - started) }] as const
      } finally {
        clearTimeout(timer)
      }
    }))
    const checks: ReadinessReport['checks'] = Object.fromEntries(entries)
    if (this.#draining) checks.drain = { ok: false, reason: this.#draining, ms: 0 }
    return { ready: Object.values(checks).every(c => c.ok), checks }
  }
}
