// `policy check <dir>`: the validation the gateway runs on every reload, for CI
// pipelines and for admins before they commit a change.
//
//   bash deploy/local/node.sh plugins/policy/src/cli.ts check policies/
//   npm run policy -- check policies/
//
// Exit 0: valid (a summary on stdout). Exit 1: every problem on stderr, one a
// line, `- /path: message (file:line)`. Exit 2: usage.
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatProblems } from '@sluice/config'
import { loadPolicyDir } from './policy-dir.ts'

const USAGE = 'usage: policy check <dir>\n'

export async function main (argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [command, dir, ...rest] = argv
  if (command !== 'check' || !dir || rest.length > 0) {
    err.write(USAGE)
    return 2
  }
  const result = await loadPolicyDir(dir)
  if (!result.policy) {
    err.write(`policy check: ${dir} is invalid (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}):\n${formatProblems(result.problems)}\n`)
    return 1
  }
  const doc = result.policy.document
  const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`
  out.write(`policy check: ${dir} is valid: ${count(Object.keys(doc.products).length, 'product')}, ${count(Object.keys(doc.plans).length, 'plan')}, ` +
    `${count(doc.rules.length, 'rule')} in ${count(result.files.length, 'file')} (version ${result.fingerprint.slice(0, 12)})\n`)
  return 0
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, error => {
    process.stderr.write(`policy check: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
