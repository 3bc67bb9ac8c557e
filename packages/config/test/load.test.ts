import { test } from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, parseYaml } from '../src/load.ts'

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        host: { type: 'string', default: '0.0.0.0' }
      }
    },
    kafka: {
      type: 'object',
      additionalProperties: false,
      default: {},
      required: ['brokers'],
      properties: { brokers: { type: 'array', minItems: 1, items: { type: 'string' } } }
    },
    level: { enum: ['info', 'debug'], default: 'info' }
  }
}

function file (text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'))
  const path = join(dir, 'gateway.yaml')
  writeFileSync(path, text)
  return path
}

function problemsOf (fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

test('defaults fill what the file leaves out', async t => {
  const config = loadConfig<{ server: { port: number, host: string }, level: string }>({ schema, file: file('kafka:\n  brokers: [a:9092]\n') })
  t.same(config, { server: { port: 8080, host: '0.0.0.0' }, kafka: { brokers: ['a:9092'] }, level: 'info' })
})

test('every problem is reported at once, each with its path and line', async t => {
  const path = file([
    'server:',
    '  port: eighty',
    '  colour: blue',
    'kafka: {}',
    'level: loud',
    ''
  ].join('\n'))
  const err = problemsOf(() => loadConfig({ schema, file: path }))
  t.equal(err.code, 'SLUICE_CONFIG_INVALID')
  const byPath = Object.fromEntries(err.problems.map(p => [p.path, p]))
  t.match(byPath['/server/port'], { message: 'must be integer', source: `${path}:2` }, 'wrong type')
  t.match(byPath['/server/colour'], { message: 'unknown key', source: `${path}:3` }, 'unknown key')
  t.match(byPath['/kafka/brokers'], { message: 'is required', source: `${path}:4` }, 'missing required value')
  t.match(byPath['/level'], { message: /must be one of "info", "debug"/, source: `${path}:5` }, 'not in the enum')
  t.equal(err.problems.length, 4, 'nothing else, nothing twice')
  for (const p of ['/server/port', '/server/colour', '/kafka/brokers', '/level']) t.match(err.message, `- ${p}:`)
})

test('env overrides the file and is named as the source of a bad value', async t => {
  const path = file('kafka:\n  brokers: [a:9092]\n')
  const config = loadConfig<{ server: { port: number }, kafka: { brokers: string[] } }>({
    schema,
    file: path,
    env: { PORT: '9000', BROKERS: 'b:1, c:2' },
    envBindings: { PORT: { path: '/server/port', type: 'integer' }, BROKERS: { path: '/kafka/brokers', type: 'list' } }
  })
  t.equal(config.server.port, 9000)
  t.same(config.kafka.brokers, ['b:1', 'c:2'])
  const err = problemsOf(() => loadConfig({
    schema,
    file: path,
    env: { PORT: 'ninety' },
    envBindings: { PORT: { path: '/server/port', type: 'integer' } }
  }))
  t.match(err.problems, [{ path: '/server/port', message: 'must be integer', source: 'env PORT' }])
})

test('YAML syntax errors and duplicate keys are problems with lines, not crashes', async t => {
  const path = file('kafka:\n  brokers: [a:9092\nlevel: info\nlevel: debug\n')
  const err = problemsOf(() => loadConfig({ schema, file: path }))
  t.ok(err.problems.length >= 1)
  t.ok(err.problems.every(p => p.source?.startsWith(path + ':')), 'each problem names the file and line')
})

test('a file that is not a mapping, or cannot be read, is a problem', async t => {
  t.match(problemsOf(() => loadConfig({ schema, file: file('- a\n- b\n') })).problems, [{ message: /must be a mapping/ }])
  t.match(problemsOf(() => loadConfig({ schema, file: '/nonexistent/gateway.yaml' })).problems, [{ message: /cannot read config file/ }])
})

test('parseYaml locates nested keys and list items', async t => {
  const parsed = parseYaml('a:\n  b:\n    - x\n    - y\n  c: 1\n', 'f.yaml')
  t.equal(parsed.locate('/a/b/1'), 'f.yaml:4')
  t.equal(parsed.locate('/a/c'), 'f.yaml:5')
  t.equal(parsed.locate('/a/missing'), 'f.yaml:1', 'a missing key points at its parent key')
})
