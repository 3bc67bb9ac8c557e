// The local dev stack without Docker: a real Apache Kafka 4.x broker (KRaft,
// single node) run from its Maven Central jars, and Debian's redis-server; or
// a cluster of N such nodes (KafkaCluster: replication factor N, production
// group settings) for the suites that kill a partition leader.
// Used by dev mode, the test runner and CI; importable, and a CLI (deploy/local/stack.ts):
//
//   node deploy/local/stack.ts up [--kafka-port 9092] [--redis-port 6379] [--no-redis] [--brokers N]
//        starts both in the foreground, prints where they are, stops them on Ctrl-C;
//        --brokers 3 starts a three-node cluster on ports kafka-port, +1, +2
//   node deploy/local/stack.ts fetch      only fetches the broker jars (CI warms the cache)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHash, randomUUID } from 'node:crypto'
import { KafkaClient } from '@sluice/kafka'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolvePath(here, '../../..')
const cacheDir = join(root, '.cache', 'kafka')
const libsDir = join(cacheDir, 'libs')
// 6 s is what a cold broker takes here to answer metadata; 90 s covers a slow CI machine's JIT warm-up
const KAFKA_READY_TIMEOUT_MS = 90_000
// a broker asked to stop flushes its logs and leaves the quorum in ~1-2 s; past 15 s it is killed
const KAFKA_STOP_TIMEOUT_MS = 15_000
// a broker or Redis that lost a port it picked to another process's connection picks again (KafkaBroker.start)
const PORT_ATTEMPTS = 3

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

function log (message: string): void {
  process.stderr.write(`[stack] ${message}\n`)
}

const pomFile = join(here, '..', 'kafka', 'pom.xml')

/**
 * Fetches the broker jars into .cache/kafka/libs once; later calls find them there. The marker
 * holds the pom's hash: a pom that lists more (kafka-tools was added after the first fetches)
 * fetches again.
 */
export function fetchKafka (): string {
  const marker = join(libsDir, '.complete')
  const pom = createHash('sha256').update(readFileSync(pomFile)).digest('hex')
  if (existsSync(marker) && readFileSync(marker, 'utf8').includes(pom)) return libsDir
  // Java 17 runs Kafka 4.x; Maven fetches its jars with their dependencies
  const needed = [...(process.env.JAVA_HOME || found('java') ? [] : ['openjdk-17-jre-headless']), ...(found('mvn') ? [] : ['maven'])]
  if (needed.length > 0) aptInstall(needed)
  log('fetching the Kafka broker jars from Maven Central (once)')
  rmSync(libsDir, { recursive: true, force: true })
  // mvn's output is kept and shown only on failure: even with -q -B it writes bare ANSI resets
  // (ESC[0m, measured with -Dstyle.color=never too) into a newcomer's first `npm run dev`
  const result = spawnSync('mvn', [
    '-q', '-B', '-f', pomFile,
    'dependency:copy-dependencies', `-DoutputDirectory=${libsDir}`, '-DincludeScope=runtime'
  ], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (result.status !== 0) {
    process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`)
    throw new Error(`mvn could not fetch the Kafka jars (exit ${result.status})`)
  }
  writeFileSync(marker, `${new Date().toISOString()} ${pom}\n`)
  return libsDir
}

const CONSOLE_PRODUCER_TIMEOUT_MS = 60_000

/**
 * Runs Kafka's command-line producer (org.apache.kafka.tools.ConsoleProducer, the Java client)
 * with `args`, one record per line of `input`; resolves once it exited 0, rejects with its output
 * otherwise.
 */
export async function consoleProducer (args: string[], input: string): Promise<void> {
  const classpath = join(fetchKafka(), '*')
  const child = spawn(java(), ['-Xmx256m', '-cp', classpath, 'org.apache.kafka.tools.ConsoleProducer', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  child.stdin.end(input)
  // a JVM start and a flush take seconds; one that hangs (a broker gone) is ended, not waited on for the suite's limit
  const deadline = setTimeout(() => child.kill('SIGKILL'), CONSOLE_PRODUCER_TIMEOUT_MS)
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', resolve)
  }).finally(() => clearTimeout(deadline))
  if (code !== 0) throw new Error(`ConsoleProducer exited ${code ?? 'on SIGKILL after ' + CONSOLE_PRODUCER_TIMEOUT_MS + ' ms'}: ${output.slice(-2000)}`)
}

function java (): string {
  const home = process.env.JAVA_HOME
  return home ? join(home, 'bin', 'java') : 'java'
}

export interface SecureListeners {
  /** SASL users, name: password (PLAIN and SCRAM-SHA-256/512) */
  users: Record<string, string>
  /** a client certificate (PEM) the mTLS listener trusts */
  clientCertPem?: string
}

export interface KafkaBrokerOptions {
  port?: number
  /** KRaft store and broker log; a fresh temp dir unless given */
  dataDir?: string
  /**
   * -Xmx for the broker: 1 GiB, Kafka's own default (kafka-server-start.sh). 512 MiB ran out of
   * heap (OutOfMemoryError, the broker dead) on the shared dev broker here at 12,319 partitions,
   * after an hour of suites and 1,000-topic benchmarks
   */
  heap?: string
  /** one node of a KafkaCluster; a lone broker is its own quorum otherwise */
  member?: ClusterMember
  /** how it picks a port when none is given: freePort (tests give one that hands out a taken port first) */
  pickPort?: () => Promise<number>
  /**
   * A second listener as managed Kafka runs one: SASL_SSL (TLS with a self-signed certificate for
   * 127.0.0.1, its PEM in `caPem`; SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512), at `secureBrokers`,
   * for `users` (name: password); and a third, SASL_PLAINTEXT (the same SASL, no TLS), at
   * `saslPlaintextBrokers`. With `clientCertPem`, a fourth, SSL with client certificates required
   * (mTLS, as Aiven runs by default), trusting that certificate alone, at `mtlsBrokers`. The
   * PLAINTEXT listener stays, for the broker's own and the tests' admin.
   */
  secure?: SecureListeners
}

/** What a cluster tells each of its nodes: who it is, the quorum, how many copies. */
export interface ClusterMember {
  nodeId: number
  controllerPort: number
  /** controller.quorum.voters: every node's id@host:controller-port */
  voters: string
  clusterId: string
  /** the cluster's size: the replication factor of every topic, internal ones included */
  replicas: number
}

export class KafkaBroker {
  readonly dataDir: string
  port = 0
  controllerPort = 0
  /** the SASL_SSL listener's port (KafkaBrokerOptions.secure) */
  securePort = 0
  /** the SASL_PLAINTEXT listener's port (KafkaBrokerOptions.secure): SASL with no TLS, as inside a private network */
  saslPlaintextPort = 0
  /** the mTLS listener's port (KafkaBrokerOptions.secure.clientCertPem) */
  mtlsPort = 0
  /** the SASL_SSL listener's certificate, PEM: what a client trusts */
  caPem = ''
  readonly #secure: SecureListeners | undefined
  #child: ChildProcess | undefined
  #exited: Promise<void> | undefined
  readonly #heap: string
  readonly #ownsDir: boolean
  readonly #member: ClusterMember | undefined
  readonly #pickPort: () => Promise<number>

  constructor (options: KafkaBrokerOptions = {}) {
    this.#pickPort = options.pickPort ?? freePort
    this.#ownsDir = options.dataDir === undefined
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'sluice-kafka-'))
    this.port = options.port ?? 0
    this.#heap = options.heap ?? '1g'
    this.#member = options.member
    this.controllerPort = options.member?.controllerPort ?? 0
    this.#secure = options.secure
  }

  get nodeId (): number {
    return this.#member?.nodeId ?? 1
  }

  /** the JVM's process id while it runs */
  get pid (): number | undefined {
    return this.#child?.pid
  }

  get brokers (): string[] {
    return [`127.0.0.1:${this.port}`]
  }

  /** the SASL_SSL listener (KafkaBrokerOptions.secure) */
  get secureBrokers (): string[] {
    return [`127.0.0.1:${this.securePort}`]
  }

  /** the SASL_PLAINTEXT listener (KafkaBrokerOptions.secure) */
  get saslPlaintextBrokers (): string[] {
    return [`127.0.0.1:${this.saslPlaintextPort}`]
  }

  /** the mTLS listener (KafkaBrokerOptions.secure.clientCertPem) */
  get mtlsBrokers (): string[] {
    return [`127.0.0.1:${this.mtlsPort}`]
  }

  /** the SASL_SSL listener's key and certificate (PKCS12), for a TLS server of a test's own that clients should trust as the broker */
  get keystore (): { pfx: Buffer, passphrase: string } {
    return { pfx: readFileSync(join(this.dataDir, KEYSTORE)), passphrase: KEYSTORE_PASSWORD }
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  #writeConfig (): string {
    const logDirs = join(this.dataDir, 'data')
    const file = join(this.dataDir, 'server.properties')
    const member = this.#member
    const plainUsers = Object.entries(this.#secure?.users ?? {}).map(([name, password]) => `user_${name}="${password}"`).join(' ')
    const saslListener = (name: string) => [
      `listener.name.${name}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
      `listener.name.${name}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
      `listener.name.${name}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`
    ]
    const keystore = (name: string) => [
      `listener.name.${name}.ssl.keystore.location=${join(this.dataDir, KEYSTORE)}`,
      `listener.name.${name}.ssl.keystore.password=${KEYSTORE_PASSWORD}`,
      `listener.name.${name}.ssl.keystore.type=PKCS12`
    ]
    const mtls = this.#secure?.clientCertPem !== undefined
    const secure = this.#secure
      ? {
          listener: `,SASL_SSL://127.0.0.1:${this.securePort},SASL_PLAINTEXT://127.0.0.1:${this.saslPlaintextPort}${mtls ? `,SSL://127.0.0.1:${this.mtlsPort}` : ''}`,
          settings: [
            'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
            ...saslListener('sasl_ssl'),
            ...saslListener('sasl_plaintext'),
            ...keystore('sasl_ssl'),
            ...(mtls
              ? [
                  ...keystore('ssl'),
                  'listener.name.ssl.ssl.client.auth=required',
                  `listener.name.ssl.ssl.truststore.location=${join(this.dataDir, TRUSTSTORE)}`,
                  `listener.name.ssl.ssl.truststore.password=${KEYSTORE_PASSWORD}`,
                  'listener.name.ssl.ssl.truststore.type=PKCS12'
                ]
              : [])
          ]
        }
      : { listener: '', settings: [] }
    writeFileSync(file, [
      'process.roles=broker,controller',
      `node.id=${this.nodeId}`,
      `controller.quorum.voters=${member?.voters ?? `1@127.0.0.1:${this.controllerPort}`}`,
      `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}${secure.listener}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}${secure.listener}`,
      'controller.listener.names=CONTROLLER',
      `listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${this.#secure ? ',SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL' : ''}`,
      'inter.broker.listener.name=PLAINTEXT',
      ...secure.settings,
      `log.dirs=${logDirs}`,
      ...(member && member.replicas > 1
        ? [
            // a cluster keeps every partition on every node, and an acked write on two of them: one node
            // can die without losing an acked record or refusing a write (what a production cluster of 3 does)
            `default.replication.factor=${member.replicas}`,
            `min.insync.replicas=${member.replicas - 1}`,
            `offsets.topic.replication.factor=${member.replicas}`,
            `transaction.state.log.replication.factor=${member.replicas}`,
            `transaction.state.log.min.isr=${member.replicas - 1}`,
            `share.coordinator.state.topic.replication.factor=${member.replicas}`,
            `share.coordinator.state.topic.min.isr=${member.replicas - 1}`
          ]
        : [
            // one node: every internal topic has one replica
            'offsets.topic.replication.factor=1',
            'transaction.state.log.replication.factor=1',
            'transaction.state.log.min.isr=1',
            'share.coordinator.state.topic.replication.factor=1',
            'share.coordinator.state.topic.min.isr=1'
          ]),
      // 4 instead of 50 partitions: the first group join creates them, and 50 take seconds here
      'offsets.topic.num.partitions=4',
      'transaction.state.log.num.partitions=4',
      // group.initial.rebalance.delay.ms stays at Kafka's default (3 s), as on every production broker
      // (Apache Kafka, MSK, Confluent Cloud): the suites and dev mode see the group joins users see
      // topics are created on purpose (dev mode, admin); a typo must not create one
      'auto.create.topics.enable=false',
      'num.partitions=1',
      ''
    ].join('\n'))
    return file
  }

  /**
   * Starts the broker (formatting its store on first start) and waits until it answers metadata.
   * Ports it picks itself (freePort) are free when picked, but an outgoing connection of any
   * process may take one as its local port before the JVM binds it: the broker then exits with
   * "Address already in use" (once in a clean-clone CI run, test/ingest/kafka-outage). It picks
   * both again and starts again, 3 attempts in all. Ports given, or kept from an earlier start
   * (a restart: clients know the address), are not changed.
   */
  async start (): Promise<void> {
    if (this.#child) return
    const ownPorts = this.port === 0 && this.controllerPort === 0 && !this.#member
    for (let attempt = 1; ; attempt++) {
      const logFrom = existsSync(this.#logFile) ? statSync(this.#logFile).size : 0
      try {
        await this.#start()
        return
      } catch (err) {
        if (!ownPorts || attempt === PORT_ATTEMPTS || this.#child || !this.#bindFailed(logFrom)) throw err
        log(`Kafka: a port picked was taken before the broker bound it; picking again (attempt ${attempt + 1} of ${PORT_ATTEMPTS})`)
        this.port = 0
        this.controllerPort = 0
        this.securePort = 0
        this.saslPlaintextPort = 0
        this.mtlsPort = 0
      }
    }
  }

  get #logFile (): string {
    return join(this.dataDir, 'broker.log')
  }

  /** the broker's log since `from` says a listener could not bind */
  #bindFailed (from: number): boolean {
    if (!existsSync(this.#logFile)) return false
    return readFileSync(this.#logFile).subarray(from).toString().includes('Address already in use')
  }

  async #start (): Promise<void> {
    const libs = fetchKafka()
    if (this.port === 0) this.port = await this.#pickPort()
    if (this.controllerPort === 0) this.controllerPort = await this.#pickPort()
    if (this.#secure) {
      if (this.securePort === 0) this.securePort = await this.#pickPort()
      if (this.saslPlaintextPort === 0) this.saslPlaintextPort = await this.#pickPort()
      if (!existsSync(join(this.dataDir, KEYSTORE))) await this.#makeKeystore()
      if (this.#secure.clientCertPem !== undefined) {
        if (this.mtlsPort === 0) this.mtlsPort = await this.#pickPort()
        if (!existsSync(join(this.dataDir, TRUSTSTORE))) await this.#makeTruststore(this.#secure.clientCertPem)
      }
    }
    const config = this.#writeConfig()
    const classpath = join(libs, '*')
    if (!existsSync(join(this.dataDir, 'data', 'meta.properties'))) {
      // SCRAM credentials live in the cluster's metadata: written at format time, as KRaft takes them
      const scram = Object.entries(this.#secure?.users ?? {}).flatMap(([name, password]) =>
        ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap(mechanism => ['--add-scram', `${mechanism}=[name=${name},password=${password}]`]))
      // asynchronous: a cluster's nodes format side by side (a JVM start each, ~1.5 s here)
      const format = await runJava(['-cp', classpath, 'kafka.tools.StorageTool', 'format',
        '-t', this.#member?.clusterId ?? kafkaClusterId(), '-c', config, ...scram])
      if (format.status !== 0) throw new Error(`kafka storage format failed: ${format.output}`)
    }
    const out = createWriteStream(this.#logFile, { flags: 'a' })
    const [command, ...args] = dieWithParent([java(),
      `-Xmx${this.#heap}`, '-Xms128m', '-XX:+UseG1GC', '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${join(here, '..', 'kafka', 'log4j2.properties')}`,
      '-cp', classpath, 'kafka.Kafka', config
    ])
    const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.pipe(out)
    child.stderr?.pipe(out)
    this.#child = child
    this.#exited = new Promise(resolve => child.once('exit', () => {
      this.#child = undefined
      resolve()
    }))
    await this.#waitReady()
  }

  /** A self-signed certificate for 127.0.0.1 and localhost, in a PKCS12 keystore; its PEM in caPem. */
  /** A PKCS12 truststore holding the one client certificate the mTLS listener accepts. */
  async #makeTruststore (clientCertPem: string): Promise<void> {
    const pem = join(this.dataDir, 'client-cert.pem')
    writeFileSync(pem, clientCertPem)
    const made = await runTool(keytool(), ['-importcert', '-noprompt', '-alias', 'client', '-file', pem,
      '-keystore', join(this.dataDir, TRUSTSTORE), '-storetype', 'PKCS12', '-storepass', KEYSTORE_PASSWORD])
    if (made.status !== 0) throw new Error(`keytool could not make the broker's truststore: ${made.output}`)
  }

  async #makeKeystore (): Promise<void> {
    const keystore = join(this.dataDir, KEYSTORE)
    const made = await runTool(keytool(), ['-genkeypair', '-alias', 'broker', '-keyalg', 'RSA', '-keysize', '2048', '-validity', '7',
      '-dname', 'CN=localhost', '-ext', 'SAN=ip:127.0.0.1,dns:localhost',
      '-keystore', keystore, '-storetype', 'PKCS12', '-storepass', KEYSTORE_PASSWORD, '-keypass', KEYSTORE_PASSWORD])
    if (made.status !== 0) throw new Error(`keytool could not make the broker's keystore: ${made.output}`)
    const pem = await runTool(keytool(), ['-exportcert', '-rfc', '-alias', 'broker', '-keystore', keystore, '-storepass', KEYSTORE_PASSWORD])
    if (pem.status !== 0) throw new Error(`keytool could not export the broker's certificate: ${pem.output}`)
    this.caPem = pem.output.slice(pem.output.indexOf('-----BEGIN CERTIFICATE-----'))
  }

  async #waitReady (): Promise<void> {
    const client = new KafkaClient({ brokers: this.brokers, clientId: 'sluice-stack', connectionTimeoutMs: 1000 })
    const deadline = Date.now() + KAFKA_READY_TIMEOUT_MS
    try {
      for (;;) {
        if (!this.#child) throw new Error(`the Kafka broker exited while starting; see ${join(this.dataDir, 'broker.log')}`)
        try {
          await client.ping(2000)
          return
        } catch {
          if (Date.now() > deadline) throw new Error(`the Kafka broker did not answer within ${KAFKA_READY_TIMEOUT_MS} ms; see ${join(this.dataDir, 'broker.log')}`)
          await new Promise(resolve => setTimeout(resolve, 250))
        }
      }
    } finally {
      await client.close()
    }
  }

  /** Stops the broker cleanly (SIGTERM), killing it past the deadline; keeps its store for a restart. */
  async stop (): Promise<void> {
    const child = this.#child
    if (!child) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), KAFKA_STOP_TIMEOUT_MS)
    await this.#exited
    clearTimeout(timer)
  }

  /** Kills the broker at once (SIGKILL: no controlled shutdown, no flush), as a crashed machine; keeps its store for a restart. */
  async kill (): Promise<void> {
    const child = this.#child
    if (!child) return
    child.kill('SIGKILL')
    await this.#exited
  }

  /** Stops the broker and removes its store if this object made it. */
  async destroy (): Promise<void> {
    await this.stop()
    if (this.#ownsDir) rmSync(this.dataDir, { recursive: true, force: true })
  }
}

export interface KafkaClusterOptions {
  /** how many nodes, each broker and controller (the KRaft quorum has as many voters); 3 unless given */
  brokers?: number
  /** the first node's client port, the next ones following it; free ports unless given */
  port?: number
  /** -Xmx of each node: three of them fit beside the suites on a 2-core machine */
  heap?: string
}

/**
 * N Kafka nodes, each broker and controller, as a production cluster: every topic has N replicas,
 * an acked write is on N-1 of them (min.insync.replicas), Kafka's default group settings. Nodes
 * can be killed and restarted one at a time; their stores live in one temp dir.
 */
export class KafkaCluster {
  readonly nodes: KafkaBroker[] = []
  readonly dataDir: string
  readonly #options: KafkaClusterOptions

  constructor (options: KafkaClusterOptions = {}) {
    this.#options = options
    removeOrphanStores()
    this.dataDir = mkdtempSync(join(tmpdir(), CLUSTER_DIR_PREFIX))
    // whose it is: a process killed outright (SIGKILL) takes its JVMs along (dieWithParent) but not its stores
    writeFileSync(join(this.dataDir, 'owner.pid'), String(process.pid))
  }

  /** every node's client address: a client bootstraps from any that is up */
  get brokers (): string[] {
    return this.nodes.map(n => `127.0.0.1:${n.port}`)
  }

  /** the node with this id (1..N) */
  node (nodeId: number): KafkaBroker {
    const node = this.nodes.find(n => n.nodeId === nodeId)
    if (!node) throw new Error(`no node ${nodeId} in this cluster`)
    return node
  }

  /** Starts every node (formatting the stores on first start) and waits until each answers metadata. */
  async start (): Promise<void> {
    if (this.nodes.length === 0) {
      const count = this.#options.brokers ?? 3
      const ports: number[] = []
      for (let i = 0; i < count; i++) ports.push(this.#options.port ? this.#options.port + i : await freePort())
      const controllerPorts: number[] = []
      while (controllerPorts.length < count) {
        const port = await freePort()
        if (!ports.includes(port) && !controllerPorts.includes(port)) controllerPorts.push(port)
      }
      const voters = controllerPorts.map((port, i) => `${i + 1}@127.0.0.1:${port}`).join(',')
      const clusterId = kafkaClusterId()
      for (let i = 0; i < count; i++) {
        const dataDir = join(this.dataDir, `node-${i + 1}`)
        mkdirSync(dataDir, { recursive: true })
        this.nodes.push(new KafkaBroker({
          port: ports[i],
          dataDir,
          heap: this.#options.heap ?? '512m',
          member: { nodeId: i + 1, controllerPort: controllerPorts[i]!, voters, clusterId, replicas: count }
        }))
      }
    }
    // side by side: a node answers only once the quorum has elected a controller, which takes a majority
    const started = await Promise.allSettled(this.nodes.map(n => n.start()))
    const failed = started.find(r => r.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
  }

  /**
   * Kills every node and removes the stores. Not a clean stop: nothing is kept, and nodes stopped
   * together wait on each other's controlled shutdown (a SIGINT of `stack up --brokers 3` took ~10 s).
   */
  async destroy (): Promise<void> {
    await Promise.allSettled(this.nodes.map(n => n.kill()))
    rmSync(this.dataDir, { recursive: true, force: true })
  }
}

const CLUSTER_DIR_PREFIX = 'sluice-kafka-cluster-'

/** Removes the stores of clusters whose process is gone (killed outright: no teardown ran). */
function removeOrphanStores (): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(CLUSTER_DIR_PREFIX)) continue
    const dir = join(tmpdir(), name)
    let owner: number
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'))
    } catch {
      continue
    }
    try {
      process.kill(owner, 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(dir, { recursive: true, force: true })
    }
  }
}

async function runJava (args: string[]): Promise<{ status: number | null, output: string }> {
  return runTool(java(), args)
}

// the SASL_SSL listener's keystore, in the broker's data dir; its password guards nothing outside a test
const KEYSTORE = 'broker.p12'
const TRUSTSTORE = 'trust.p12'
const KEYSTORE_PASSWORD = 'sluice-test'

function keytool (): string {
  const home = process.env.JAVA_HOME
  return home ? join(home, 'bin', 'keytool') : 'keytool'
}

async function runTool (command: string, args: string[]): Promise<{ status: number | null, output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', chunk => { output += chunk })
    child.stderr.on('data', chunk => { output += chunk })
    child.once('error', reject)
    child.once('close', status => resolve({ status, output }))
  })
}

let setpriv: string | null | undefined

/**
 * The command run so that the kernel kills the JVM when this process dies (util-linux's setpriv
 * sets PR_SET_PDEATHSIG, kept across exec): a test process killed by its timeout, or a Ctrl-C
 * that never reached a handler, leaves no broker behind holding 500 MiB and its ports.
 */
function dieWithParent (command: string[]): string[] {
  setpriv ??= found('setpriv') ?? null
  return setpriv ? [setpriv, '--pdeathsig', 'KILL', '--', ...command] : command
}

export function kafkaClusterId (): string {
  // a Kafka cluster id is 16 random bytes in URL-safe base64 without padding. One that starts
  // with '-' reads as an option to kafka-storage's argument parser (a CI run failed on it), so
  // draw again, as Kafka's own Uuid.randomUuid() does.
  for (;;) {
    const id = Buffer.from(randomUUID().replaceAll('-', ''), 'hex').toString('base64url')
    if (!id.startsWith('-')) return id
  }
}

/** Installs Debian packages (as root, or through sudo) for what a fresh machine lacks. */
function aptInstall (packages: string[]): void {
  log(`installing Debian packages: ${packages.join(' ')}`)
  const sudo = process.getuid?.() === 0 ? [] : ['sudo']
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['apt-get', 'update', '-q'], ['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...packages]]) {
    const cmd = [...sudo, ...args]
    const result = spawnSync(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env })
    if (result.status !== 0) throw new Error(`${cmd.join(' ')} failed (exit ${result.status})`)
  }
}

function found (command: string): string | undefined {
  const which = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' })
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : undefined
}

function redisServerPath (): string {
  const path = found('redis-server') ?? (existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : undefined)
  if (path) return path
  aptInstall(['redis-server'])
  return '/usr/bin/redis-server'
}

export class RedisServer {
  port = 0
  #child: ChildProcess | undefined
  #exited: Promise<void> | undefined

  readonly #pickPort: () => Promise<number>

  /** `pickPort`: how it picks a port when none is given (freePort; KafkaBrokerOptions.pickPort) */
  constructor (options: { port?: number, pickPort?: () => Promise<number> } = {}) {
    this.port = options.port ?? 0
    this.#pickPort = options.pickPort ?? freePort
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  /** Starts redis-server; a port it picked itself and lost before binding it is picked again (KafkaBroker.start). */
  async start (): Promise<void> {
    if (this.#child) return
    const ownPort = this.port === 0
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#start()
        return
      } catch (err) {
        // redis-server exits at once when its port is taken; its output is not kept, so any exit while starting counts
        if (!ownPort || attempt === PORT_ATTEMPTS || this.#child || !String((err as Error).message).includes('exited while starting')) throw err
        log(`Redis: exited while starting on port ${this.port}; picking another (attempt ${attempt + 1} of ${PORT_ATTEMPTS})`)
        this.port = 0
      }
    }
  }

  async #start (): Promise<void> {
    const bin = redisServerPath()
    if (this.port === 0) this.port = await this.#pickPort()
    // no persistence: the local stack holds nothing worth keeping across runs
    const child = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'ignore'] })
    this.#child = child
    this.#exited = new Promise(resolve => child.once('exit', () => {
      this.#child = undefined
      resolve()
    }))
    // answered PING = ready; 10 s is far beyond the ~50 ms it takes here
    const deadline = Date.now() + 10_000
    while (!(await redisPing(this.port))) {
      if (!this.#child) throw new Error('redis-server exited while starting')
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING within 10 s')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  async stop (): Promise<void> {
    const child = this.#child
    if (!child) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await this.#exited
    clearTimeout(timer)
  }
}

async function redisPing (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    let seen = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', chunk => {
      seen += chunk.toString()
      if (seen.includes('\r\n')) done(seen.startsWith('+PONG'))
    })
  })
}

function argValue (args: string[], name: string): string | undefined {
  const index = args.indexOf(name)
  return index >= 0 ? args[index + 1] : undefined
}

export async function main (args: string[]): Promise<void> {
  mkdirSync(cacheDir, { recursive: true })
  const command = args[0]
  if (command === 'fetch') {
    fetchKafka()
    log(`Kafka jars in ${libsDir}: ${readdirSync(libsDir).filter(f => f.endsWith('.jar')).length} files`)
    return
  }
  if (command !== 'up') {
    process.stderr.write('usage: stack.ts up [--kafka-port N] [--redis-port N] [--no-redis] [--brokers N] | fetch\n')
    process.exitCode = 2
    return
  }
  await stackUp({
    kafkaPort: Number(argValue(args, '--kafka-port') ?? 9092),
    redisPort: Number(argValue(args, '--redis-port') ?? 6379),
    redis: !args.includes('--no-redis'),
    brokers: Number(argValue(args, '--brokers') ?? 1)
  })
}

/** `stack up`: Kafka (and Redis) in the foreground until SIGINT or SIGTERM, which stop both. */
export async function stackUp (options: { kafkaPort?: number, redisPort?: number, redis: boolean, brokers?: number }): Promise<void> {
  mkdirSync(cacheDir, { recursive: true })
  const brokers = options.brokers ?? 1
  if (!Number.isInteger(brokers) || brokers < 1) throw new Error(`--brokers takes a whole number from 1, not ${options.brokers}`)
  const kafka = brokers === 1
    ? new KafkaBroker({ port: options.kafkaPort ?? 9092 })
    : new KafkaCluster({ brokers, port: options.kafkaPort ?? 9092 })
  const redis = options.redis ? new RedisServer({ port: options.redisPort ?? 6379 }) : undefined
  const stop = async () => {
    log('stopping')
    await Promise.allSettled([kafka.destroy(), redis?.stop()])
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const started = Date.now()
  await kafka.start()
  log(`Kafka ${kafka.brokers.join(',')} ready in ${Date.now() - started} ms (store ${kafka.dataDir})`)
  if (redis) {
    await redis.start()
    log(`Redis ${redis.url} ready`)
  }
  log(redis ? 'Ctrl-C stops both' : 'Ctrl-C stops it')
}
