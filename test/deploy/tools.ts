// The validators the deploy suites run, installed on first use into the
// git-ignored .cache/tools (no Docker engine, no schema from the internet):
//
//   kubernetes-validate (PyPI): every manifest against the Kubernetes API's own
//     JSON schemas, strict (unknown fields are errors), for several Kubernetes
//     versions; the schemas ship inside the package, so nothing is fetched at run time.
//   compose-check (deploy/docker/compose-check, Go): compose-go, the library
//     behind `docker compose config`, loads and validates the compose file.
//
//   node test/deploy/tools.ts fetch     installs both (CI warms them before the suites)
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolvePath(import.meta.dirname, '..', '..')
const toolsDir = join(root, '.cache', 'tools')

// pinned: its schemas are the test's reference; 1.37.0 carries Kubernetes 1.25 to 1.37
export const KUBERNETES_VALIDATE_VERSION = '1.37.0'
const composeCheckDir = join(root, 'deploy', 'docker', 'compose-check')

function run (cmd: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): void {
  const result = spawnSync(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (result.error) throw new Error(`${cmd} could not run: ${result.error.message}`)
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`)
}

/** The kubernetes-validate executable, in a virtualenv of its own (Python 3 with venv, as the machines have). */
export function kubernetesValidate (): string {
  const venv = join(toolsDir, `kubernetes-validate-${KUBERNETES_VALIDATE_VERSION}`)
  const bin = join(venv, 'bin', 'kubernetes-validate')
  const done = join(venv, '.installed')
  if (existsSync(done)) return bin
  // a virtualenv is not relocatable (its scripts name its path): built in place, marked when complete
  rmSync(venv, { recursive: true, force: true })
  mkdirSync(toolsDir, { recursive: true })
  run('python3', ['-m', 'venv', venv])
  run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '--no-input', `kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}`])
  writeFileSync(done, `${new Date().toISOString()}\n`)
  return bin
}

/** The compose-check binary, built with the machine's Go from the module in deploy/docker/compose-check. */
export function composeCheck (): string {
  // rebuilt whenever its source or pinned modules change
  const digest = createHash('sha256')
  for (const file of ['go.mod', 'go.sum', 'main.go']) digest.update(readFileSync(join(composeCheckDir, file)))
  const bin = join(toolsDir, `compose-check-${digest.digest('hex').slice(0, 12)}`)
  if (existsSync(bin)) return bin
  mkdirSync(toolsDir, { recursive: true })
  const partial = `${bin}.${process.pid}.partial`
  // -mod=readonly: go.sum is the pin; a module that does not match it fails the build
  run('go', ['build', '-mod=readonly', '-trimpath', '-o', partial, '.'], { cwd: composeCheckDir, env: { ...process.env, CGO_ENABLED: '0' } })
  renameSync(partial, bin)
  return bin
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv[2] !== 'fetch') {
    process.stderr.write('usage: node test/deploy/tools.ts fetch\n')
    process.exit(2)
  }
  const started = Date.now()
  process.stdout.write(`${kubernetesValidate()}\n${composeCheck()}\n`)
  process.stderr.write(`deploy tools ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
}
