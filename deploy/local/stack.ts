// The local dev stack without Docker: a real Apache Kafka 4.x broker (KRaft,
// single node) run from its Maven Central jars, and Debian's redis-server.
// Used by dev mode, the test runner and CI; importable, and a CLI:
//
//   node deploy/local/stack.ts up [--kafka-port 9092] [--redis-port 6379] [--no-redis]
//        starts both in the foreground, prints where they are, stops them on Ctrl-C
//   node deploy/local/stack.ts fetch      only fetches the broker jars (CI warms the cache)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomUUID } from 'node:crypto'
import { KafkaClient } from '../../plugins/kafka/src/kafka.ts'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolvePath(here, '../..')
const cacheDir = join(root, '.cache', 'kafka')
const libsDir = join(cacheDir, 'libs')
// 6 s is what a cold broker takes here to answer metadata; 90 s covers a slow CI machine's JIT warm-up
const KAFKA_READY_TIMEOUT_MS = 90_000
// a broker asked to stop flushes its logs and leaves the quorum in ~1-2 s; past 15 s it is killed
const KAFKA_STOP_TIMEOUT_MS = 15_000

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

/** Fetches the broker jars into .cache/kafka/libs once; later calls find them there. */
export function fetchKafka (): string {
  const marker = join(libsDir, '.complete')
  if (existsSync(marker)) return libsDir
  // Java 17 runs Kafka 4.x; Maven fetches its jars with their dependencies
  const needed = [...(process.env.JAVA_HOME || found('java') ? [] : ['openjdk-17-jre-headless']), ...(found('mvn') ? [] : ['maven'])]
  if (needed.length > 0) aptInstall(needed)
  log('fetching the Kafka broker jars from Maven Central (once)')
  rmSync(libsDir, { recursive: true, force: true })
  // mvn's output is kept and shown only on failure: even with -q -B it writes bare ANSI resets
  // (ESC[0m, measured with -Dstyle.color=never too) into a newcomer's first `npm run dev`
  const result = spawnSync('mvn', [
    '-q', '-B', '-f', join(here, 'kafka', 'pom.xml'),
    'dependency:copy-dependencies', `-DoutputDirectory=${libsDir}`, '-DincludeScope=runtime'
  ], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (result.status !== 0) {
    process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`)
    throw new Error(`mvn could not fetch the Kafka jars (exit ${result.status})`)
  }
  writeFileSync(marker, new Date().toISOString() + '\n')
  return libsDir
}

function java (): string {
  const home = process.env.JAVA_HOME
  return home ? join(home, 'bin', 'java') : 'java'
}

export interface KafkaBrokerOptions {
  port?: number
  /** KRaft store and broker log; a fresh temp dir unless given */
  dataDir?: string
  /** -Xmx for the broker; 512 MiB serves the tests and the benchmarks here */
  heap?: string
  /** leave group.initial.rebalance.delay.ms at Kafka's default (3 s), as a production broker has: benchmarks of group joins */
  productionGroupSettings?: boolean
}

export class KafkaBroker {
  readonly dataDir: string
  port = 0
  controllerPort = 0
  #child: ChildProcess | undefined
  #exited: Promise<void> | undefined
  readonly #heap: string
  readonly #ownsDir: boolean
  readonly #productionGroupSettings: boolean

  constructor (options: KafkaBrokerOptions = {}) {
    this.#ownsDir = options.dataDir === undefined
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'sluice-kafka-'))
    this.port = options.port ?? 0
    this.#heap = options.heap ?? '512m'
    this.#productionGroupSettings = options.productionGroupSettings ?? false
  }

  get brokers (): string[] {
    return [`127.0.0.1:${this.port}`]
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  #writeConfig (): string {
    const logDirs = join(this.dataDir, 'data')
    const file = join(this.dataDir, 'server.properties')
    writeFileSync(file, [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${this.controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'inter.broker.listener.name=PLAINTEXT',
      `log.dirs=${logDirs}`,
      // one node: every internal topic has one replica
      'offsets.topic.replication.factor=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      // 4 instead of 50 partitions: the first group join creates them, and 50 take seconds here
      'offsets.topic.num.partitions=4',
      'transaction.state.log.num.partitions=4',
      // groups form at once instead of after 3 s: tests and dev mode join many short-lived groups
      ...(this.#productionGroupSettings ? [] : ['group.initial.rebalance.delay.ms=0']),
      // topics are created on purpose (dev mode, admin); a typo must not create one
      'auto.create.topics.enable=false',
      'num.partitions=1',
      ''
    ].join('\n'))
    return file
  }

  /** Starts the broker (formatting its store on first start) and waits until it answers metadata. */
  async start (): Promise<void> {
    if (this.#child) return
    const libs = fetchKafka()
    if (this.port === 0) this.port = await freePort()
    if (this.controllerPort === 0) this.controllerPort = await freePort()
    const config = this.#writeConfig()
    const classpath = join(libs, '*')
    if (!existsSync(join(this.dataDir, 'data', 'meta.properties'))) {
      const format = spawnSync(java(), ['-cp', classpath, 'kafka.tools.StorageTool', 'format',
        '-t', kafkaClusterId(), '-c', config], { encoding: 'utf8' })
      if (format.status !== 0) throw new Error(`kafka storage format failed: ${format.stderr || format.stdout}`)
    }
    const out = createWriteStream(join(this.dataDir, 'broker.log'), { flags: 'a' })
    const child = spawn(java(), [
      `-Xmx${this.#heap}`, '-Xms128m', '-XX:+UseG1GC', '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${join(here, 'kafka', 'log4j2.properties')}`,
      '-cp', classpath, 'kafka.Kafka', config
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.pipe(out)
    child.stderr?.pipe(out)
    this.#child = child
    this.#exited = new Promise(resolve => child.once('exit', () => {
      this.#child = undefined
      resolve()
    }))
    await this.#waitReady()
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

  /** Stops the broker and removes its store if this object made it. */
  async destroy (): Promise<void> {
    await this.stop()
    if (this.#ownsDir) rmSync(this.dataDir, { recursive: true, force: true })
  }
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

  constructor (options: { port?: number } = {}) {
    this.port = options.port ?? 0
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  async start (): Promise<void> {
    if (this.#child) return
    const bin = redisServerPath()
    if (this.port === 0) this.port = await freePort()
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

async function main (args: string[]): Promise<void> {
  const command = args[0]
  if (command === 'fetch') {
    fetchKafka()
    log(`Kafka jars in ${libsDir}: ${readdirSync(libsDir).filter(f => f.endsWith('.jar')).length} files`)
    return
  }
  if (command !== 'up') {
    process.stderr.write('usage: stack.ts up [--kafka-port N] [--redis-port N] [--no-redis] | fetch\n')
    process.exitCode = 2
    return
  }
  await stackUp({
    kafkaPort: Number(argValue(args, '--kafka-port') ?? 9092),
    redisPort: Number(argValue(args, '--redis-port') ?? 6379),
    redis: !args.includes('--no-redis')
  })
}

/** `stack up`: Kafka (and Redis) in the foreground until SIGINT or SIGTERM, which stop both. */
export async function stackUp (options: { kafkaPort?: number, redisPort?: number, redis: boolean }): Promise<void> {
  mkdirSync(cacheDir, { recursive: true })
  const kafka = new KafkaBroker({ port: options.kafkaPort ?? 9092 })
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

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  mkdirSync(cacheDir, { recursive: true })
  main(process.argv.slice(2)).catch(err => {
    log(err instanceof Error ? err.message : String(err))
    process.exit(1)
  })
}
