// deploy/docker/compose.yaml without a Docker engine. The machines have the
// docker CLI but no compose plugin (and no engine), so compose-go, the library
// `docker compose config` is built on, loads the file: the compose-spec schema,
// interpolation, normalization, the references between services. Then what it
// cannot know: that the services' addresses, ports and files point at each
// other, and that the apps' own loaders accept the config compose gives them.
import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { parse } from 'yaml'
import { loadGatewayConfig } from '@sluice/gateway/config'
import { loadIngestConfig } from '@sluice/ingest/config'
import { loadPolicyDir } from '@sluice/policy'
import { composeCheck } from './tools.ts'

const root = join(import.meta.dirname, '..', '..')
const composeDir = join(root, 'deploy', 'docker')
const composeFile = join(composeDir, 'compose.yaml')
// what a user exports before `docker compose up` (compose.yaml requires the first)
const USER_ENV = { SLUICE_ADMIN_TOKEN: 'compose-test-admin-token-0123456789abcdef', INGEST_FEED_URL: 'wss://feed.example/ws' }

type Obj = Record<string, any>

function load (file: string, env: Record<string, string>): { status: number | null, project?: Obj, stderr: string } {
  const result = spawnSync(composeCheck(), [file], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, encoding: 'utf8' })
  return { status: result.status, project: result.status === 0 ? JSON.parse(result.stdout) : undefined, stderr: result.stderr }
}

function project (): Obj {
  const loaded = load(composeFile, USER_ENV)
  if (!loaded.project) throw new Error(`compose-check failed:\n${loaded.stderr}`)
  return loaded.project
}

/** host:port of a URL-ish address (kafka:9092, redis://redis:6379, PLAINTEXT://kafka:9092). */
function hostPort (address: string): { host: string, port: number } {
  const m = /^(?:[a-z]+:\/\/)?([^:/]*):(\d+)/i.exec(address)
  if (!m) throw new Error(`no host:port in ${address}`)
  return { host: m[1]!, port: Number(m[2]) }
}

/** The host path bound at `target` in a service, if any. */
function boundAt (service: Obj, target: string): string | undefined {
  const volume = (service.volumes ?? []).find((v: Obj) => v.type === 'bind' && (target === v.target || target.startsWith(`${v.target}/`)))
  return volume ? volume.source + target.slice(volume.target.length) : undefined
}

function durationMs (text: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(text)
  if (!m) throw new Error(`duration ${text}: only ms, s, m are expected`)
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm']
}

test('compose-go loads the file as docker compose config does, and refuses broken ones', async t => {
  const loaded = load(composeFile, USER_ENV)
  t.equal(loaded.status, 0, 'the file loads', { stderr: loaded.stderr })
  t.same(Object.keys(loaded.project?.services ?? {}).sort(), ['gateway', 'ingest', 'kafka', 'kafka-init', 'redis'], 'Kafka, its topic creation, Redis, the gateway and the ingest app')

  const missing = load(composeFile, { INGEST_FEED_URL: USER_ENV.INGEST_FEED_URL })
  t.equal(missing.status, 1, 'without SLUICE_ADMIN_TOKEN it does not load')
  t.match(missing.stderr, 'SLUICE_ADMIN_TOKEN', 'and says which variable is missing')

  const dir = mkdtempSync(join(tmpdir(), 'sluice-compose-'))
  const text = readFileSync(composeFile, 'utf8')
  const broken = {
    'a dependency on a service that does not exist': text.replace('      redis:\n        condition: service_healthy', '      rediss:\n        condition: service_healthy'),
    'a key the compose spec does not have': text.replace('    stop_grace_period: 30s\n\n  ingest:', '    stop_grace_period: 30s\n    restart_policy: always\n\n  ingest:'),
    'a port that is not one': text.replace('"8080:8080"', '"8080:http"')
  }
  for (const [what, mutated] of Object.entries(broken)) {
    t.not(mutated, text, `${what}: the mutation applies`)
    // beside the original, so that its relative paths still resolve
    const file = join(dir, 'compose.yaml')
    writeFileSync(file, mutated.replaceAll('../../..', relative(dir, root)).replaceAll('./gateway.yaml', join(composeDir, 'gateway.yaml')).replaceAll('./feeds.yaml', join(composeDir, 'feeds.yaml')))
    const result = load(file, USER_ENV)
    t.equal(result.status, 1, `${what} is refused`, { stderr: result.stderr })
  }

  // where the compose plugin exists (it does not on these machines), docker compose itself agrees
  const docker = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' })
  if (docker.status === 0) {
    const config = spawnSync('docker', ['compose', '-f', composeFile, '--profile', '*', 'config', '--format', 'json'], { env: { ...process.env, ...USER_ENV }, encoding: 'utf8' })
    t.equal(config.status, 0, 'docker compose config accepts it too', { stderr: config.stderr })
  } else {
    t.comment('docker compose is not installed here: compose-go alone checked the file')
  }
})

test('the services point at each other', async t => {
  const { services } = project()
  const kafka = services.kafka.environment
  const listeners: string[] = kafka.KAFKA_LISTENERS.split(',')
  const advertised: string[] = kafka.KAFKA_ADVERTISED_LISTENERS.split(',')
  const [voterId, voter] = kafka.KAFKA_CONTROLLER_QUORUM_VOTERS.split('@')
  t.equal(voterId, String(kafka.KAFKA_NODE_ID), 'the controller quorum is this node')
  t.equal(hostPort(voter).host, 'kafka', 'at the kafka service')
  t.ok(listeners.some(l => l.startsWith(`${kafka.KAFKA_CONTROLLER_LISTENER_NAMES}:`) && hostPort(l).port === hostPort(voter).port), 'on the controller listener\'s port')
  const id = Buffer.from(kafka.CLUSTER_ID, 'base64url')
  t.equal(id.length, 16, 'CLUSTER_ID is 16 bytes of URL-safe base64')
  t.equal(id.toString('base64url'), kafka.CLUSTER_ID, 'exactly (no stray bits)')
  t.not(kafka.CLUSTER_ID[0], '-', 'and does not start with - (kafka-storage would read it as an option)')

  for (const name of ['gateway', 'ingest']) {
    const service = services[name]
    const env = service.environment
    for (const broker of env.KAFKA_BROKERS.split(',')) {
      const { host, port } = hostPort(broker)
      t.ok(services[host], `${name}: KAFKA_BROKERS names the ${host} service`)
      t.ok(advertised.some(l => hostPort(l).host === host && hostPort(l).port === port), `${name}: ${broker} is an advertised listener`)
      t.ok(listeners.some(l => hostPort(l).port === port), `${name}: and a listener`)
    }
    t.equal(service.ports?.[0]?.target, Number(env.SLUICE_PORT), `${name}: the published port is the one it listens on`)
    const config = boundAt(service, env.SLUICE_CONFIG)
    t.ok(config && existsSync(config), `${name}: SLUICE_CONFIG (${env.SLUICE_CONFIG}) is a file mounted from the repository`)
    for (const volume of service.volumes ?? []) {
      if (volume.type === 'bind') t.ok(existsSync(volume.source), `${name}: ${relative(root, volume.source)} exists`)
    }
    for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {}) as Array<[string, { condition: string }]>) {
      t.ok(services[dependency], `${name} depends on ${dependency}, a service`)
      if (condition === 'service_healthy') t.ok(services[dependency].healthcheck?.test, `${dependency} has the healthcheck ${name} waits for`)
      if (condition === 'service_completed_successfully') t.equal(services[dependency].restart, 'no', `${dependency} runs once`)
    }
  }
  const redis = hostPort(services.gateway.environment.REDIS_URL)
  t.same(redis, { host: 'redis', port: 6379 }, 'REDIS_URL names the redis service on its port')
  t.notOk(services.redis.command.includes('--port'), 'which keeps the default port')
  t.equal(services.gateway.build.dockerfile, 'deploy/docker/Dockerfile', 'the gateway is built from the Dockerfile')
  t.equal(services.gateway.build.context, root, 'with the repository as the context')
  t.equal(services.ingest.image, services.gateway.image, 'the ingest app runs the same image')
  t.same(services.ingest.command, ['node', 'apps/ingest/src/server.ts'], 'with the ingest entry')
  t.ok(existsSync(join(root, 'apps/ingest/src/server.ts')), 'which exists')
})

test('the apps\' loaders accept the config compose gives them; the topics they need are created', async t => {
  const { services } = project()
  const gatewayEnv = services.gateway.environment
  const gateway = loadGatewayConfig({ file: boundAt(services.gateway, gatewayEnv.SLUICE_CONFIG), env: gatewayEnv })
  t.equal(gateway.admin?.token, USER_ENV.SLUICE_ADMIN_TOKEN, 'the gateway config loads, the admin token from the user\'s environment')
  t.ok(durationMs(services.gateway.stop_grace_period) > gateway.server.shutdownTimeoutMs, 'stop_grace_period covers the gateway\'s shutdown deadline')
  const policyDir = boundAt(services.gateway, gateway.policy.dir)
  t.ok(policyDir, `the policy dir (${gateway.policy.dir}) is mounted`)
  t.equal(services.gateway.volumes.find((v: Obj) => v.target === gateway.policy.dir)?.bind?.create_host_path, undefined, 'as a directory')
  const policy = await loadPolicyDir(policyDir!)
  t.same(policy.problems, [], 'and passes the policy check')

  const ingestEnv = services.ingest.environment
  const ingest = loadIngestConfig({ file: boundAt(services.ingest, ingestEnv.SLUICE_CONFIG), env: ingestEnv })
  t.equal(ingest.feeds[0]?.url, USER_ENV.INGEST_FEED_URL, 'the ingest config loads, its feed URL from the user\'s environment')
  t.ok(durationMs(services.ingest.stop_grace_period) > ingest.server.shutdownTimeoutMs, 'stop_grace_period covers the ingest flush deadline')

  // the broker creates no topic by itself (KAFKA_AUTO_CREATE_TOPICS_ENABLE=false): kafka-init must
  t.equal(services.kafka.environment.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false', 'no topic is created by a typo')
  const script = services['kafka-init'].command.join(' ')
  const created = /for topic in ([^;]+);/.exec(script)?.[1]?.trim().split(/\s+/) ?? []
  for (const feed of ingest.feeds) t.ok(created.includes(feed.topic), `the feed's topic ${feed.topic} is created`)
  const exact = readdirSync(policyDir!).filter(f => /\.ya?ml$/.test(f))
    .flatMap(f => Object.values((parse(readFileSync(join(policyDir!, f), 'utf8'))?.products ?? {}) as Record<string, Obj>))
    .flatMap(product => (product.topics ?? []).map((topic: Obj) => topic.pattern as string))
    .filter(pattern => !/[*{]/.test(pattern))
  t.ok(exact.length > 0, 'the policy names exact topics')
  for (const topic of exact) t.ok(created.includes(topic), `the policy's topic ${topic} is created`)
})
