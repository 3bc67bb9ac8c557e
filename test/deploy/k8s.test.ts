// deploy/k8s without a cluster: every manifest against the Kubernetes API's
// JSON schemas (kubernetes-validate, strict, offline), then what a schema cannot
// see: selectors, ports and names that must refer to each other, the
// ConfigMaps' config and policy loaded by the apps' own loaders from a
// directory laid out as the kubelet lays out a ConfigMap volume, and the probe
// paths answered by the apps built from that config.
import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { buildApp } from '@sluice/gateway'
import { gatewayEnvBindings, loadGatewayConfig } from '@sluice/gateway/config'
import { buildApp as buildIngestApp } from '@sluice/ingest'
import { ingestEnvBindings, loadIngestConfig } from '@sluice/ingest/config'
import { loadPolicyDir } from '@sluice/policy'
import { freePort } from '@sluice/stack'
import { kubernetesValidate } from './tools.ts'
import { parseDockerfile } from './dockerfile.ts'
import { kafkaBrokers, redisUrl } from '../helpers.ts'

const root = join(import.meta.dirname, '..', '..')
const k8sDir = join(root, 'deploy', 'k8s')
// the oldest Kubernetes minor still in wide support, and the newest the validator knows
const KUBERNETES_VERSIONS = ['1.31.0', '1.37.0']
// what the manifests may declare: a kind outside this list is a mistake or needs a look here
const KINDS = ['ConfigMap', 'Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget']
// variables the apps read besides their config bindings
const ENTRY_ENV = ['SLUICE_CONFIG', 'NODE_OPTIONS']
const LONG_SECRET = 'k8s-test-admin-token-0123456789abcdefghij'

type Obj = Record<string, any>

function manifestFiles (): string[] {
  return readdirSync(k8sDir).filter(f => /\.ya?ml$/.test(f)).sort().map(f => join(k8sDir, f))
}

function documents (): Array<{ file: string, doc: Obj }> {
  return manifestFiles().flatMap(file => parseAllDocuments(readFileSync(file, 'utf8'))
    .map(d => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`)
      return { file, doc: d.toJS() as Obj }
    })
    .filter(d => d.doc !== null))
}

function one (kind: string, name: string): Obj {
  const found = documents().filter(d => d.doc.kind === kind && d.doc.metadata?.name === name)
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`)
  return found[0]!.doc
}

interface Validation { ok: boolean, passed: number, output: string }

/** kubernetes-validate, strict; a warning (an unknown kind or apiVersion: nothing was checked) fails too. */
function validate (files: string[], version: string): Validation {
  const result = spawnSync(kubernetesValidate(), ['--strict', '-k', version, ...files], { encoding: 'utf8' })
  const output = `${result.stdout}${result.stderr}`
  const passed = output.split('\n').filter(l => / passed for resource /.test(l)).length
  return { ok: result.status === 0 && !/^(WARN|ERROR)/m.test(output), passed, output }
}

function matches (selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v)
}

/** A ConfigMap volume as the kubelet writes it: the data in a timestamped directory, `..data` pointing at it, each key a symlink through `..data`. */
function renderConfigMap (configMap: Obj, dir: string): string {
  mkdirSync(dir, { recursive: true })
  const version = '..2026_11_25_12_00_00.000000001'
  mkdirSync(join(dir, version))
  for (const [key, value] of Object.entries(configMap.data as Record<string, string>)) writeFileSync(join(dir, version, key), value)
  symlinkSync(version, join(dir, '..data'))
  for (const key of Object.keys(configMap.data)) symlinkSync(join('..data', key), join(dir, key))
  return dir
}

/** The container's environment, secrets from `secrets` ("name/key"); an unknown reference is an error. */
function containerEnv (container: Obj, secrets: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`
      if (secrets[ref] === undefined) throw new Error(`${e.name} refers to secret ${ref}, which this test does not know`)
      env[e.name] = secrets[ref]
    } else {
      throw new Error(`${e.name}: only value and secretKeyRef are expected`)
    }
  }
  return env
}

/** The file SLUICE_CONFIG names, found in the container's ConfigMap mounts: [ConfigMap, key, mount path]. */
function configFile (deployment: Obj, container: Obj): { configMap: Obj, key: string, mountPath: string } {
  const path: string = (container.env ?? []).find((e: Obj) => e.name === 'SLUICE_CONFIG')?.value ?? ''
  for (const mount of container.volumeMounts ?? []) {
    if (!path.startsWith(`${mount.mountPath}/`)) continue
    const volume = deployment.spec.template.spec.volumes.find((v: Obj) => v.name === mount.name)
    const key = path.slice(mount.mountPath.length + 1)
    return { configMap: one('ConfigMap', volume.configMap.name), key, mountPath: mount.mountPath }
  }
  throw new Error(`SLUICE_CONFIG=${path} is not inside any volume mount`)
}

const probes = (container: Obj) => ['readinessProbe', 'livenessProbe', 'startupProbe'].filter(p => container[p]).map(p => ({ name: p, ...container[p].httpGet }))

test('every manifest passes the Kubernetes API schemas, strict, offline', async t => {
  const files = manifestFiles()
  const docs = documents()
  t.ok(files.length >= 3, 'the gateway, its config and the ingest app')
  t.same([...new Set(docs.map(d => d.doc.kind))].filter(k => !KINDS.includes(k)), [], 'only the expected kinds')
  for (const version of KUBERNETES_VERSIONS) {
    const result = validate(files, version)
    t.ok(result.ok, `Kubernetes ${version}: no error, no warning`, { output: result.output })
    t.equal(result.passed, docs.length, `Kubernetes ${version}: each of the ${docs.length} documents was checked`)
  }
})

test('the strict check fails an unknown field, a wrong type and an unknown kind', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-k8s-'))
  const gateway = readFileSync(join(k8sDir, 'gateway.yaml'), 'utf8')
  const cases = {
    'a misspelt field': gateway.replace('readinessProbe:', 'readinesProbe:'),
    'a string for an integer': gateway.replace('averageUtilization: 60', 'averageUtilization: "60%"'),
    'an unknown kind': gateway.replace('kind: PodDisruptionBudget', 'kind: PodDisruptionBudgett')
  }
  for (const [what, text] of Object.entries(cases)) {
    t.not(text, gateway, `${what}: the mutation applies`)
    const file = join(dir, 'mutated.yaml')
    writeFileSync(file, text)
    const result = validate([file], KUBERNETES_VERSIONS.at(-1)!)
    t.notOk(result.ok, `${what} is refused`, { output: result.output })
  }
})

test('selectors, ports, names and volumes refer to each other', async t => {
  const docs = documents().map(d => d.doc)
  const deployments = docs.filter(d => d.kind === 'Deployment')
  t.same(deployments.map(d => d.metadata.name).sort(), ['sluice-gateway', 'sluice-ingest'], 'a Deployment for each app')
  for (const deployment of deployments) {
    const name = deployment.metadata.name
    const labels = deployment.spec.template.metadata.labels
    t.ok(matches(deployment.spec.selector.matchLabels, labels), `${name}: its selector matches its pods`)
    const containers: Obj[] = deployment.spec.template.spec.containers
    const services = docs.filter(d => d.kind === 'Service' && matches(d.spec.selector, labels))
    t.equal(services.length, 1, `${name}: one Service selects its pods`)
    for (const port of services[0]?.spec.ports ?? []) {
      const target = port.targetPort
      const found = containers.some(c => (c.ports ?? []).some((p: Obj) => p.name === target || p.containerPort === target))
      t.ok(found, `${name}: Service port ${port.name} targets a container port (${target})`)
    }
    for (const container of containers) {
      for (const probe of probes(container)) {
        t.ok((container.ports ?? []).some((p: Obj) => p.name === probe.port || p.containerPort === probe.port), `${name}: ${probe.name} uses a declared port (${probe.port})`)
      }
      t.ok(probes(container).some(p => p.name === 'readinessProbe') && probes(container).some(p => p.name === 'livenessProbe'), `${name}: readiness and liveness probes`)
      for (const mount of container.volumeMounts ?? []) {
        const volume = deployment.spec.template.spec.volumes.find((v: Obj) => v.name === mount.name)
        t.ok(volume, `${name}: volume ${mount.name} is declared`)
        if (volume?.configMap) {
          t.equal(docs.filter(d => d.kind === 'ConfigMap' && d.metadata.name === volume.configMap.name).length, 1, `${name}: ConfigMap ${volume.configMap.name} is in the manifests`)
          // the kubelet never updates a subPath mount: the policy's hot reload would never see an edit
          t.equal(mount.subPath, undefined, `${name}: ConfigMap ${volume.configMap.name} is mounted as a directory, not a subPath`)
        }
      }
      t.equal(container.securityContext?.allowPrivilegeEscalation, false, `${name}: no privilege escalation`)
      t.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${name}: CPU and memory requests`)
    }
    t.equal(deployment.spec.template.spec.securityContext?.runAsNonRoot, true, `${name}: runAsNonRoot`)
  }

  const hpas = docs.filter(d => d.kind === 'HorizontalPodAutoscaler')
  const pdbs = docs.filter(d => d.kind === 'PodDisruptionBudget')
  t.equal(hpas.length, 1, 'one HorizontalPodAutoscaler: the gateway (ingest replicas would duplicate their feeds)')
  t.equal(pdbs.length, 1, 'one PodDisruptionBudget: the gateway')
  const gateway = one('Deployment', 'sluice-gateway')
  const hpa = hpas[0]!
  t.match(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'sluice-gateway' }, 'the HPA scales the gateway Deployment')
  t.ok(hpa.spec.minReplicas >= 2 && hpa.spec.minReplicas <= hpa.spec.maxReplicas, 'at least two gateway pods, min ≤ max')
  for (const metric of hpa.spec.metrics) {
    // a Utilization target is a share of the request: without one the HPA cannot compute it
    const resource = metric.resource.name
    t.ok(gateway.spec.template.spec.containers.every((c: Obj) => c.resources?.requests?.[resource]), `the HPA's ${resource} target has a ${resource} request to divide by`)
  }
  const pdb = pdbs[0]!
  t.ok(matches(pdb.spec.selector.matchLabels, gateway.spec.template.metadata.labels), 'the PDB selects the gateway pods')
  t.ok(pdb.spec.maxUnavailable !== undefined && pdb.spec.maxUnavailable < hpa.spec.minReplicas, 'the PDB always leaves gateway pods running')
  t.equal(one('Deployment', 'sluice-ingest').spec.replicas, 1, 'one ingest replica')
  t.equal(one('Deployment', 'sluice-ingest').spec.strategy.type, 'Recreate', 'never two ingest pods at once')
})

test('the gateway Deployment: its config and policy load, its probes answer, its grace covers the drain', async t => {
  const deployment = one('Deployment', 'sluice-gateway')
  const container = deployment.spec.template.spec.containers.find((c: Obj) => c.name === 'gateway')
  const secrets = { 'sluice-secrets/redis-url': redisUrl(), 'sluice-secrets/admin-token': LONG_SECRET }
  const env = containerEnv(container, secrets)
  t.same(Object.keys(env).filter(k => !(k in gatewayEnvBindings) && !ENTRY_ENV.includes(k)), [], 'every variable is one the gateway reads')

  const dir = mkdtempSync(join(tmpdir(), 'sluice-k8s-gw-'))
  const { configMap, key, mountPath } = configFile(deployment, container)
  const configDir = renderConfigMap(configMap, join(dir, 'config'))
  // the manifest's values, but this run's broker (the manifest names a cluster Service)
  const config = loadGatewayConfig({ file: join(configDir, key), env: { ...env, KAFKA_BROKERS: kafkaBrokers().join(',') } })
  t.equal(config.redis?.url, redisUrl(), 'Redis from the Secret')
  t.equal(config.admin?.token, LONG_SECRET, 'the admin token from the Secret')
  t.ok(config.server.port === container.ports[0].containerPort, 'the gateway listens on the container port')
  t.not(mountPath, config.policy.dir, 'the config and the policy are separate mounts')

  const policyMount = container.volumeMounts.find((m: Obj) => m.mountPath === config.policy.dir)
  t.ok(policyMount, `the policy dir (${config.policy.dir}) is a volume mount`)
  const policyVolume = deployment.spec.template.spec.volumes.find((v: Obj) => v.name === policyMount?.name)
  const policyDir = renderConfigMap(one('ConfigMap', policyVolume.configMap.name), join(dir, 'policies'))
  const loaded = await loadPolicyDir(policyDir)
  t.same(loaded.problems, [], 'the policy ConfigMap passes the policy check')
  t.same(loaded.files.map(f => f.slice(policyDir.length + 1)), Object.keys(one('ConfigMap', policyVolume.configMap.name).data).sort(), 'every key is read through its ..data symlink')

  // terminationGracePeriodSeconds: the preStop sleep, then the shutdown deadline (which holds the drain)
  const preStop: string[] = container.lifecycle.preStop.exec.command
  t.equal(preStop[0], 'sleep', 'preStop sleeps while the endpoint removal spreads')
  const sleepS = Number(preStop[1])
  const grace = deployment.spec.template.spec.terminationGracePeriodSeconds
  t.ok(sleepS >= 3, `preStop sleep ${sleepS} s: long enough for kube-proxy and load balancers`)
  t.ok(grace * 1000 > sleepS * 1000 + config.server.shutdownTimeoutMs, `grace ${grace} s > preStop ${sleepS} s + shutdownTimeoutMs ${config.server.shutdownTimeoutMs} ms`)
  const drainMs = (config.server as { drainMs?: number }).drainMs
  if (drainMs !== undefined) t.ok(drainMs < config.server.shutdownTimeoutMs, `the drain (${drainMs} ms) fits in the shutdown deadline`)
  const heap = /--max-old-space-size=(\d+)/.exec(env.NODE_OPTIONS ?? '')
  t.ok(heap && Number(heap[1]) * 1024 * 1024 < memoryBytes(container.resources.limits.memory), 'the V8 heap limit is under the memory limit')

  const app = await buildApp({ ...config, policy: { ...config.policy, dir: policyDir }, log: { level: 'silent' } })
  t.teardown(() => app.close())
  await app.ready()
  for (const probe of probes(container)) {
    const res = await app.inject({ method: 'GET', url: probe.path })
    t.equal(res.statusCode, 200, `${probe.name} ${probe.path} answers 200 from the gateway built from this config`)
  }
})

test('the ingest Deployment: its feeds load and its probes answer', async t => {
  const deployment = one('Deployment', 'sluice-ingest')
  const container = deployment.spec.template.spec.containers[0]
  // a feed URL nobody listens on: the feed reconnects, the process still answers its probes
  const feedUrl = `ws://127.0.0.1:${await freePort()}/feed`
  const env = containerEnv(container, { 'sluice-ingest-secrets/feed-url': feedUrl })
  const { configMap, key } = configFile(deployment, container)
  const referenced = [...configMap.data[key].matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g)].map(m => m[1])
  t.same(Object.keys(env).filter(k => !(k in ingestEnvBindings) && !ENTRY_ENV.includes(k) && !referenced.includes(k)), [], 'every variable is one the ingest app or its feeds read')
  t.same(referenced.filter(name => env[name] === undefined), [], 'every env reference in the feeds has its variable')

  const dir = renderConfigMap(configMap, join(mkdtempSync(join(tmpdir(), 'sluice-k8s-ingest-')), 'config'))
  const config = loadIngestConfig({ file: join(dir, key), env: { ...env, KAFKA_BROKERS: kafkaBrokers().join(',') } })
  t.equal(config.feeds[0]?.url, feedUrl, 'the feed URL from the Secret')
  t.equal(config.server.port, container.ports[0].containerPort, 'the ingest app listens on the container port')
  t.ok(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000 > config.server.shutdownTimeoutMs, 'the grace covers the flush deadline')
  t.same(container.command, ['node', 'apps/ingest/src/server.ts'], 'the ingest entry')
  t.ok(existsSync(join(root, container.command[1])), 'which exists')

  const app = await buildIngestApp({ ...config, log: { level: 'silent' } }, { defaultMetrics: false })
  t.teardown(() => app.close())
  await app.ready()
  const health = await app.inject({ method: 'GET', url: container.livenessProbe.httpGet.path })
  t.equal(health.statusCode, 200, `liveness ${container.livenessProbe.httpGet.path} answers 200`)
  const ready = await app.inject({ method: 'GET', url: container.readinessProbe.httpGet.path })
  // not ready while its feed is unreachable, or ready: either way the route exists and reports
  t.ok([200, 503].includes(ready.statusCode), `readiness ${container.readinessProbe.httpGet.path} answers (${ready.statusCode})`)
  t.type(ready.json().checks, 'object', 'with its checks')
})

test('the pods run the image\'s non-root user and entries', async t => {
  const stages = parseDockerfile(readFileSync(join(root, 'deploy', 'docker', 'Dockerfile'), 'utf8'))
  const user = stages.at(-1)!.instructions.filter(i => i.keyword === 'USER').at(-1)?.args ?? ''
  const [uid, gid] = user.split(':').map(Number)
  for (const name of ['sluice-gateway', 'sluice-ingest']) {
    const spec = one('Deployment', name).spec.template.spec
    t.equal(spec.securityContext.runAsUser, uid, `${name}: runAsUser is the image's USER (${uid})`)
    t.equal(spec.securityContext.runAsGroup, gid, `${name}: runAsGroup is the image's group (${gid})`)
    t.same([...new Set(spec.containers.map((c: Obj) => c.image.split(':')[0]))], ['sluice'], `${name}: the sluice image`)
  }
})

function memoryBytes (quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity)
  if (!m) throw new Error(`memory quantity ${quantity}: only Ki, Mi, Gi are expected`)
  return Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as 'Ki' | 'Mi' | 'Gi'] ?? 1)
}
