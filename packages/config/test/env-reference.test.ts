import { test } from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, resolveListReference, resolveReferences, unresolvedReference, type ConfigProblem, type ReferenceContext } from '../src/load.ts'

// "${env:NAME}" written without a template-literal lookalike in the source
const ref = (name: string) => '$' + '{env:' + name + '}'

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    token: { type: 'string', minLength: 8 },
    url: { type: 'string' },
    dir: { type: 'string' },
    names: { type: 'array', items: { type: 'string' } },
    keys: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: { id: { type: 'string' }, secret: { type: 'string', minLength: 8 } }
      }
    }
  }
}
const references = [
  { path: '/token', type: 'string' as const },
  { path: '/url', type: 'string' as const },
  { path: '/names', type: 'list' as const },
  { path: '/keys', type: 'list' as const }
]
const secrets = ['/token', '/url', '/keys/*/secret']

function file (lines: string[]): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-config-')), 'app.yaml')
  writeFileSync(path, lines.join('\n') + '\n')
  return path
}

function problemsOf (fn: () => unknown): ConfigProblem[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

function context (env: Record<string, string>): ReferenceContext & { problems: ConfigProblem[] } {
  return { env, problems: [], locate: () => undefined }
}

test('references are replaced where they stand; an unset or empty variable is a problem at the path', async t => {
  const ctx = context({ A: 'one', B: '' })
  t.equal(resolveReferences(`x-${ref('A')}-${ref('A')}`, '/p', ctx), 'x-one-one')
  t.equal(resolveReferences(`${ref('B')}${ref('C')}`, '/q', ctx), '')
  t.same(ctx.problems.map(p => `${p.path}: ${p.message}`), [
    '/q: environment variable B is not set',
    '/q: environment variable C is not set'
  ])
  t.equal(resolveReferences(ref('A') + ' ' + ref('not-a-name'), '/p', ctx), 'one ' + ref('not-a-name'), 'only well-formed names are references')
})

test('a whole-field list reference is a JSON array or comma-separated strings', async t => {
  const ctx = context({ CSV: ' a, b ,,c ', JSON: '[{"id":"x"},"y"]', BAD: '[{"secret":"hunter2hunter2"', OBJ: '{"a":1}' })
  t.same(resolveListReference(ref('CSV'), '/l', ctx), ['a', 'b', 'c'])
  t.same(resolveListReference(` ${ref('JSON')} `, '/l', ctx), [{ id: 'x' }, 'y'])
  t.same(resolveListReference(ref('OBJ'), '/l', ctx), ['{"a":1}'], 'not "[": comma-separated, and the schema refuses a mapping as an item')
  t.equal(resolveListReference(`a,${ref('CSV')}`, '/l', ctx), undefined, 'not one whole reference')
  t.same(resolveListReference(ref('BAD'), '/l', ctx), [])
  t.same(resolveListReference(ref('NONE'), '/m', ctx), [])
  t.same(ctx.problems.map(p => `${p.path}: ${p.message}`), [
    '/l: environment variable BAD starts with "[" but is not a JSON array',
    '/m: environment variable NONE is not set'
  ])
  t.notMatch(JSON.stringify(ctx.problems), 'hunter2', 'the parser\'s message, which quotes the text, is not passed on')
})

test('the shapes of an unexpanded reference', async t => {
  for (const text of [ref('X'), `a${ref('X')}b`, '$' + '{env:', '$' + '{env:bad-name}']) {
    t.ok(unresolvedReference(text, false), `${text} in any field`)
  }
  for (const text of ['$' + '{JWT_SECRET}', '$' + '{JWT_SECRET:-dev}', '$JWT_SECRET', 'redis://:$REDIS_PASSWORD@redis:6379']) {
    t.equal(unresolvedReference(text, false), undefined, `${text} is left alone outside a secret`)
    t.match(unresolvedReference(text, true), /looks like an unexpanded/, `${text} in a secret`)
  }
  for (const text of ['pa$$word-with-dollars', 'x$abc9', 'redis://:p%24ss@redis:6379', '$', 'a$ b']) {
    t.equal(unresolvedReference(text, true), undefined, `${text} is a possible secret`)
  }
})

test('loadConfig resolves the reference fields of the file, names the variable as a source, and checks every secret', async t => {
  const path = file([
    `token: ${ref('TOKEN')}`,
    `url: redis://:${ref('PASS')}@h:6379`,
    `names: ${ref('NAMES')}`,
    'keys:',
    `  - id: ${ref('KEY_ID')}`,
    `    secret: ${ref('KEY_SECRET')}`
  ])
  const env = { TOKEN: 'tok-12345', PASS: 'p4ss', NAMES: 'a,b', KEY_ID: 'k1', KEY_SECRET: 'secret-123' }
  t.same(loadConfig({ schema, file: path, env, references, secrets }), {
    token: 'tok-12345', url: 'redis://:p4ss@h:6379', names: ['a', 'b'], keys: [{ id: 'k1', secret: 'secret-123' }]
  })

  t.same(problemsOf(() => loadConfig({ schema, file: path, env: {}, references, secrets })).map(p => `${p.path}: ${p.message} (${p.source})`), [
    `/token: environment variable TOKEN is not set (${path}:1)`,
    `/url: environment variable PASS is not set (${path}:2)`,
    `/names: environment variable NAMES is not set (${path}:3)`,
    `/keys/0/id: environment variable KEY_ID is not set (${path}:5)`,
    `/keys/0/secret: environment variable KEY_SECRET is not set (${path}:6)`
  ], 'every problem at once, each with its path and line, and not again as the empty value\'s schema problem')

  const short = problemsOf(() => loadConfig({ schema, file: path, env: { ...env, TOKEN: 'short' }, references, secrets }))
  t.same(short.map(p => `${p.path}: ${p.message} (${p.source})`), [`/token: must NOT have fewer than 8 characters (${path}:1, env TOKEN)`], 'a bad value names its variable beside its line')
})

test('a value from the environment is never resolved again', async t => {
  const path = file([`token: ${ref('TOKEN')}`, `keys: ${ref('KEYS')}`])
  const problems = problemsOf(() => loadConfig({
    schema,
    file: path,
    env: { TOKEN: ref('OTHER_TOKEN_X'), OTHER_TOKEN_X: 'would-be-token', KEYS: JSON.stringify([{ id: ref('KEY_ID'), secret: ref('KEY_SECRET') }]), KEY_ID: 'k', KEY_SECRET: 'secret-123', URL: ref('OTHER_TOKEN_X') },
    envBindings: { URL: { path: '/url', type: 'string' } },
    references,
    secrets
  }))
  t.same(problems.map(p => `${p.path}: ${p.message.split(':')[0]} (${p.source})`), [
    `/token: holds an unresolved reference to OTHER_TOKEN_X (${path}:1, env TOKEN)`,
    '/url: holds an unresolved reference to OTHER_TOKEN_X (env URL)',
    `/keys/0/secret: holds an unresolved reference to KEY_SECRET (${path}:2, env KEYS)`,
    `/keys/0/id: holds an unresolved reference to KEY_ID (${path}:2, env KEYS)`
  ])
})

test('a reference outside the reference fields is refused, not used as text', async t => {
  const problems = problemsOf(() => loadConfig({ schema, base: { dir: `/etc/${ref('DIR')}` }, env: { DIR: 'x' }, references, secrets }))
  t.same(problems.map(p => `${p.path}: ${p.message}`), [`/dir: holds a ${ref('NAME')} reference, which is resolved only in /token, /url, /names, /keys`])
  t.same(loadConfig({ schema, base: { dir: `/etc/${ref('DIR')}` } }), { dir: `/etc/${ref('DIR')}` }, 'without reference fields, the loader reads no references (the ingest app resolves its own)')
})

test('secret shapes are checked whatever the source; messages never quote a value', async t => {
  const problems = problemsOf(() => loadConfig({
    schema,
    base: { token: '$' + '{TOKEN_FROM_VAULT}', keys: [{ id: 'a', secret: '$KEY_SECRET' }] },
    env: { URL: 'redis://:$REDIS_PASSWORD@h:6379' },
    envBindings: { URL: { path: '/url', type: 'string' } },
    references,
    secrets
  }))
  t.same(problems.map(p => p.path), ['/token', '/url', '/keys/0/secret'])
  t.ok(problems.every(p => /looks like an unexpanded/.test(p.message)))
  t.notMatch(JSON.stringify(problems), /VAULT|REDIS_PASSWORD|KEY_SECRET/)
})
