// paho-mqtt (PyPI), the Python client of the MQTT conformance suite: a
// virtualenv in .cache/tools, built once (CI builds it before the suites:
// `node test/mqtt/conformance/paho-mqtt.ts fetch`, ~20 s on a new machine),
// and paho_client.py, which plays one scenario and prints what it saw.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolvePath(here, '..', '..', '..')
// 2.2.0: the release the suite was written against (MQTT 5 properties, the CallbackAPIVersion.VERSION2 API)
export const PAHO_MQTT_VERSION = '2.2.0'
const dir = join(root, '.cache', 'tools', `paho-mqtt-${PAHO_MQTT_VERSION}`)

function run (cmd: string, args: string[]): void {
  const result = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (result.error) throw new Error(`${cmd} could not run: ${result.error.message}`)
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`)
}

/** The virtualenv's python with paho-mqtt, installed if it is not there (a virtualenv is built in place, marked when complete). */
export function pahoPython (): string {
  if (existsSync(join(dir, '.installed'))) return join(dir, 'bin', 'python')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dirname(dir), { recursive: true })
  run('python3', ['-m', 'venv', dir])
  run(join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '--no-input', `paho-mqtt==${PAHO_MQTT_VERSION}`])
  writeFileSync(join(dir, '.installed'), `${new Date().toISOString()}\n`)
  return join(dir, 'bin', 'python')
}

export interface PahoScenario {
  transport: 'tcp' | 'websockets'
  port: number
  version: 4 | 5
  password: string
  clientId?: string
  subscribe?: Array<[string, number]>
  /** published once every subscription is acknowledged: [topic, payload, qos] */
  publish?: Array<[string, string, number]>
  /** messages to wait for before disconnecting */
  expect?: number
  timeoutS?: number
}

export interface PahoEvent {
  event: 'connack' | 'suback' | 'puback' | 'message' | 'disconnect' | 'timeout'
  reason?: number
  reasons?: number[]
  sessionPresent?: boolean
  properties?: Record<string, unknown>
  topic?: string
  payload?: string
  qos?: number
  mid?: number
}

/** Runs paho_client.py with one scenario: the events it printed, in order. */
export function paho (scenario: PahoScenario): Promise<PahoEvent[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(pahoPython(), [join(here, 'paho_client.py'), JSON.stringify(scenario)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', chunk => { out += String(chunk) })
    child.stderr.on('data', chunk => { err += String(chunk) })
    const kill = setTimeout(() => child.kill('SIGKILL'), ((scenario.timeoutS ?? 20) + 10) * 1000)
    child.on('exit', code => {
      clearTimeout(kill)
      if (code !== 0) return reject(new Error(`paho_client.py exited ${code}: ${err.slice(0, 2000)}`))
      resolve(out.split('\n').filter(Boolean).map(line => JSON.parse(line) as PahoEvent))
    })
  })
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === 'fetch') {
  process.stdout.write(`${pahoPython()}\n`)
}
