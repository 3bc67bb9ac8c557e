// How long a thread waited for a CPU: Linux counts each thread's time on a
// run queue (runnable, not running) in /proc/<pid>/task/<tid>/schedstat, its
// second field, in nanoseconds. The /healthz probe (healthz-probe.ts) uses it
// to tell a gateway that was slow from one the machine did not run.
import { readFileSync } from 'node:fs'

/** The time thread `tid` of process `pid` (its main thread by default) spent waiting on a run queue so far (ms), or undefined when Linux does not say. */
export function queuedMs (pid: number, tid = pid): number | undefined {
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(tid) || tid <= 0) return undefined
  try {
    const fields = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ')
    const ns = Number(fields[1])
    return fields.length >= 3 && Number.isFinite(ns) ? ns / 1e6 : undefined
  } catch {
    return undefined
  }
}

/** An answer over `boundMs` that would have been within it without the `waitedMs` its server spent waiting for a CPU meanwhile. */
export function slowOnlyByQueue (ms: number, waitedMs: number, boundMs: number): boolean {
  return ms > boundMs && waitedMs > 0 && ms - waitedMs <= boundMs
}
