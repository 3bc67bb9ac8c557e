// The policy's version names its files' contents, not the way the directory is
// spelled: `policy check policies/`, a gateway started with the absolute path
// and one whose ConfigMap mount is a symlink all report the same version.
import { test } from 'tap'
import { cpSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { Writable } from 'node:stream'
import { LivePolicy, loadPolicyDir } from '../src/index.ts'
import { main as policyCli } from '../src/cli.ts'
import { policyDirStamp, RACY_MS, readPolicyDir } from '../src/policy-dir.ts'

// a product with an output transform, so that the transform module's digest is part of the version too
const POLICY = `
version: 1
plans:
  free:
    limits: { connections: 5, connectsPerMinute: 60, deliveredPerSecond: 100, publishedPerSecond: 10, bytesPerSecond: 100000, dailyQuota: 1000000 }
products:
  market:
    plans: [free]
    topics:
      - pattern: prices.*
        encoding: json
    transforms:
      output: ./stamp.ts
rules:
  - name: everyone
    product: market
    plan: free
    subscribe: ['prices.*']
`
const TRANSFORM = 'export default function stamp (message) { return message }\n'

function policyDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-version-'))
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  writeFileSync(join(dir, 'stamp.ts'), TRANSFORM)
  // the module is an ES module: say so, as compat-harness.ts does, rather than leave Node to detect it from
  // whatever package.json it finds above the temp directory
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n')
  return dir
}

async function cliVersion (dir: string): Promise<string | undefined> {
  let text = ''
  let problems = ''
  const out = new Writable({ write (chunk, _encoding, done) { text += String(chunk); done() } })
  const code = await policyCli(['check', dir], out, new Writable({ write (chunk, _e, done) { problems += String(chunk); done() } }))
  // an invalid directory says why in the assertion that compares versions (seen once in a CI-like run, not since)
  return code === 0 ? /\(version ([0-9a-f]{12})\)/.exec(text)?.[1] : `invalid (${problems.trim().slice(0, 300)})`
}

async function liveVersion (dir: string): Promise<string | undefined> {
  const live = new LivePolicy(dir)
  await live.reload()
  return live.status().version
}

test('one directory through a relative path, an absolute path and a symlink has one version', async t => {
  const dir = policyDir()
  const link = join(mkdtempSync(join(tmpdir(), 'sluice-version-link-')), 'policies')
  symlinkSync(dir, link)
  const spellings = [relative(process.cwd(), dir), dir, dir + '/', link, link + '/']
  t.notOk(spellings[0]!.startsWith('/'), 'the first spelling is relative')

  const fingerprints = await Promise.all(spellings.map(async d => (await loadPolicyDir(d)).fingerprint))
  t.same(new Set(fingerprints).size, 1, `one fingerprint for ${spellings.join(', ')}`)
  const versions = [...await Promise.all(spellings.map(cliVersion)), ...await Promise.all(spellings.map(liveVersion))]
  t.ok(versions.every(v => v === fingerprints[0]!.slice(0, 12)), `policy check and the live policy agree: ${versions.join(' ')}`)

  // the same files copied elsewhere are the same policy: the version travels with the contents
  const copy = mkdtempSync(join(tmpdir(), 'sluice-version-copy-'))
  cpSync(dir, copy, { recursive: true })
  t.equal((await loadPolicyDir(copy)).fingerprint, fingerprints[0], 'a copy of the directory has the same version')
})

test('a changed policy file, a changed transform module or a renamed file gives another version', async t => {
  const dir = policyDir()
  const first = (await loadPolicyDir(dir)).fingerprint

  writeFileSync(join(dir, 'policy.yaml'), POLICY.replace('connections: 5', 'connections: 6'))
  const edited = (await loadPolicyDir(dir)).fingerprint
  t.not(edited, first, 'an edited policy file')

  writeFileSync(join(dir, 'stamp.ts'), TRANSFORM + '// a comment is an edit too\n')
  const transformEdited = (await loadPolicyDir(dir)).fingerprint
  t.not(transformEdited, edited, 'an edited transform module')

  renameSync(join(dir, 'policy.yaml'), join(dir, 'market.yaml'))
  const renamed = (await loadPolicyDir(dir)).fingerprint
  t.not(renamed, transformEdited, 'a renamed policy file (the names within the directory count)')
})

test('a poll over unchanged files without transforms reads them and stops: no parse, no compile', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-version-poll-'))
  writeFileSync(join(dir, 'policy.yaml'), POLICY.replace(/ {4}transforms:\n {6}output: \.\/stamp\.ts\n/, ''))
  let loads = 0
  const live = new LivePolicy(dir, undefined, async d => { loads++; return await loadPolicyDir(d) })
  t.match(await live.reload(), { outcome: 'applied' })
  const version = live.status().version
  for (let i = 0; i < 5; i++) t.match(await live.reload(), { outcome: 'unchanged', version, problems: [] })
  t.equal(loads, 1, 'five polls of the same bytes, one full load')

  // the shortcut compares bytes: any change, even one that keeps the meaning, loads in full again
  writeFileSync(join(dir, 'policy.yaml'), POLICY.replace(/ {4}transforms:\n {6}output: \.\/stamp\.ts\n/, '') + '# a comment\n')
  t.match(await live.reload(), { outcome: 'applied' })
  t.equal(loads, 2)
  writeFileSync(join(dir, 'policy.yaml'), 'version: 1\nproducts: [\n')
  t.match(await live.reload(), { outcome: 'invalid' })
  t.match(await live.reload(), { outcome: 'unchanged' }, 'an invalid directory is loaded in full at every poll, as before')
  t.equal(loads, 4)
  t.match(await live.reload({ force: true }), { outcome: 'invalid' })
  t.equal(loads, 5, 'a forced reload always loads in full')
})

test('a poll whose files kept their stamp does not read them; any write, rename or new file is read', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-version-stamp-'))
  const plain = POLICY.replace(/ {4}transforms:\n {6}output: \.\/stamp\.ts\n/, '')
  writeFileSync(join(dir, 'policy.yaml'), plain)
  let reads = 0
  let loads = 0
  // the files are older than RACY_MS to the poll: as they are a few seconds after any write
  const later = () => Date.now() + RACY_MS + 1000
  const live = new LivePolicy(dir, undefined, async d => { loads++; return await loadPolicyDir(d) }, {
    readDir: async d => { reads++; return await readPolicyDir(d) },
    stamp: d => policyDirStamp(d, later())
  })
  t.match(await live.reload(), { outcome: 'applied' })
  const version = live.status().version
  t.match(await live.reload(), { outcome: 'unchanged', version })
  t.equal(reads, 1, 'the first poll reads the files and keeps their stamp')
  for (let i = 0; i < 5; i++) t.match(await live.reload(), { outcome: 'unchanged', version, problems: [] })
  t.equal(reads, 1, 'five polls of the same stamp: no read')

  // the same size, other bytes: the write moved the change time
  writeFileSync(join(dir, 'policy.yaml'), plain.replaceAll('free', 'fre2'))
  t.match(await live.reload(), { outcome: 'applied' }, 'a write of the same size is read and applied')
  t.equal(loads, 2)
  t.match(await live.reload(), { outcome: 'unchanged' })
  const readsBefore = reads
  // a rename over the file (an editor's save, a ConfigMap's swap): another inode
  writeFileSync(join(dir, '.tmp.yaml'), plain)
  renameSync(join(dir, '.tmp.yaml'), join(dir, 'policy.yaml'))
  t.match(await live.reload(), { outcome: 'applied' }, 'a file renamed over it is read and applied')
  t.ok(reads > readsBefore)
  // a new file, then its removal
  writeFileSync(join(dir, 'more.yaml'), 'version: 1\n')
  t.not(await live.reload(), { outcome: 'unchanged' }, 'a new file is read')
  rmSync(join(dir, 'more.yaml'))
  t.match(await live.reload(), { outcome: 'applied' })
  t.equal(live.status().version, (await loadPolicyDir(dir)).fingerprint.slice(0, 12), 'the version in force is the files\' own')
})

test('the stamp vouches only for files older than RACY_MS', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-version-racy-'))
  writeFileSync(join(dir, 'policy.yaml'), 'version: 1\n')
  t.equal(await policyDirStamp(dir), undefined, 'a file written just now: no stamp (its next write may keep its times)')
  const stamp = await policyDirStamp(dir, Date.now() + RACY_MS)
  t.type(stamp, 'string')
  t.equal(await policyDirStamp(dir, Date.now() + RACY_MS), stamp, 'nothing written: the same stamp')
  t.equal(await policyDirStamp(join(dir, 'absent'), Date.now() + RACY_MS), undefined, 'an unreadable directory: no stamp')
  writeFileSync(join(dir, 'policy.yaml'), 'version: 2\n')
  t.not(await policyDirStamp(dir, Date.now() + RACY_MS), stamp, 'a write of the same size: another stamp')
})

test('with a transform module every poll loads in full: the module may change while the YAML does not', async t => {
  const dir = policyDir()
  let loads = 0
  const live = new LivePolicy(dir, undefined, async d => { loads++; return await loadPolicyDir(d) })
  t.match(await live.reload(), { outcome: 'applied' })
  t.match(await live.reload(), { outcome: 'unchanged' })
  writeFileSync(join(dir, 'stamp.ts'), TRANSFORM + '// v2\n')
  t.match(await live.reload(), { outcome: 'applied' }, 'the changed module is seen')
  t.equal(loads, 3)
})
