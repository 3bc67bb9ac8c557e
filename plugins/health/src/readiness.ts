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

// /readyz answers on the public port and is never rate-limited (orchestrators ask
// it); each run of the checks is a Kafka metadata request and a Redis PING. Callers
// at the same moment share one run, and a run's results serve for 100 ms, so a
// flood of probes costs the dependencies at most 10 runs a second per node.
export const DEFAULT_REUSE_MS = 100

type CheckResults = ReadinessReport['checks']

export class Readiness {
  readonly #checks = new Map<string, ReadinessCheck>()
  readonly #reuseMs: number
  #draining: string | undefined
  #last: { at: number, timeoutMs: number, checks: CheckResults } | undefined
  #running: { timeoutMs: number, checks: Promise<CheckResults> } | undefined

  constructor (options: { reuseMs?: number } = {}) {
    this.#reuseMs = options.reuseMs ?? DEFAULT_REUSE_MS
  }

  add (name: string, check: ReadinessCheck): void {
    if (this.#checks.has(name)) throw new Error(`readiness check "${name}" is registered twice`)
    this.#checks.set(name, check)
  }

  /** From now on the node reports not ready (graceful drain), whatever its checks say. */
  drain (reason: string): void {
    this.#draining = reason
  }

  async report (timeoutMs = DEFAULT_CHECK_TIMEOUT_MS): Promise<ReadinessReport> {
    const checks: CheckResults = { ...await this.#results(timeoutMs) }
    // the drain is this node's own state: it shows at once, whatever run the checks come from
    if (this.#draining) checks.drain = { ok: false, reason: this.#draining, ms: 0 }
    return { ready: Object.values(checks).every(c => c.ok), checks }
  }

  #results (timeoutMs: number): Promise<CheckResults> {
    const last = this.#last
    if (last && last.timeoutMs === timeoutMs && performance.now() - last.at < this.#reuseMs) return Promise.resolve(last.checks)
    const running = this.#running
    if (running && running.timeoutMs === timeoutMs) return running.checks
    const checks = this.#run(timeoutMs).then(results => {
      this.#last = { at: performance.now(), timeoutMs, checks: results }
      return results
    }).finally(() => {
      if (this.#running?.checks === checks) this.#running = undefined
    })
    this.#running = { timeoutMs, checks }
    return checks
  }

  async #run (timeoutMs: number): Promise<CheckResults> {
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
    return Object.fromEntries(entries)
  }
}
