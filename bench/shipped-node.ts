// How `npm start` runs the gateway (package.json): Node through deploy/local/node.sh --jemalloc,
// on jemalloc when the machine has it (SLUICE_MALLOC=glibc: on glibc's malloc). The benches that
// measure the gateway as shipped start it the same way, with its V8 flags (SHIPPED_V8_FLAGS); each adds its own and the entry.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const NODE_SH = join(import.meta.dirname, '..', 'deploy', 'local', 'node.sh')

/**
 * The V8 flags `npm start` gives the gateway (package.json's start script, which the image's CMD repeats:
 * test/deploy/dockerfile.test.ts): the young generation's cap (docs/performance.md, "Memory").
 */
export const SHIPPED_V8_FLAGS: readonly string[] = (() => {
  const start = (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? ''
  const flags = start.split(/\s+/).filter(w => w.startsWith('--max-semi-space-size='))
  if (flags.length !== 1) throw new Error(`package.json's start script names no --max-semi-space-size: ${start}`)
  return flags
})()

/**
 * Starts `node <args>` as `npm start` does. node.sh ends in `exec node`: the child's pid is the
 * gateway's own (its /proc entries, its signals). SLUICE_MALLOC is passed on from this process.
 */
export function spawnShipped (args: readonly string[], options: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildProcess {
  const malloc = process.env.SLUICE_MALLOC === undefined ? {} : { SLUICE_MALLOC: process.env.SLUICE_MALLOC }
  return spawn('bash', [NODE_SH, '--jemalloc', ...args], { ...options, env: { ...malloc, ...options.env } })
}
