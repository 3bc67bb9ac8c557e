// `asyncapi write`: the AsyncAPI document of a policy directory, written to
// openapi/asyncapi.yaml so that a change to the WebSocket API shows in review.
// `asyncapi check` fails when the committed file is not what the generator
// makes now (CI, and test/docs/asyncapi.test.ts).
//
//   npm run asyncapi -- write [--policy policies/] [--out openapi/asyncapi.yaml]
//   npm run asyncapi -- check [--policy policies/] [--out openapi/asyncapi.yaml]
//
// Exit 0: written / up to date. Exit 1: the policy is invalid, or the file
// differs (check). Exit 2: usage.
import { readFile, writeFile } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { gatewayDefaults } from '@sluice/config/gateway'
import { loadPolicyDir } from '@sluice/policy'
import { asyncapiDocument } from './asyncapi.ts'

const USAGE = 'usage: asyncapi write|check [--policy <dir>] [--out <file>]\n'
// the gateway's policy.dir: the document describes the policies a gateway started here would load
export const DEFAULT_POLICY_DIR = gatewayDefaults.policy.dir
export const DEFAULT_OUT = 'openapi/asyncapi.yaml'
// the committed document names the gateway as `npm run dev` serves it; a live gateway's /asyncapi.json names its own port
const SERVER = { host: `localhost:${gatewayDefaults.server.port}`, protocol: 'ws' } as const

const HEADER = '# Generated from policies/ by `npm run asyncapi -- write`: do not edit.\n' +
  '# A live gateway serves the same document for its own policy at /asyncapi.json.\n'

/** The YAML text of the AsyncAPI document of a policy directory, or the policy's problems. */
export async function asyncapiYaml (policyDir: string): Promise<{ text?: string, problems: string }> {
  const result = await loadPolicyDir(policyDir)
  // the same lines as `policy check`: - /path: message (file:line)
  if (!result.policy) return { problems: result.problems.map(p => `- ${p.path || '/'}: ${p.message}${p.source ? ` (${p.source})` : ''}`).join('\n') }
  const document = asyncapiDocument(result.policy.document, SERVER)
  // lineWidth 0: no folding, so that a one-word change is a one-line diff; no anchors and aliases: plain to read
  return { text: HEADER + stringify(document, { lineWidth: 0, aliasDuplicateObjects: false }), problems: '' }
}

export async function main (argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { policy: { type: 'string' }, out: { type: 'string' } } })
  } catch (error) {
    err.write(`${(error as Error).message}\n${USAGE}`)
    return 2
  }
  const [command, ...rest] = parsed.positionals
  if ((command !== 'write' && command !== 'check') || rest.length > 0) {
    err.write(USAGE)
    return 2
  }
  const policyDir = parsed.values.policy ?? DEFAULT_POLICY_DIR
  const file = parsed.values.out ?? DEFAULT_OUT
  const { text, problems } = await asyncapiYaml(policyDir)
  if (text === undefined) {
    err.write(`asyncapi: the policy in ${policyDir} is invalid:\n${problems}\n`)
    return 1
  }
  if (command === 'write') {
    await writeFile(file, text)
    out.write(`asyncapi: wrote ${file} from ${policyDir}\n`)
    return 0
  }
  const committed = await readFile(file, 'utf8').catch(() => undefined)
  if (committed !== text) {
    err.write(`asyncapi: ${file} is not what ${policyDir} generates; run \`npm run asyncapi -- write\` and commit it\n`)
    return 1
  }
  out.write(`asyncapi: ${file} is up to date with ${policyDir}\n`)
  return 0
}

if (process.argv[1] && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, error => {
    process.stderr.write(`asyncapi: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
