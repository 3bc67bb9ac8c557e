// docs/reference.md is what the code declares: regenerated in memory, it must
// equal the committed file, and it must name every environment variable, config
// binding and error code the sources hold (found here by reading the sources,
// not through the generator's own enumeration).
import { test } from 'tap'
import { globSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { gatewayEnvBindings, loadGatewayConfig } from '@sluice/gateway/config'
import { ingestEnvBindings } from '@sluice/ingest/config'
import { CLOSE, WIRE_CODES } from '@sluice/sessions'
import { DEFAULT_OUT, ROOT, main, referenceMarkdown, variablesReadInCode } from '../../docs/reference.ts'

function sink (into: string[]): Writable {
  return new Writable({ write (chunk, _encoding, done) { into.push(String(chunk)); done() } })
}

test('the committed docs/reference.md is what the code generates now', async t => {
  const generated = await referenceMarkdown()
  const committed = readFileSync(join(ROOT, DEFAULT_OUT), 'utf8')
  t.ok(generated === committed, 'docs/reference.md is stale: run `npm run reference -- write` and commit it')
  const out: string[] = []
  const err: string[] = []
  t.equal(await main(['check'], sink(out), sink(err)), 0, 'reference check passes')
})

test('reference check fails on a stale file and names the command that fixes it', async t => {
  const dir = t.testdir({ 'reference.md': '# an old reference\n' })
  const out: string[] = []
  const err: string[] = []
  t.equal(await main(['check', '--out', join(dir, 'reference.md')], sink(out), sink(err)), 1)
  t.match(err.join(''), 'npm run reference -- write')
  t.equal(await main(['verify'], sink(out), sink(err)), 2, 'usage')
})

test('every error code created in the sources is in the reference, with its HTTP status', async t => {
  const text = await referenceMarkdown()
  const sources = ['apps/*/src/**/*.ts', 'plugins/*/src/**/*.ts'].flatMap(g => globSync(g, { cwd: ROOT }))
  let count = 0
  for (const file of sources) {
    for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(/createError\(\s*'(SLUICE_[A-Z0-9_]+)'[^\n]*?,\s*(\d{3})\)/g)) {
      count++
      t.match(text, `| \`${m[1]}\` | ${m[2]} |`, `${m[1]} (${file}) with ${m[2]}`)
    }
  }
  t.ok(count >= 60, `found ${count} catalogued codes`)
  for (const wire of WIRE_CODES) t.match(text, `| \`${wire}\` |`, `wire code ${wire}`)
  for (const [name, value] of Object.entries(CLOSE)) t.match(text, `| ${value} | \`${name}\` |`, `close code ${value}`)
})

test('every environment variable the apps bind or the code reads is in the reference', async t => {
  const text = await referenceMarkdown()
  const bound = { ...gatewayEnvBindings, ...ingestEnvBindings }
  for (const [name, binding] of Object.entries(bound)) t.match(text, `| \`${name}\` | [\`${binding.path}\`]`, `${name} -> ${binding.path}`)
  const read = variablesReadInCode()
  t.ok(read.has('SLUICE_CONFIG'), 'SLUICE_CONFIG is read by the process entries')
  for (const name of read.keys()) t.match(text, `| \`${name}\` |`, `${name} (read by ${read.get(name)!.join(', ')})`)
})

test('a config key gets the comment written above it in the schema, and its default', async t => {
  const text = await referenceMarkdown()
  // apps/gateway/src/config.ts: the comment above server.drainMs, and the schema's default
  t.match(text, /`\/server\/drainMs` \| integer \| `10000` \| 0 to 300000 \| `SLUICE_DRAIN_MS` \| SIGTERM closes the sockets with 1001/)
  // a shared key (packages/config/src/schemas.ts) with the gateway's own default
  t.match(text, /`\/kafka\/clientId` \| string \| `sluice-gateway` \|/)
  // the ingest app's feed defaults come from FEED_DEFAULTS, a Connect key's from its native key
  t.match(text, /`\/feeds\/\*\/websocket\.reconnect\.interval\.ms` \| integer \| `5000` \|/)
})

test('the README links the reference', async t => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  t.match(readme, '](docs/reference.md)')
})

test('the operations guide links the reference from its configuration section', async t => {
  const operations = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8')
  const start = operations.indexOf('## Configuration (gateway)')
  t.ok(start >= 0, 'docs/operations.md has a configuration section')
  t.match(operations.slice(start, operations.indexOf('\n## ', start + 1)), '](reference.md)')
})

test('the operations guide\'s table of first variables quotes the bindings and defaults the gateway has', async t => {
  const operations = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8')
  const start = operations.indexOf('## Configuration (gateway)')
  const section = operations.slice(start, operations.indexOf('](reference.md)', start))
  const rows = [...section.matchAll(/^\| `([A-Z_]+)`[^|]* \| `(\/[^`]+)` \| ([^|]+) \|$/gm)]
  t.ok(rows.length >= 5, `${rows.length} rows`)
  const config = loadGatewayConfig({ env: { KAFKA_BROKERS: '127.0.0.1:9092' } }) as unknown as Record<string, unknown>
  for (const [, name, path, quoted] of rows) {
    t.equal(gatewayEnvBindings[name!]?.path, path, `${name} sets ${path}`)
    const value = path!.split('/').slice(1).reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], config)
    const stated = /^`([^`]+)`/.exec(quoted!.trim())?.[1]
    if (stated !== undefined) t.equal(String(value), stated, `${path} defaults to ${stated}`)
    else if (quoted!.startsWith('none')) t.equal(value, undefined, `${path} is unset by default`)
  }
})
