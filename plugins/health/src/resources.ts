// Fastify-free watch on the process's own limits: open file descriptors
// against the soft RLIMIT_NOFILE, and the V8 heap against its limit.
//
// Nothing else tells that a node is out of file descriptors: when accept()
// fails with EMFILE, libuv closes a spare descriptor, accepts and closes every
// waiting connection (the clients see a reset) and reports nothing, so Node
// emits no 'error' and logs nothing while /readyz, whose probe arrives on a
// connection kept alive, stays 200. The only reliable signal is to count: the
// entries of /proc/self/fd against "Max open files" in /proc/self/limits.
import { readFileSync, statSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { getHeapStatistics } from 'node:v8'

export type Resource = 'fds' | 'heap'

export interface Usage { used: number, limit: number }

/** Where the numbers come from; tests give a fake, production reads /proc and V8. */
export interface ResourceReader {
  /** open descriptors and the soft limit, or undefined where there is no /proc (macOS) */
  fds (): Promise<Usage | undefined>
  heap (): Usage
}

export interface ResourceState extends Usage {
  resource: Resource
  ratio: number
  /** true from the sample at or above `notReadyRatio` until one below `readyRatio` */
  exhausted: boolean
}

export interface ResourceWatchOptions {
  reader?: ResourceReader
  notReadyRatio?: number
  readyRatio?: number
  /** once when a resource crosses notReadyRatio, once when it is back below readyRatio */
  onExhausted?: (state: ResourceState) => void
  onRecovered?: (state: ResourceState) => void
}

// Not ready at 90 %: at the shipped limit of 20,000 descriptors that leaves
// 2,000 for the sockets a balancer still sends until its next probe (10 s,
// Kubernetes' default period, at 200 connects/s) and for the node's own Kafka
// and Redis connections. The heap gets the same margin: near its limit V8
// collects ever more often, then aborts the process and every socket with it.
export const DEFAULT_NOT_READY_RATIO = 0.9
// Ready again only below 80 %: a node at the edge would otherwise flip at every
// probe as a few sockets come and go, and each flip moves traffic.
export const DEFAULT_READY_RATIO = 0.8

/** The soft "Max open files" of /proc/<pid>/limits; undefined when unlimited or absent. */
export function parseFdLimit (limits: string): number | undefined {
  const line = limits.split('\n').find(l => l.startsWith('Max open files'))
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
  const n = Number(soft)
  return Number.isInteger(n) && n > 0 ? n : undefined
}

function tableFull (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'EMFILE' || code === 'ENFILE'
}

// The soft limit changes only by setrlimit: Node raises it to the hard limit at its start, and after that
// only prlimit(1) from outside moves it. Read once a minute rather than every second: the read was a third
// of the descriptor count's work in an idle node's profile (bench/README.md, idle-topics).
export const LIMITS_MAX_AGE_MS = 60_000

/** How procReader reads /proc; tests count the reads. */
export interface ProcFiles {
  limits (): string
  /** the size of /proc/self/fd: 0 before Linux 6.2 */
  fdDirSize (): number
  listFds (): Promise<number>
}

// procfs is in the kernel's memory: a read or a stat of it never waits on a disk, so the 1 s sample makes
// them on the event loop, without a trip through libuv's thread pool and back (two wakeups each)
const PROC: ProcFiles = {
  limits: () => readFileSync('/proc/self/limits', 'utf8'),
  fdDirSize: () => statSync('/proc/self/fd').size,
  // readdir runs on libuv's pool, and its own descriptor is among the entries (one of the process's too,
  // so it is counted)
  listFds: async () => (await readdir('/proc/self/fd')).length
}

/** Reads /proc/self (Linux) and V8's heap statistics. */
export function procReader (options: { files?: ProcFiles, now?: () => number, limitsMaxAgeMs?: number } = {}): ResourceReader {
  const files = options.files ?? PROC
  const now = options.now ?? (() => performance.now())
  const maxAge = options.limitsMaxAgeMs ?? LIMITS_MAX_AGE_MS
  // the limit is kept from the last read that worked: reading it needs a descriptor too
  let limit: number | undefined
  let limitAt = -Infinity
  return {
    async fds () {
      if (limit === undefined || now() - limitAt >= maxAge) {
        try {
          limit = parseFdLimit(files.limits()) ?? limit
          limitAt = now()
        } catch (err) {
          if (!tableFull(err)) return undefined
        }
      }
      if (limit === undefined) return undefined
      try {
        // Linux 6.2 and later give the count as the size of /proc/self/fd: one stat, 60-80 µs of CPU at
        // 10,000 descriptors here, where listing them (a string per entry, built on the event loop) took
        // 6-10 ms, every second. Older kernels give 0 and are listed.
        const size = files.fdDirSize()
        if (size > 0) return { used: size, limit }
        return { used: await files.listFds(), limit }
      } catch (err) {
        // no descriptor left even to look: the table is full
        return tableFull(err) ? { used: limit, limit } : undefined
      }
    },
    heap () {
      const stats = getHeapStatistics()
      return { used: stats.used_heap_size, limit: stats.heap_size_limit }
    }
  }
}

const percent = (ratio: number) => `${Math.round(ratio * 100)} %`

/** The reason /readyz gives while a resource is exhausted. */
export function describe (state: ResourceState, readyRatio: number): string {
  const what = state.resource === 'fds'
    ? `${state.used} of ${state.limit} file descriptors open`
    : `${Math.round(state.used / 2 ** 20)} MiB of the ${Math.round(state.limit / 2 ** 20)} MiB heap used`
  return `${what} (${percent(state.ratio)}); ready again below ${percent(readyRatio)}`
}

export class ResourceWatch {
  readonly notReadyRatio: number
  readonly readyRatio: number
  readonly #reader: ResourceReader
  readonly #onExhausted: (state: ResourceState) => void
  readonly #onRecovered: (state: ResourceState) => void
  readonly #exhausted = new Set<Resource>()
  #last: { at: number, states: Partial<Record<Resource, ResourceState>> } | undefined
  #running: Promise<Partial<Record<Resource, ResourceState>>> | undefined

  constructor (options: ResourceWatchOptions = {}) {
    this.#reader = options.reader ?? procReader()
    this.notReadyRatio = options.notReadyRatio ?? DEFAULT_NOT_READY_RATIO
    this.readyRatio = options.readyRatio ?? DEFAULT_READY_RATIO
    if (!(this.readyRatio > 0 && this.readyRatio <= this.notReadyRatio && this.notReadyRatio <= 1)) {
      throw new Error(`resource ratios must satisfy 0 < readyRatio (${this.readyRatio}) <= notReadyRatio (${this.notReadyRatio}) <= 1`)
    }
    this.#onExhausted = options.onExhausted ?? (() => {})
    this.#onRecovered = options.onRecovered ?? (() => {})
  }

  /**
   * Reads every resource (callers at the same moment share one read; a read
   * younger than maxAgeMs is reused) and moves each between exhausted and not.
   */
  sample (maxAgeMs = 0): Promise<Partial<Record<Resource, ResourceState>>> {
    const last = this.#last
    if (last && performance.now() - last.at <= maxAgeMs) return Promise.resolve(last.states)
    this.#running ??= this.#read().finally(() => { this.#running = undefined })
    return this.#running
  }

  /** Throws the reason when the resource is exhausted (a readiness check). */
  async check (resource: Resource, maxAgeMs = 0): Promise<void> {
    const state = (await this.sample(maxAgeMs))[resource]
    if (state?.exhausted) throw new Error(describe(state, this.readyRatio))
  }

  async #read (): Promise<Partial<Record<Resource, ResourceState>>> {
    const states: Partial<Record<Resource, ResourceState>> = {}
    const usages: Array<[Resource, Usage | undefined]> = [['fds', await this.#reader.fds()], ['heap', this.#reader.heap()]]
    for (const [resource, usage] of usages) {
      if (usage) states[resource] = this.#move(resource, usage)
    }
    this.#last = { at: performance.now(), states }
    return states
  }

  #move (resource: Resource, usage: Usage): ResourceState {
    const ratio = usage.limit > 0 ? usage.used / usage.limit : 0
    const was = this.#exhausted.has(resource)
    const exhausted = was ? ratio >= this.readyRatio : ratio >= this.notReadyRatio
    const state = { resource, ...usage, ratio, exhausted }
    if (exhausted && !was) {
      this.#exhausted.add(resource)
      this.#onExhausted(state)
    } else if (!exhausted && was) {
      this.#exhausted.delete(resource)
      this.#onRecovered(state)
    }
    return state
  }
}
