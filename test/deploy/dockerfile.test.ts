// deploy/docker/Dockerfile without a Docker engine: read it (stages, base image,
// user, entry), then replay its build steps in a temp dir (each COPY through
// the .dockerignore rules, the npm ci with production dependencies only) and
// start the image's CMD and HEALTHCHECK from the resulting tree against the
// real broker: the production dependencies suffice to run the gateway and the
// ingest app. What this cannot show: that the base image pulls, that BuildKit
// agrees with this reading in every corner, the image's size.
import { test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix, relative } from 'node:path'
import { freePort } from '@sluice/stack'
import { envPairs, ignored, parseDockerfile, readDockerignore, words, type IgnoreRule, type Stage } from './dockerfile.ts'
import { eventually, kafkaBrokers, redisUrl } from '../helpers.ts'

const root = join(import.meta.dirname, '..', '..')
const dockerfile = join(root, 'deploy', 'docker', 'Dockerfile')
// BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile before the context's .dockerignore
const dockerignore = join(root, 'deploy', 'docker', 'Dockerfile.dockerignore')
// dev tools of the root package.json that must not reach the image
const DEV_ONLY = ['typescript', 'tap', 'eslint', 'playwright-core']

function stages (): Stage[] {
  return parseDockerfile(readFileSync(dockerfile, 'utf8'))
}

const last = (stage: Stage, keyword: string) => stage.instructions.filter(i => i.keyword === keyword).at(-1)

interface Image { root: string, workdir: string, env: Record<string, string>, cmd: string[], healthcheck: string[], npmCiMs: number }

/** Runs the Dockerfile's steps on the host: each stage a directory, COPY as BuildKit copies, RUN limited to what it knows. */
function replay (all: Stage[], rules: IgnoreRule[], into: string): Image {
  const roots = new Map<string, string>()
  let image: Image | undefined
  let npmCiMs = 0
  all.forEach((stage, index) => {
    const stageRoot = join(into, `stage-${index}`)
    mkdirSync(stageRoot, { recursive: true })
    let workdir = '/'
    const env: Record<string, string> = {}
    const inStage = (path: string) => join(stageRoot, path)
    for (const step of stage.instructions) {
      switch (step.keyword) {
        case 'WORKDIR':
          workdir = posix.resolve(workdir, step.args)
          mkdirSync(inStage(workdir), { recursive: true })
          break
        case 'ENV':
          Object.assign(env, envPairs(step))
          break
        case 'COPY': {
          const args = words(step.args)
          const dest = posix.resolve(workdir, args.at(-1)!)
          const sources = args.slice(0, -1)
          const from = step.flags.from
          const fromRoot = from === undefined ? root : roots.get(from)
          if (!fromRoot) throw new Error(`Dockerfile line ${step.line}: no stage ${from}`)
          for (const source of sources) {
            if (/[*?[]/.test(source)) throw new Error(`Dockerfile line ${step.line}: the replay copies no glob (${source})`)
            const path = from === undefined ? join(root, source) : join(fromRoot, source)
            if (!existsSync(path)) throw new Error(`Dockerfile line ${step.line}: COPY source ${source} does not exist`)
            const rel = relative(root, path)
            if (from === undefined && ignored(rules, rel)) throw new Error(`Dockerfile line ${step.line}: COPY source ${source} is left out by the .dockerignore`)
            const intoDir = sources.length > 1 || args.at(-1)!.endsWith('/')
            const target = intoDir && !isDir(path) ? posix.join(dest, posix.basename(source)) : dest
            cpSync(path, inStage(target), {
              recursive: true,
              // symlinks as they are: the workspaces' links in node_modules are relative
              verbatimSymlinks: true,
              filter: from === undefined ? (p: string) => !ignored(rules, relative(root, p)) : undefined
            })
          }
          break
        }
        case 'RUN':
          for (const command of step.args.split('&&').map(c => c.trim())) {
            const argv = words(command)
            if (argv[0] === 'npm' && argv[1] === 'ci') {
              const started = Date.now()
              // offline from the npm cache when it can: the same lock file, the same packages
              const result = spawnSync('npm', [...argv.slice(1), '--prefer-offline'], { cwd: inStage(workdir), env: { ...process.env, ...env, NODE_OPTIONS: '' }, encoding: 'utf8' })
              npmCiMs += Date.now() - started
              if (result.status !== 0) throw new Error(`Dockerfile line ${step.line}: ${command} exited ${result.status}:\n${result.stdout}${result.stderr}`)
            } else if (command === 'npm cache clean --force') {
              // keeps the image small; here it would empty the developer's cache
            } else if (argv[0] === 'apt-get' && argv[1] === 'install') {
              // the host's packages stand in for the image's (the suites run on Debian): each must be installed
              for (const pkg of argv.slice(2).filter(a => !a.startsWith('-'))) {
                const status = spawnSync('dpkg-query', ['--status', pkg], { encoding: 'utf8' }).stdout
                if (!/^Status: install ok installed$/m.test(status)) throw new Error(`Dockerfile line ${step.line}: the replay uses the host's ${pkg}, which is not installed (apt-get install ${pkg})`)
              }
            } else if (command === 'apt-get update' || command === 'rm -rf /var/lib/apt/lists/*') {
              // the package lists: only apt-get needs them
            } else {
              throw new Error(`Dockerfile line ${step.line}: the replay does not know how to run "${command}"; teach it here`)
            }
          }
          break
        case 'USER': case 'EXPOSE': case 'HEALTHCHECK': case 'CMD': case 'LABEL': case 'STOPSIGNAL':
          break
        default:
          throw new Error(`Dockerfile line ${step.line}: the replay does not know ${step.keyword}`)
      }
    }
    roots.set(String(index), stageRoot)
    if (stage.name) roots.set(stage.name, stageRoot)
    image = { root: stageRoot, workdir, env, cmd: last(stage, 'CMD')?.exec ?? [], healthcheck: last(stage, 'HEALTHCHECK')?.exec ?? [], npmCiMs }
  })
  return image!
}

function isDir (path: string): boolean {
  return statSync(path).isDirectory()
}

/** Starts `argv` (node ...) as the image would: in its WORKDIR, with its ENV and nothing of this process's. */
function start (image: Image, argv: string[], env: Record<string, string>) {
  if (argv[0] !== 'node') throw new Error(`the entry runs ${argv[0]}, not node`)
  const child = spawn(process.execPath, argv.slice(1), { cwd: join(image.root, image.workdir), env: { PATH: process.env.PATH ?? '', ...image.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, exited, output: () => output }
}

function healthcheck (image: Image, env: Record<string, string>): number | null {
  const [node, ...args] = image.healthcheck
  if (node !== 'node') throw new Error('the HEALTHCHECK runs node')
  return spawnSync(process.execPath, args, { cwd: join(image.root, image.workdir), env: { PATH: process.env.PATH ?? '', ...image.env, ...env }, timeout: 10_000 }).status
}

test('the Dockerfile: stages on Node 24, production dependencies, a numeric non-root user, entries that exist', async t => {
  const all = stages()
  t.ok(all.length >= 2, 'multi-stage: dependencies are installed in one stage, the image is another')
  for (const stage of all) t.match(stage.image, /^node:24(\.\d+)*-/, `${stage.name ?? 'a stage'} is on Node 24 (${stage.image})`)
  const final = all.at(-1)!
  const install = all.flatMap(s => s.instructions).filter(i => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args))
  t.equal(install.length, 1, 'one npm ci')
  t.match(install[0]?.args, /--omit=dev/, 'production dependencies only')
  t.notOk(final.instructions.some(i => i.keyword === 'RUN' && /\bnpm (ci|install)\b/.test(i.args)), 'the final stage installs nothing: it copies the installed tree')
  t.ok(final.instructions.some(i => i.keyword === 'COPY' && i.flags.from !== undefined), 'the final stage copies from an earlier stage')

  const user = last(final, 'USER')?.args ?? ''
  t.match(user, /^\d+(:\d+)?$/, 'USER is numeric (Kubernetes runAsNonRoot can only verify a numeric user)')
  t.ok(Number(user.split(':')[0]) > 0, `USER ${user} is not root`)
  t.ok(final.instructions.findIndex(i => i.keyword === 'USER') > final.instructions.findLastIndex(i => i.keyword === 'COPY' || i.keyword === 'RUN'), 'USER comes after the last COPY and RUN')

  const cmd = last(final, 'CMD')?.exec
  t.ok(cmd, 'CMD in exec form: node is PID 1 and gets SIGTERM itself')
  const entry = cmd?.find(a => a.endsWith('.ts'))
  t.equal(entry, 'apps/cli/src/main.ts', 'the sluice command')
  t.equal(cmd?.[cmd.indexOf(entry!) + 1], 'gateway', 'running the gateway')
  t.ok(existsSync(join(root, entry ?? '')), 'which exists in the repository')
  const start = /deploy\/local\/node\.sh (.*)$/.exec(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts?.start ?? '')
  t.ok(start, 'npm start runs deploy/local/node.sh')
  const startArgs = words(start?.[1] ?? '')
  // node.sh's own option: the image sets what it sets (ENV), and installs the library
  t.equal(startArgs[0], '--jemalloc', 'npm start runs the gateway on jemalloc')
  t.same(cmd?.slice(1), startArgs.slice(1), 'the same node flags and entry as npm start')
  const env = Object.assign({}, ...final.instructions.filter(i => i.keyword === 'ENV').map(envPairs)) as Record<string, string>
  t.equal(env.LD_PRELOAD, 'libjemalloc.so.2', 'the image preloads jemalloc')
  const nodeSh = readFileSync(join(root, 'deploy', 'local', 'node.sh'), 'utf8')
  t.equal(env.MALLOC_CONF, /MALLOC_CONF:-([^}]+)\}/.exec(nodeSh)?.[1], 'with the settings node.sh gives it')
  t.ok(final.instructions.some(i => i.keyword === 'RUN' && /apt-get install .*\blibjemalloc2\b/.test(i.args)), 'and installs Debian\'s libjemalloc2')

  const health = last(final, 'HEALTHCHECK')
  t.ok(health?.exec, 'a HEALTHCHECK in exec form (the slim image has no shell tools like curl)')
  t.match(health?.exec?.join(' '), '/healthz', 'it asks /healthz')
  for (const flag of ['interval', 'timeout', 'start-period', 'retries']) t.ok(health?.flags[flag], `HEALTHCHECK --${flag}`)

  // every workspace reaches the install stage: npm ci fails on a lock file naming a workspace it cannot see
  const rules = readDockerignore(dockerignore)
  const copied = all[0]!.instructions.filter(i => i.keyword === 'COPY').flatMap(i => words(i.args).slice(0, -1))
  for (const workspace of JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).workspaces as string[]) {
    const dir = workspace.replace(/\/\*$/, '')
    t.ok(copied.includes(dir), `workspaces ${workspace} are copied before npm ci`)
  }
  t.ok(ignored(rules, '.cache/kafka/libs/kafka.jar') && ignored(rules, 'node_modules/fastify/package.json') && ignored(rules, '.git/HEAD'), 'the .dockerignore leaves out caches, node_modules and .git')
  t.ok(ignored(rules, 'apps/gateway/test/drain.test.ts') && ignored(rules, 'plugins/hub/test/hub.test.ts'), 'and tests')
  t.notOk(['apps/gateway/src/server.ts', 'package-lock.json', 'policies/example.yaml', 'openapi/gateway.yaml'].some(p => ignored(rules, p)), 'not sources, the lock file, the policy or the OpenAPI documents')
})

test('the build replayed without an engine runs the gateway and the ingest app on production dependencies', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-image-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const image = replay(stages(), readDockerignore(dockerignore), dir)
  t.comment(`npm ci --omit=dev in the replay: ${image.npmCiMs} ms`)
  const app = join(image.root, image.workdir)

  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  for (const name of DEV_ONLY) {
    t.equal(lock.packages?.[`node_modules/${name}`]?.dev, true, `${name} is a dev dependency in the lock file`)
    t.notOk(existsSync(join(app, 'node_modules', name)), 'and is not in the image')
  }
  t.ok(existsSync(join(app, 'node_modules', 'fastify')) && existsSync(join(app, 'node_modules', 'kafkajs')), 'production dependencies are')
  t.notOk(existsSync(join(app, 'apps', 'gateway', 'test')) || existsSync(join(app, '.cache')), 'no tests, no caches')

  const port = await freePort()
  const env = { KAFKA_BROKERS: kafkaBrokers().join(','), REDIS_URL: redisUrl(), SLUICE_PORT: String(port), SLUICE_HOST: '127.0.0.1' }
  const gateway = start(image, image.cmd, env)
  t.teardown(() => { gateway.child.kill('SIGKILL') })
  await eventually(async () => {
    if (gateway.child.exitCode !== null) throw new Error(`the gateway exited ${gateway.child.exitCode}:\n${gateway.output()}`)
    return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200
  }, 30_000, 'the gateway from the image tree answers /healthz')
  t.pass('the gateway from the image tree answers /healthz')
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 15_000, 'and is ready (Kafka, Redis, the image\'s example policy)')
  t.pass('and /readyz: Kafka, Redis and the policy the image carries')
  t.match(readFileSync(`/proc/${gateway.child.pid}/maps`, 'utf8'), /libjemalloc\.so\.2/, 'on jemalloc: the image\'s ENV preloads it')
  // without openapi/ in the image the gateway still starts, and serves no /openapi.json
  t.equal((await fetch(`http://127.0.0.1:${port}/openapi.json`)).status, 200, '/openapi.json: the OpenAPI documents are in the image')
  t.equal(healthcheck(image, env), 0, 'the HEALTHCHECK command passes against it')
  gateway.child.kill('SIGTERM')
  t.equal(await gateway.exited, 0, 'SIGTERM: a clean exit')

  const ingestPort = await freePort()
  const ingestEnv = {
    KAFKA_BROKERS: kafkaBrokers().join(','),
    SLUICE_PORT: String(ingestPort),
    SLUICE_HOST: '127.0.0.1',
    // compose.yaml's feeds file, its feed pointed at a port nobody listens on: the feed retries, the app runs
    SLUICE_CONFIG: join(root, 'deploy', 'docker', 'feeds.yaml'),
    INGEST_FEED_URL: `ws://127.0.0.1:${await freePort()}/feed`
  }
  const ingest = start(image, ['node', 'apps/ingest/src/server.ts'], ingestEnv)
  t.teardown(() => { ingest.child.kill('SIGKILL') })
  await eventually(async () => {
    if (ingest.child.exitCode !== null) throw new Error(`the ingest app exited ${ingest.child.exitCode}:\n${ingest.output()}`)
    return (await fetch(`http://127.0.0.1:${ingestPort}/healthz`).catch(() => undefined))?.status === 200
  }, 30_000, 'the ingest app from the image tree answers /healthz')
  t.pass('the ingest app from the image tree answers /healthz')
  t.equal(healthcheck(image, ingestEnv), 0, 'the HEALTHCHECK passes against it (SLUICE_PORT)')
  ingest.child.kill('SIGTERM')
  t.equal(await ingest.exited, 0, 'SIGTERM: a clean exit, nothing left unflushed')
})
