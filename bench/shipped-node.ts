// How `npm start` runs the gateway (package.json): Node through deploy/local/node.sh --jemalloc,
// on jemalloc when the machine has it (SLUICE_MALLOC=glibc: on glibc's malloc). The benches that
// measure the gateway as shipped start it the same way; each adds its own V8 flags and entry.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { join } from 'node:path'

const NODE_SH = join(import.meta.dirname, '..', 'deploy', 'local', 'node.sh')

/**
 * Starts `node <args>` as `npm start` does. node.sh ends in `exec node`: the child's pid is the
 * gateway's own (its /proc entries, its signals). SLUICE_MALLOC is passed on from this process.
 */
export function spawnShipped (args: readonly string[], options: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildProcess {
  const malloc = process.env.SLUICE_MALLOC === undefined ? {} : { SLUICE_MALLOC: process.env.SLUICE_MALLOC }
  return spawn('bash', [NODE_SH, '--jemalloc', ...args], { ...options, env: { ...malloc, ...options.env } })
}
