// `sluice token`: a JWT for trying a gateway whose auth.jwt trusts an HS256
// issuer with a shared secret (exp, iss and aud included: the gateway requires them).
import { createHmac } from 'node:crypto'
import { integer, parse, UsageError, type Io } from './main.ts'

// an hour: long enough to try things, short enough that a leaked dev token soon stops working
const DEFAULT_TTL_S = 3600

function base64url (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

export function signHs256 (claims: Record<string, unknown>, secret: string): string {
  const head = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url(claims)}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}

export async function runToken (args: string[], io: Io): Promise<number> {
  const { values } = parse('token', args, {
    sub: { type: 'string' },
    ttl: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    secret: { type: 'string' },
    claim: { type: 'string', multiple: true }
  }, { min: 0, max: 0 })
  const secret = values.secret ?? io.env.SLUICE_JWT_SECRET
  if (!secret) throw new UsageError('sluice token: the signing secret is required (--secret S or SLUICE_JWT_SECRET): the same secret as the gateway\'s auth.jwt issuer')
  const now = Math.floor(Date.now() / 1000)
  const claims: Record<string, unknown> = {}
  for (const pair of values.claim ?? []) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new UsageError(`sluice token: --claim takes NAME=VALUE, not "${pair}"`)
    const raw = pair.slice(eq + 1)
    // a JSON value (a list of roles, a number) or else the text as it is
    let value: unknown = raw
    try { value = JSON.parse(raw) } catch {}
    claims[pair.slice(0, eq)] = value
  }
  Object.assign(claims, {
    sub: values.sub ?? 'dev',
    iss: values.issuer ?? io.env.SLUICE_JWT_ISSUER ?? 'sluice-dev',
    aud: values.audience ?? 'sluice',
    iat: now,
    exp: now + (integer('token', 'ttl', values.ttl) ?? DEFAULT_TTL_S)
  })
  io.out.write(`${signHs256(claims, secret)}\n`)
  return 0
}
