// The `sluice` command: every part of the project from one entry, with strict
// argument parsing (node:util parseArgs: an unknown or misspelled flag is an
// error with the usage, never ignored). The CLI is the one app that starts the
// others: it imports their process entries through their package exports.
//
//   sluice gateway [--config FILE]        sluice ingest --config FILE
//   sluice dev [--no-redis] [--port N]     sluice stack up [--kafka-port N] [--redis-port N] [--no-redis] [--brokers N]
//   sluice policy check DIR                sluice topics create|list|describe ...
//   sluice keys issue|list|revoke ...      sluice token ...
//
// Exit codes: 0 done, 1 failed, 2 usage, 78 invalid configuration.
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { runKeys } from './keys.ts'
import { runTopics } from './topics.ts'
import { runToken } from './token.ts'

export const USAGE = `usage: sluice <command> [options]

  gateway [--config FILE]          run the gateway (SLUICE_CONFIG also names the file)
  ingest --config FILE             run the WebSocket source connector
  dev [--no-redis] [--port N]      local Kafka, Redis, the demo feed and the gateway on :8080
  stack up [--kafka-port N] [--redis-port N] [--no-redis] [--brokers N]
                                   local Kafka and Redis in the foreground (--brokers 3: a
                                   three-node Kafka cluster on kafka-port, +1, +2)
  policy check DIR                 validate a policy directory (exit 1 with every problem)
  topics create [TOPIC...] [--policy DIR] [--partitions N] [--replication N] [--brokers LIST]
                                   create topics (named, or every exact topic of the policy's products)
  topics list [--brokers LIST]     topic names (Kafka's internal ones left out)
  topics describe TOPIC [--brokers LIST]
                                   partitions and their offsets (brokers: KAFKA_BROKERS; TLS and
                                   SASL: KAFKA_TLS, KAFKA_TLS_CA_FILE, KAFKA_SASL_*, as the gateway)
  keys issue --owner O --product P --plan PLAN [--ttl SECONDS] [--url URL] [--admin-token T]
  keys list [--owner O] [--url URL] [--admin-token T]
  keys revoke ID [--url URL] [--admin-token T]
                                   API keys, through the admin API (token: SLUICE_ADMIN_TOKEN)
  token [--sub S] [--ttl SECONDS] [--issuer I] [--audience A] [--secret S] [--claim K=V ...]
                                   a dev JWT signed HS256 (secret: SLUICE_JWT_SECRET)
  help                             this text
`

export class UsageError extends Error {
  readonly code = 'SLUICE_CLI_USAGE'
}

export interface Io {
  out: NodeJS.WritableStream
  err: NodeJS.WritableStream
  env: Record<string, string | undefined>
}

type Options = NonNullable<ParseArgsConfig['options']>

/** Strict parsing of one command's arguments; every problem is a UsageError naming the command. */
export function parse<T extends Options> (command: string, args: string[], options: T, positionals: { min: number, max: number }) {
  let parsed
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true })
  } catch (err) {
    throw new UsageError(`sluice ${command}: ${(err as Error).message}`)
  }
  const count = parsed.positionals.length
  if (count < positionals.min || count > positionals.max) {
    throw new UsageError(`sluice ${command}: expected ${positionals.min === positionals.max ? positionals.min : `${positionals.min} to ${positionals.max}`} argument${positionals.max === 1 ? '' : 's'}, got ${count}${count ? ` (${parsed.positionals.join(' ')})` : ''}`)
  }
  return parsed
}

/** A whole positive integer flag, or a UsageError. */
export function integer (command: string, name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`sluice ${command}: --${name} must be a whole number of at least ${min}, not "${value}"`)
  return Number(value)
}

/**
 * Runs a command. Long-running ones (gateway, ingest, dev, stack) start and
 * return undefined: their process lives until a signal. Others return an exit code.
 */
export async function run (argv: string[], io: Io): Promise<number | undefined> {
  const [command, ...args] = argv
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out.write(USAGE)
      return command === undefined ? 2 : 0
    case 'gateway': {
      const { values } = parse('gateway', args, { config: { type: 'string' } }, { min: 0, max: 0 })
      const { startGateway } = await import('@sluice/gateway/server')
      const { loadGatewayConfig } = await import('@sluice/gateway/config')
      const { runEntry } = await import('@sluice/config/entry')
      const file = values.config ?? io.env.SLUICE_CONFIG
      runEntry('sluice gateway', () => withHint(() => loadGatewayConfig({ file, env: io.env }), file), config => startGateway(config))
      return undefined
    }
    case 'ingest': {
      const { values } = parse('ingest', args, { config: { type: 'string' } }, { min: 0, max: 0 })
      const file = values.config ?? io.env.SLUICE_INGEST_CONFIG ?? io.env.SLUICE_CONFIG
      if (!file) throw new UsageError('sluice ingest: --config FILE is required (the feeds to run)')
      const { startIngest } = await import('@sluice/ingest/server')
      const { loadIngestConfig } = await import('@sluice/ingest/config')
      const { runEntry } = await import('@sluice/config/entry')
      runEntry('sluice ingest', () => loadIngestConfig({ file, env: io.env }), startIngest)
      return undefined
    }
    case 'dev': {
      const { values } = parse('dev', args, { 'no-redis': { type: 'boolean' }, port: { type: 'string' } }, { min: 0, max: 0 })
      const { devMain } = await import('@sluice/gateway/dev')
      devMain({ redis: values['no-redis'] !== true, port: integer('dev', 'port', values.port) })
      return undefined
    }
    case 'stack': {
      const { values, positionals } = parse('stack', args, { 'kafka-port': { type: 'string' }, 'redis-port': { type: 'string' }, 'no-redis': { type: 'boolean' }, brokers: { type: 'string' } }, { min: 1, max: 1 })
      if (positionals[0] !== 'up') throw new UsageError(`sluice stack: unknown subcommand "${positionals[0]}" (up)`)
      const { stackUp } = await import('@sluice/stack')
      await stackUp({ kafkaPort: integer('stack', 'kafka-port', values['kafka-port']), redisPort: integer('stack', 'redis-port', values['redis-port']), redis: values['no-redis'] !== true, brokers: integer('stack', 'brokers', values.brokers) })
      return undefined
    }
    case 'policy': {
      const { positionals } = parse('policy', args, {}, { min: 2, max: 2 })
      if (positionals[0] !== 'check') throw new UsageError(`sluice policy: unknown subcommand "${positionals[0]}" (check)`)
      const { main } = await import('@sluice/policy/cli')
      return main(['check', positionals[1]!], io.out, io.err)
    }
    case 'topics':
      return runTopics(args, io)
    case 'keys':
      return runKeys(args, io)
    case 'token':
      return runToken(args, io)
    default:
      throw new UsageError(`sluice: unknown command "${command}"`)
  }
}

/** A config that fails without a file given: say how to give one (npm eats flags before `--`). */
function withHint<C> (load: () => C, file: string | undefined): C {
  try {
    return load()
  } catch (err) {
    if (file === undefined && err instanceof Error && (err as { code?: string }).code === 'SLUICE_CONFIG_INVALID') {
      err.message += '\nno config file was given: sluice gateway --config FILE (or SLUICE_CONFIG=FILE); through npm: npm start -- --config FILE'
    }
    throw err
  }
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // the bin script runs node from the repository's root; paths the user typed are relative to where they were
  if (process.env.SLUICE_CWD) process.chdir(process.env.SLUICE_CWD)
  // `sluice topics list | head`: a reader that stops early is not an error
  process.stdout.on('error', err => { if ((err as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0) })
  const io: Io = { out: process.stdout, err: process.stderr, env: process.env }
  run(process.argv.slice(2), io).then(code => {
    if (code !== undefined) process.exitCode = code
  }, err => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}`)
      process.exitCode = 2
    } else {
      process.stderr.write(`sluice: ${(err as Error).message}\n`)
      process.exitCode = 1
    }
  })
}
