// How `npm start` runs the gateway (package.json): Node through deploy/local/node.sh --jemalloc,
// on jemalloc when the machine has it (SLUICE_MALLOC=glibc: on glibc's malloc). The benches that
// measure the gateway as shipped start it the same way, with its V8 flags (SHIPPED_V8_FLAGS); each adds its own and the entry.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const NODE_SH = join(ROOT, 'deploy', 'local', 'node.sh')

/** The words of a checkout's `npm start` script (package.json), and the error to name it by. */
function startScript (root: string): { start: string, words: string[] } {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? ''
  return { start, words: start.split(/\s+/) }
}

/**
 * The V8 flags `npm start` gives the gateway (package.json's start script, which the image's CMD repeats:
 * test/deploy/dockerfile.test.ts): the young generation's cap (docs/performance.md, "Memory").
 */
export const SHIPPED_V8_FLAGS: readonly string[] = (() => {
  const { start, words } = startScript(ROOT)
  const flags = words.filter(w => w.startsWith('--max-semi-space-size='))
  if (flags.length !== 1) throw new Error(`package.json's start script names no --max-semi-space-size: ${start}`)
  return flags
})()

/** `bash node.sh <args>` with `options`, SLUICE_MALLOC passed on from this process. */
function spawnNodeSh (nodeSh: string, args: readonly string[], options: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildProcess {
  const malloc = process.env.SLUICE_MALLOC === undefined ? {} : { SLUICE_MALLOC: process.env.SLUICE_MALLOC }
  return spawn('bash', [nodeSh, ...args], { ...options, env: { ...malloc, ...options.env } })
}

/**
 * Starts `node <args>` as `npm start` does. node.sh ends in `exec node`: the child's pid is the
 * gateway's own (its /proc entries, its signals). SLUICE_MALLOC is passed on from this process.
 */
export function spawnShipped (args: readonly string[], options: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildProcess {
  return spawnNodeSh(NODE_SH, ['--jemalloc', ...args], options)
}

/**
 * Starts the gateway of another checkout (`tree`: a `git worktree add` of an earlier commit, with its own
 * `npm ci`) as that checkout's `npm start` runs it: its deploy/local/node.sh with the node.sh and V8 flags
 * of its package.json start script (an earlier tree may have had no --jemalloc or another young generation),
 * its own apps/gateway/src/server.ts, from its own directory; `nodeArgs` go to node before the entry,
 * `gatewayArgs` after it. The same-machine baseline of a figure an
 * issue measured on an earlier tree on another machine.
 */
export function spawnTreeGateway (tree: string, nodeArgs: readonly string[], gatewayArgs: readonly string[], options: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildProcess {
  const { start, words } = startScript(tree)
  const at = words.indexOf('deploy/local/node.sh')
  if (at < 0) throw new Error(`${tree}/package.json's start script does not run deploy/local/node.sh: ${start}`)
  const flags: string[] = []
  for (const w of words.slice(at + 1)) {
    if (!w.startsWith('--')) break
    flags.push(w)
  }
  return spawnNodeSh(join(tree, 'deploy', 'local', 'node.sh'), [...flags, ...nodeArgs, join(tree, 'apps', 'gateway', 'src', 'server.ts'), ...gatewayArgs], { ...options, cwd: tree })
}

/** `tree`'s commit as `git log -1` gives it, for a bench's header (or the path alone, outside git) */
export function describeTree (tree: string): string {
  try {
    return `${tree} at ${execFileSync('git', ['-C', tree, 'log', '-1', '--format=%h %ad %s', '--date=iso'], { encoding: 'utf8' }).trim()}`
  } catch {
    return tree
  }
}
