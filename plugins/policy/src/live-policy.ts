// Fastify-free: the policy in force on this node. A reload that finds a valid
// directory swaps the compiled policy and tells the listeners; an invalid one
// keeps the last good policy and records why (logs, /readyz, metrics, admin).
import type { ConfigProblem } from '@sluice/config'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl, AccessDecision, Action } from './access.ts'
import { fingerprint, loadPolicyDir, policyDirStamp, readPolicyDir } from './policy-dir.ts'
import type { Policy, PolicyDocument } from './policy.ts'
import type { PlanLimits, ResumeWindowDocument } from './schema.ts'

export interface ReloadResult {
  /** applied: a new policy is in force; unchanged: same files as the last attempt; invalid: the last good one stays */
  outcome: 'applied' | 'unchanged' | 'invalid'
  version?: string
  problems: ConfigProblem[]
}

export interface PolicyStatus {
  dir: string
  /** short fingerprint of the files in force */
  version?: string
  loadedAt?: number
  files: string[]
  /** the last reload attempt that failed, while it is the latest attempt */
  lastError?: { at: number, problems: ConfigProblem[] }
}

export class LivePolicy implements AccessControl {
  readonly dir: string
  #policy: Policy | undefined
  #version: string | undefined
  #loadedAt: number | undefined
  #files: string[] = []
  #lastFingerprint: string | undefined
  // the files' fingerprint of the policy in force when it has no transform module (whose contents the full
  // load also hashes): a poll that reads the same bytes stops there instead of parsing and compiling them again
  #filesInForce: string | undefined
  // the directory's stamp (policyDirStamp) when a poll last read exactly the bytes in force: a poll that
  // finds the same stamp stops before reading. Reading and hashing the files every second was the largest
  // item of an idle gateway's JavaScript (bench/README.md, idle-topics)
  #stampInForce: string | undefined
  readonly #readDir: typeof readPolicyDir
  readonly #stamp: (dir: string) => Promise<string | undefined>
  #lastError: PolicyStatus['lastError']
  #running: Promise<unknown> = Promise.resolve()
  #pending: Promise<ReloadResult> | undefined
  #pendingForce = false
  readonly #listeners = new Set<() => void>()
  readonly #onReload: ((result: ReloadResult) => void) | undefined
  readonly #loadDir: typeof loadPolicyDir

  /**
   * `onReload` hears every reload that found changed files (applied or invalid): logs and metrics.
   * `loadDir` is the full load (read, parse, compile, transforms); tests count its calls.
   */
  constructor (dir: string, onReload?: (result: ReloadResult) => void, loadDir: typeof loadPolicyDir = loadPolicyDir,
    poll: { readDir?: typeof readPolicyDir, stamp?: (dir: string) => Promise<string | undefined> } = {}) {
    this.dir = dir
    this.#onReload = onReload
    this.#loadDir = loadDir
    this.#readDir = poll.readDir ?? readPolicyDir
    this.#stamp = poll.stamp ?? (d => policyDirStamp(d))
  }

  get loaded (): boolean {
    return this.#policy !== undefined
  }

  get current (): Policy | undefined {
    return this.#policy
  }

  get document (): PolicyDocument | undefined {
    return this.#policy?.document
  }

  status (): PolicyStatus {
    return { dir: this.dir, version: this.#version, loadedAt: this.#loadedAt, files: this.#files, lastError: this.#lastError }
  }

  authorize (identity: Identity, action: Action, topic: string): AccessDecision {
    if (!this.#policy) return { allowed: false, reason: 'no valid policy is loaded' }
    return this.#policy.authorize(identity, action, topic)
  }

  hasAccess (identity: Identity): boolean {
    return this.#policy?.hasAccess(identity) ?? false
  }

  plan (name: string): PlanLimits | undefined {
    return this.#policy?.plan(name)
  }

  /** Policy.resumeWindows of the policy in force (none loaded: no product serves anything). */
  resumeWindows (topic: string): ResumeWindowDocument[] {
    return this.#policy?.resumeWindows(topic) ?? []
  }

  onChange (listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /**
   * Reads the directory again. Reloads never overlap; triggers that arrive
   * while one runs share the next one, which starts after it, so every caller
   * gets a result at least as new as its call and the last write always wins.
   */
  reload (options: { force?: boolean } = {}): Promise<ReloadResult> {
    if (options.force) this.#pendingForce = true
    if (!this.#pending) {
      const next = this.#running.then(() => {
        this.#pending = undefined
        const force = this.#pendingForce
        this.#pendingForce = false
        return this.#load(force)
      })
      this.#pending = next
      this.#running = next.catch(() => {})
    }
    return this.#pending
  }

  async #load (force: boolean): Promise<ReloadResult> {
    // the 1 s poll (policy.pollIntervalMs) lands here every second: re-parsing and compiling unchanged YAML was
    // the largest item of an idle gateway's profile (27 ms of 93 ms sampled in 30 s, bench/README.md idle-topics)
    if (!force && this.#filesInForce !== undefined) {
      // the stamp is taken before the read: a write in between gives the next poll another stamp
      const stamp = await this.#stamp(this.dir)
      if (stamp !== undefined && stamp === this.#stampInForce) return { outcome: 'unchanged', version: this.#version, problems: [] }
      const read = await this.#readDir(this.dir)
      if (read.problems.length === 0 && fingerprint(read.files) === this.#filesInForce) {
        this.#stampInForce = stamp
        return { outcome: 'unchanged', version: this.#version, problems: [] }
      }
    }
    this.#stampInForce = undefined
    const result = await this.#loadDir(this.dir)
    const version = result.fingerprint.slice(0, 12)
    if (!force && result.fingerprint === this.#lastFingerprint) {
      return { outcome: 'unchanged', version: this.#version, problems: this.#lastError?.problems ?? [] }
    }
    this.#lastFingerprint = result.fingerprint
    // without transforms the load's fingerprint is the files' own (policy-dir.ts); with them a module may
    // change while the YAML does not, so every poll loads in full as before
    this.#filesInForce = result.policy && result.policy.transformSpecs().length === 0 ? result.fingerprint : undefined
    if (!result.policy) {
      this.#lastError = { at: Date.now(), problems: result.problems }
      const invalid: ReloadResult = { outcome: 'invalid', version: this.#version, problems: result.problems }
      this.#onReload?.(invalid)
      return invalid
    }
    this.#policy = result.policy
    this.#version = version
    this.#loadedAt = Date.now()
    this.#files = result.files
    this.#lastError = undefined
    const applied: ReloadResult = { outcome: 'applied', version, problems: [] }
    this.#onReload?.(applied)
    for (const listener of this.#listeners) {
      try {
        listener()
      } catch {
        // one listener's failure must not keep the others from hearing of the change
      }
    }
    return applied
  }
}
