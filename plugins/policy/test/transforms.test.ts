// A product's transform modules (kafka-websocket compatibility): resolved
// against the policy file, loaded when the policy loads, every problem
// reported with file, line and path like any other policy problem; an edited
// module is a changed policy for the hot reload; and a product whose modules
// are not loaded grants nothing.
import { test, type Test } from 'tap'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Identity } from '@sluice/protocol/identity'
import { compilePolicy, LivePolicy, loadPolicyDir, MAX_TRANSFORM_FILE_BYTES, type TransformMessage } from '../src/index.ts'

const DEV: Identity = { kind: 'dev', subject: 'dev', claims: { sub: 'dev' } }
const LIMITS = '{ connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }'

function policy (transforms: string): string {
  return `
version: 1
plans:
  free: { limits: ${LIMITS} }
products:
  legacy:
    plans: [free]
    topics: [{ pattern: legacy.*, encoding: text }]
${transforms}
rules:
  - { name: all, product: legacy, plan: free, subscribe: ['legacy.*'], publish: ['legacy.*'] }
`
}

const message = (value: string): TransformMessage => ({ topic: 'legacy.a', key: null, value: Buffer.from(value), headers: {}, timestamp: 0 })

async function policyDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-compat-policy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'transforms'))
  // the modules are ES modules: say so, as an admin's policy directory should, rather than leave Node to detect it
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n')
  return dir
}

test('modules load relative to the policy file, options go to configure(), and decisions carry them', async t => {
  const dir = await policyDir(t)
  await writeFile(join(dir, 'transforms', 'upper.ts'), `
export default function (m: { value: Buffer | null }) { return { ...m, value: Buffer.from(String(m.value).toUpperCase()) } }
`)
  await writeFile(join(dir, 'transforms', 'suffix.mjs'), `
export default function () { throw new Error('configure() wins') }
export function configure (options) {
  if (typeof options.suffix !== 'string') throw new Error('suffix must be a string')
  return m => ({ ...m, value: Buffer.concat([m.value, Buffer.from(options.suffix)]) })
}
`)
  await writeFile(join(dir, 'p.yaml'), policy(`    transforms:
      input: transforms/upper.ts
      output: { module: transforms/suffix.mjs, options: { suffix: '!' } }`))
  const result = await loadPolicyDir(dir)
  t.same(result.problems, [])
  const decision = result.policy!.authorize(DEV, 'publish', 'legacy.a')
  t.ok(decision.allowed)
  if (!decision.allowed) return
  t.equal(decision.transforms?.input?.fn(message('hi'))?.value?.toString(), 'HI', 'the input module, by its default export')
  t.equal(decision.transforms?.output?.fn(message('hi'))?.value?.toString(), 'hi!', 'the output module, configured with its options')
  t.not(decision.transforms?.input?.id, decision.transforms?.output?.id)

  const again = await loadPolicyDir(dir)
  const decisionAgain = again.policy!.authorize(DEV, 'subscribe', 'legacy.b')
  t.equal(decisionAgain.allowed && decisionAgain.transforms?.input, decision.transforms?.input, 'an unchanged module reloads as the same object')
  t.equal(again.fingerprint, result.fingerprint)
})

test('every transform problem at once, with file, line and path', async t => {
  const dir = await policyDir(t)
  await writeFile(join(dir, 'transforms', 'no-default.ts'), 'export const x = 1\n')
  await writeFile(join(dir, 'transforms', 'broken.ts'), 'export default function ( {\n')
  await writeFile(join(dir, 'transforms', 'plain.ts'), 'export default (m: unknown) => m\n')
  await writeFile(join(dir, 'transforms', 'picky.mjs'), 'export default m => m\nexport function configure (o) { if (!o.level) throw new Error("level is required"); return m => m }\n')
  await writeFile(join(dir, 'transforms', 'data.json'), '{}\n')
  // one byte over the bound: a module that big is a wrong path, not a transform
  await writeFile(join(dir, 'transforms', 'big.ts'), '//' + 'x'.repeat(MAX_TRANSFORM_FILE_BYTES - 1))
  const products = ['missing.ts', 'no-default.ts', 'broken.ts', 'data.json', 'big.ts'].map((file, i) => `
  p${i}:
    plans: [free]
    topics: [{ pattern: p${i}.* }]
    transforms:
      output: transforms/${file}`).join('') + `
  options-refused:
    plans: [free]
    topics: [{ pattern: o1.* }]
    transforms:
      input: { module: transforms/picky.mjs, options: { other: 1 } }
  options-unwanted:
    plans: [free]
    topics: [{ pattern: o2.* }]
    transforms:
      input: { module: transforms/plain.ts, options: { level: 1 } }
  shape:
    plans: [free]
    topics: [{ pattern: s.* }]
    transforms:
      input: { path: transforms/plain.ts }
      sideways: transforms/plain.ts
`
  await writeFile(join(dir, 'p.yaml'), `
version: 1
plans:
  free: { limits: ${LIMITS} }
products:${products}
rules:
  - { name: all, product: p0, plan: free, subscribe: ['p0.*'] }
`)
  const result = await loadPolicyDir(dir)
  t.equal(result.policy, undefined, 'no policy with a problem in it')
  const problems = result.problems.map(p => ({ ...p, source: p.source?.replace(dir, '<dir>') }))
  t.match(problems, [
    { path: '/products/shape/transforms/sideways', message: 'unknown key', source: /p\.yaml:\d+$/ },
    { path: '/products/shape/transforms/input/module', message: 'is required' },
    { path: '/products/shape/transforms/input/path', message: 'unknown key' }
  ], 'shape problems come from the schema, before anything is loaded')

  // with the shape fixed, the loader's problems
  await writeFile(join(dir, 'p.yaml'), `
version: 1
plans:
  free: { limits: ${LIMITS} }
products:${products.slice(0, products.indexOf('  shape:'))}
rules:
  - { name: all, product: p0, plan: free, subscribe: ['p0.*'] }
`)
  const loaded = await loadPolicyDir(dir)
  t.equal(loaded.policy, undefined)
  const at = (path: string) => loaded.problems.find(p => p.path === path)
  t.match(at('/products/p0/transforms/output'), { message: /cannot read transform module: ENOENT/, source: /p\.yaml:\d+$/ })
  t.match(at('/products/p1/transforms/output'), { message: /must have a default export function/ })
  t.match(at('/products/p2/transforms/output'), { message: /cannot load transform module/ })
  t.match(at('/products/p3/transforms/output'), { message: /a transform is a \.js, \.mjs, \.ts or \.mts module/ })
  t.match(at('/products/p4/transforms/output'), { message: `transform module "${join(dir, 'transforms', 'big.ts')}" is larger than ${MAX_TRANSFORM_FILE_BYTES} bytes` })
  t.match(at('/products/options-refused/transforms/input/options'), { message: /level is required/, source: /p\.yaml:\d+$/ })
  t.match(at('/products/options-unwanted/transforms/input/options'), { message: /takes no options/ })
  t.equal(loaded.problems.length, 7, 'one problem each, all in one pass')
})

test('editing a module is a policy change: the hot reload loads the new code', async t => {
  const dir = await policyDir(t)
  const file = join(dir, 'transforms', 'tag.ts')
  await writeFile(file, 'export default (m: { value: Buffer }) => ({ ...m, value: Buffer.from("v1") })\n')
  await writeFile(join(dir, 'p.yaml'), policy('    transforms: { output: transforms/tag.ts }'))
  const live = new LivePolicy(dir)
  t.match(await live.reload(), { outcome: 'applied' })
  const fn = () => {
    const d = live.authorize(DEV, 'subscribe', 'legacy.a')
    return d.allowed ? d.transforms?.output?.fn(message('x'))?.value?.toString() : undefined
  }
  t.equal(fn(), 'v1')
  t.match(await live.reload(), { outcome: 'unchanged' })
  await writeFile(file, 'export default (m: { value: Buffer }) => ({ ...m, value: Buffer.from("v2") })\n')
  t.match(await live.reload(), { outcome: 'applied' }, 'the module\'s content is part of the fingerprint')
  t.equal(fn(), 'v2')
  await writeFile(file, 'export default (m: { value: Buffer }) => ({ ...m, value: Buffer.from("v3") )\n')
  t.match(await live.reload(), { outcome: 'invalid' }, 'a module that does not load keeps the last good policy')
  t.equal(fn(), 'v2')
})

test('a product whose modules were not loaded grants nothing', async t => {
  // compilePolicy alone does not load modules (loadPolicyDir does): the filter a transform may be must not be skipped
  const { policy: compiled, problems } = compilePolicy([{ file: '/nowhere/p.yaml', text: policy('    transforms: { output: transforms/drop.ts }') }])
  t.same(problems, [])
  t.match(compiled!.authorize(DEV, 'subscribe', 'legacy.a'), { allowed: false, reason: /transforms of product "legacy" are not loaded/ })
})
