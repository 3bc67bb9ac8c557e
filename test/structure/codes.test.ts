// Issue 15's "one declaration of each code", checked on the sources: close
// codes live in @sluice/protocol (CLOSE) and nowhere else as numbers; each
// SLUICE_* error code is declared once (a createError catalogue entry, a
// class's `code` field or a const) and every code the sources use is declared;
// and no declared code is dead vocabulary. A pure file scan (no imports of the
// packages), so it runs in well under 2 s.
import { test } from 'tap'
import { globSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const PROTOCOL = 'packages/protocol/src/codes.ts'
// product sources only: tests and benchmarks may write the numbers they expect
const SOURCES = globSync(['plugins/*/src/**/*.ts', 'apps/*/src/**/*.ts', 'packages/*/src/**/*.ts', 'src/**/*.ts'], { cwd: ROOT })
  .filter(file => !file.includes('node_modules') && !/\.(test|bench)\.ts$/.test(file)).sort()
const TEXT = new Map(SOURCES.map(file => [file, readFileSync(join(ROOT, file), 'utf8')]))

// The close codes: ours (4000-4999) and the RFC 6455 ones a server sends
// (1000-1015). A numeric literal in a close(...) call or a const initialiser.
const CLOSE_NUMBER = String.raw`(?:4\d{3}|10(?:0\d|1[0-5]))`
const CLOSE_CALL = new RegExp(String.raw`\b(?:close|terminate|end)\s*\(\s*${CLOSE_NUMBER}\b`, 'g')
// A const is a close code by its name: one of CLOSE's names, or one that says
// CLOSE or CODE (not a duration, *_MS): 1000 and 4096 are also page sizes,
// limits and milliseconds, which are not close codes.
const CLOSE_NAMES = [...readFileSync(join(ROOT, PROTOCOL), 'utf8').matchAll(/^\s+([A-Z_]+):\s*\d{4},?$/gm)].map(m => m[1]!)
const CLOSE_CONST = new RegExp(String.raw`\bconst\s+(\w*(?:CLOSE|CODE)(?!\w*_MS\b)\w*|${CLOSE_NAMES.join('|')})\s*(?::[^=]+)?=\s*${CLOSE_NUMBER}\b`, 'g')
// Exceptions, each with its reason, keyed `<file>: <the matched text>` (none today:
// the ingest connector's GOING_AWAY was the last, now CLOSE.GOING_AWAY).
const CLOSE_EXCEPTIONS: Record<string, string> = {}

// strip comments so prose such as "closes with 4008" is not a violation
function code (text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
}

function lineOf (text: string, index: number): number {
  return text.slice(0, index).split('\n').length
}

test('the sources and the protocol vocabulary are there to check', async t => {
  t.ok(SOURCES.length > 100, `${SOURCES.length} source files`)
  t.ok(CLOSE_NAMES.length >= 10, `CLOSE's names: ${CLOSE_NAMES.join(', ')}`)
  t.ok(TEXT.has(PROTOCOL), PROTOCOL)
})

test('no close code number is written outside @sluice/protocol', async t => {
  const found: string[] = []
  for (const [file, text] of TEXT) {
    if (file.startsWith('packages/protocol/')) continue
    const body = code(text)
    for (const m of [...body.matchAll(CLOSE_CALL), ...body.matchAll(CLOSE_CONST)]) {
      const at = `${file}:${lineOf(body, m.index)}: ${m[0]}`
      if (CLOSE_EXCEPTIONS[`${file}: ${m[0]}`] === undefined) found.push(at)
    }
  }
  t.same(found, [], 'close(CLOSE.<NAME>) with CLOSE from @sluice/protocol, never a bare number')
})

// SLUICE_* codes. Declarations: createError('SLUICE_X', ...), `code = 'SLUICE_X'`
// as a class field, `const NAME = 'SLUICE_X'`. Everything else is a use.
const DECLARATION = /(?:createError\(\s*|\breadonly\s+code\s*(?::[^=]+)?=\s*|\bconst\s+\w+\s*(?::[^=]+)?=\s*)'(SLUICE_[A-Z0-9_]*[A-Z0-9])'/g
const LITERAL = /'(SLUICE_[A-Z0-9_]*[A-Z0-9])'/g // a prefix ('SLUICE_AUTH_') ends in _ and is not a code
const EXPORTED = /export\s+const\s+(\w+)\s*=\s*createError\(\s*'(SLUICE_[A-Z0-9_]+)'/g

function declarations (): Map<string, string[]> {
  const where = new Map<string, string[]>()
  for (const [file, text] of TEXT) {
    const body = code(text)
    for (const m of body.matchAll(DECLARATION)) {
      where.set(m[1]!, [...(where.get(m[1]!) ?? []), `${file}:${lineOf(body, m.index)}`])
    }
  }
  return where
}

test('each SLUICE_ error code is declared once', async t => {
  const where = declarations()
  t.ok(where.size > 60, `${where.size} codes declared`)
  const twice = [...where].filter(([, at]) => at.length > 1).map(([c, at]) => `${c}: ${at.join(', ')}`)
  t.same(twice, [], 'one catalogue entry per code; others import it or compare with it')
})

test('every SLUICE_ error code the sources use is declared', async t => {
  const where = declarations()
  const undeclared: string[] = []
  for (const [file, text] of TEXT) {
    const body = code(text)
    for (const m of body.matchAll(LITERAL)) {
      if (!where.has(m[1]!)) undeclared.push(`${file}:${lineOf(body, m.index)}: ${m[1]}`)
    }
  }
  t.same(undeclared, [], 'a code compared with or sent is one some catalogue declares')
})

test('no declared code is dead vocabulary', async t => {
  // re-exports (`export { X } from './errors.ts'`) pass a name on; they do not use it
  const all = [...TEXT.values()].map(code).join('\n').replace(/export\s*(?:type\s*)?\{[^}]*\}\s*from\s*'[^']+'/g, '')
  const dead: string[] = []
  // a catalogue entry is used when its constructor's name appears beyond its declaration, or its code string does
  for (const [file, text] of TEXT) {
    for (const m of code(text).matchAll(EXPORTED)) {
      const byName = all.match(new RegExp(String.raw`\b${m[1]}\b`, 'g'))?.length ?? 0
      const byCode = all.match(new RegExp(`'${m[2]}'`, 'g'))?.length ?? 0
      if (byName < 2 && byCode < 2) dead.push(`${file}: ${m[1]} (${m[2]})`)
    }
  }
  // each close code and wire code of the protocol is used somewhere outside its declaration
  const protocol = code(TEXT.get(PROTOCOL)!)
  const closes = /export const CLOSE = \{([^}]*)\}/.exec(protocol)?.[1] ?? ''
  const names = [...closes.matchAll(/(\w+):\s*\d+/g)].map(m => m[1]!)
  t.ok(names.length >= 10, `${names.length} close codes: ${names.join(', ')}`)
  for (const name of names) {
    if (!new RegExp(String.raw`\bCLOSE\.${name}\b`).test(all)) dead.push(`${PROTOCOL}: CLOSE.${name}`)
  }
  const wire = /export const WIRE_CODES[^=]*=\s*\[([^\]]*)\]/.exec(protocol)?.[1] ?? ''
  const wireCodes = [...wire.matchAll(/'(\w+)'/g)].map(m => m[1]!)
  t.ok(wireCodes.length >= 8, `${wireCodes.length} wire codes`)
  const others = [...TEXT].filter(([file]) => file !== PROTOCOL).map(([, text]) => code(text)).join('\n')
  for (const wireCode of wireCodes) {
    if (!others.includes(`'${wireCode}'`)) dead.push(`${PROTOCOL}: wire code ${wireCode}`)
  }
  t.same(dead, [], 'every declared code is thrown, sent or compared with somewhere in the sources')
})
