// The package boundaries issue 15 drew, checked on the sources themselves: a
// package (or a suite, benchmark or deploy script) reaches another through its
// name and `exports`, never a relative path into its folder; a Fastify
// decorator is read typed, never through an `as unknown as` cast (the cast
// hides an undeclared dependency); whoever reads `fastify.sessions` names
// `sluice-sessions` among its fastify-plugin dependencies; and a close code is
// declared once, in @sluice/sessions.
import { test } from 'tap'
import { globSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SOURCES = globSync(['plugins/*/src/**/*.ts', 'apps/*/src/**/*.ts', 'packages/*/src/**/*.ts'], { cwd: ROOT }).sort()
const RELATIVE_IMPORT = /(?:from|import)\s+'(\.{1,2}\/[^']+)'/g
// the suites, benchmarks and deploy scripts stand outside every package: they
// reach one as its users do, by name (dynamic imports too)
const OUTSIDERS = globSync(['test/**/*.{ts,js,mjs}', 'bench/**/*.{ts,js,mjs}', 'deploy/**/*.{ts,js,mjs}'], { cwd: ROOT, exclude: path => path.includes('node_modules') }).sort()
const ANY_RELATIVE_IMPORT = /(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g
// the package folder a path is in: plugins/<name>, packages/<name> or apps/<name>
const PACKAGE = /^(plugins|packages|apps)\/[^/]+/

function source (file: string): string {
  return readFileSync(join(ROOT, file), 'utf8')
}

test('the sources are there to check', async t => {
  t.ok(SOURCES.length > 100, `${SOURCES.length} source files`)
})

test('no source imports another package\'s files by a relative path', async t => {
  const crossings: string[] = []
  for (const file of SOURCES) {
    const own = PACKAGE.exec(file)?.[0]
    for (const [, path] of source(file).matchAll(RELATIVE_IMPORT)) {
      const target = relative(ROOT, resolve(ROOT, dirname(file), path!))
      const other = PACKAGE.exec(target)?.[0]
      if (other !== undefined && other !== own) crossings.push(`${file}: ${path}`)
    }
  }
  t.same(crossings, [], 'every import of another package goes through @sluice/<name>')
})

test('no test, benchmark or deploy script imports a package\'s files by a relative path', async t => {
  t.ok(OUTSIDERS.length > 100, `${OUTSIDERS.length} files under test/, bench/ and deploy/`)
  const crossings: string[] = []
  for (const file of OUTSIDERS) {
    for (const [, path] of source(file).matchAll(ANY_RELATIVE_IMPORT)) {
      const target = relative(ROOT, resolve(ROOT, dirname(file), path!))
      if (PACKAGE.test(target)) crossings.push(`${file}: ${path}`)
    }
  }
  t.same(crossings, [], 'every import of a package from outside it goes through @sluice/<name> and its exports')
})

test('no Fastify decorator is read through an as-unknown-as cast', async t => {
  const casts = SOURCES.flatMap(file => source(file).split('\n')
    .map((line, i) => ({ line, at: `${file}:${i + 1}` }))
    .filter(({ line }) => /\((?:fastify|app|instance)\s+as\s+unknown\s+as\b/.test(line))
    .map(({ at, line }) => `${at}: ${line.trim()}`))
  t.same(casts, [], 'a decorator another plugin provides is a declared dependency, read typed')
})

test('every plugin that reads fastify.sessions declares sluice-sessions as a dependency', async t => {
  const readers = SOURCES.filter(file => /\bfastify\.sessions\b/.test(source(file)) && !file.startsWith('plugins/sessions/'))
  t.ok(readers.length >= 6, `${readers.length} readers: ${readers.join(', ')}`)
  for (const file of readers) {
    const plugin = /export default fp\([^)]*dependencies:\s*\[([^\]]*)\]/.exec(source(file))
    t.match(plugin?.[1] ?? '', /'sluice-sessions'/, `${file} is a fastify-plugin that depends on sluice-sessions`)
  }
})

test('close codes are declared once, in @sluice/protocol', async t => {
  const redeclared = SOURCES.filter(file => file !== 'packages/protocol/src/codes.ts')
    .flatMap(file => [...source(file).matchAll(/\bconst\s+(\w*CLOSE(?:_(?!MS\b)[A-Z]+)*)\s*(?::[^=]+)?=\s*(?:\{|[14]\d{3}\b)/g)].map(m => `${file}: ${m[1]}`))
  t.same(redeclared, [], 'CLOSE from @sluice/protocol/codes (or @sluice/sessions, which re-exports it) everywhere else')
})
