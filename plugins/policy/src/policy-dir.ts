// The policy directory: what is read from it (its *.yaml files, within
// bounds), the version it is named by (the fingerprint a reload compares), and
// loadPolicyDir, which reads, compiles (compile.ts) and loads the transform
// modules the products name. The CLI (`policy check`), the hot reload and the
// admin API's validate all run it.
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, isAbsolute, join, resolve } from 'node:path'
import type { ConfigProblem } from '@sluice/config'
import { compilePolicy } from './compile.ts'
import { PolicyDirMissingError } from './errors.ts'
import type { Policy } from './policy.ts'
import { loadTransforms } from './transforms.ts'

// An admin-edited directory, not a data store: more than this is a mistake (or a mount of the wrong volume).
export const MAX_POLICY_FILES = 100
// 1 MiB of YAML is tens of thousands of rules; it also bounds what a reload reads every poll.
export const MAX_POLICY_FILE_BYTES = 1024 * 1024
const POLICY_FILE = /^[^.].*\.ya?ml$/

export interface PolicyFile {
  /** the name shown in errors: the path as given */
  file: string
  text: string
}

export interface LoadResult {
  /** the compiled policy, when there is no problem */
  policy?: Policy
  problems: ConfigProblem[]
  files: string[]
  /** sha256 of the files' names (within the directory) and contents: what a reload compares to skip unchanged files */
  fingerprint: string
}

/**
 * Throws SLUICE_POLICY_DIR_MISSING, naming the path as given and as resolved, unless `dir` is a directory
 * (a symlink to one is). A gateway started on a mistyped path would otherwise serve with no policy, refusing
 * every client while it looks up.
 */
export async function checkPolicyDir (dir: string): Promise<void> {
  const shown = `"${dir}"${isAbsolute(dir) ? '' : ` (${resolve(dir)})`}`
  let info
  try {
    info = await stat(dir)
  } catch (err) {
    throw new PolicyDirMissingError(shown, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (err as Error).message)
  }
  if (!info.isDirectory()) throw new PolicyDirMissingError(shown, 'it is not a directory')
}

/**
 * Reads the *.yaml / *.yml files of a directory (following symlinks, as a
 * Kubernetes ConfigMap mount needs; names starting with a dot are skipped).
 */
export async function readPolicyDir (dir: string): Promise<{ files: PolicyFile[], problems: ConfigProblem[] }> {
  const problems: ConfigProblem[] = []
  let names: string[]
  try {
    names = (await readdir(dir)).filter(n => POLICY_FILE.test(n)).sort()
  } catch (err) {
    return { files: [], problems: [{ path: '', message: `cannot read the policy directory: ${(err as Error).message}`, source: dir }] }
  }
  if (names.length > MAX_POLICY_FILES) {
    return { files: [], problems: [{ path: '', message: `more than ${MAX_POLICY_FILES} policy files`, source: dir }] }
  }
  const files: PolicyFile[] = []
  for (const name of names) {
    const file = join(dir, name)
    try {
      const info = await stat(file)
      if (!info.isFile()) continue
      if (info.size > MAX_POLICY_FILE_BYTES) {
        problems.push({ path: '', message: `larger than ${MAX_POLICY_FILE_BYTES} bytes`, source: file })
        continue
      }
      files.push({ file, text: await readFile(file, 'utf8') })
    } catch (err) {
      // a file renamed away between readdir and read: the next reload sees the new state
      problems.push({ path: '', message: `cannot read: ${(err as Error).message}`, source: file })
    }
  }
  if (files.length === 0 && problems.length === 0) problems.push({ path: '', message: 'no policy files (*.yaml, *.yml)', source: dir })
  return { files, problems }
}

// A file changed less than this long ago may change again within its timestamps' grain (a second on some
// filesystems, and a clock a little behind another's) and keep its stamp: the poll reads it in full until
// then, as git does with "racily clean" index entries. Past it, any write moves the file's change time.
export const RACY_MS = 2000

/**
 * What the directory's policy files look like from outside, without reading them: their names, devices,
 * inodes, sizes and modification and change times (ns). Any write changes the change time, which nothing
 * can set back; a rename over a file or a ConfigMap's symlink swap gives another inode. undefined when it
 * cannot vouch for the contents: a file changed less than RACY_MS before `now`, or a stat failed.
 */
export async function policyDirStamp (dir: string, now = Date.now()): Promise<string | undefined> {
  try {
    const names = (await readdir(dir)).filter(n => POLICY_FILE.test(n)).sort()
    if (names.length > MAX_POLICY_FILES) return undefined
    const stats = await Promise.all(names.map(name => stat(join(dir, name), { bigint: true })))
    const parts: string[] = []
    for (const [i, info] of stats.entries()) {
      if (now - Number(info.mtimeMs) < RACY_MS || now - Number(info.ctimeMs) < RACY_MS) return undefined
      parts.push(`${names[i]}\0${info.dev}\0${info.ino}\0${info.size}\0${info.mtimeNs}\0${info.ctimeNs}`)
    }
    return parts.join('\n')
  } catch {
    return undefined
  }
}

/**
 * The policy's version: its files' names within the directory and their contents, and nothing of how the
 * directory was spelled (`policies/`, its absolute path, a symlink to it), so that `policy check`, /readyz
 * and every node name the same files the same version.
 */
export function fingerprint (files: PolicyFile[]): string {
  const hash = createHash('sha256')
  for (const f of files) hash.update(basename(f.file)).update('\0').update(f.text).update('\0')
  return hash.digest('hex')
}

export async function loadPolicyDir (dir: string): Promise<LoadResult> {
  const read = await readPolicyDir(dir)
  const compiled = compilePolicy(read.files)
  const problems = [...read.problems, ...compiled.problems]
  // transform modules load only into an otherwise valid policy; their contents count in the fingerprint
  let transforms = ''
  if (compiled.policy && problems.length === 0) {
    const loaded = await loadTransforms(compiled.policy.transformSpecs())
    problems.push(...loaded.problems)
    transforms = loaded.digest
  }
  return {
    policy: problems.length === 0 ? compiled.policy : undefined,
    problems,
    files: read.files.map(f => f.file),
    fingerprint: transforms === '' ? fingerprint(read.files) : createHash('sha256').update(fingerprint(read.files)).update(transforms).digest('hex')
  }
}
