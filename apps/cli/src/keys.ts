// `sluice keys issue|list|revoke`: API keys through the gateway's admin API
// (POST/GET/DELETE /admin/keys), with the admin token from --admin-token or
// SLUICE_ADMIN_TOKEN. A key is shown once, when issued.
import { gatewayDefaults } from '@sluice/config/gateway'
import { integer, parse, UsageError, type Io } from './main.ts'

const COMMON = { url: { type: 'string' }, 'admin-token': { type: 'string' } } as const

async function admin (io: Io, values: { url?: string, 'admin-token'?: string }, method: string, path: string, body?: unknown): Promise<{ status: number, json: unknown }> {
  const token = values['admin-token'] ?? io.env.SLUICE_ADMIN_TOKEN
  if (!token) throw new UsageError('sluice keys: the admin token is required (--admin-token T or SLUICE_ADMIN_TOKEN; sluice dev prints it)')
  const base = (values.url ?? io.env.SLUICE_URL ?? `http://localhost:${gatewayDefaults.server.port}`).replace(/\/$/, '')
  const response = await fetch(`${base}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  let json: unknown = text
  try { json = text ? JSON.parse(text) : undefined } catch {}
  if (!response.ok) {
    const error = (json as { error?: { code?: string, message?: string } } | undefined)?.error
    throw new Error(`the admin API answered ${response.status}${error ? `: ${error.code} ${error.message}` : ''}`)
  }
  return { status: response.status, json }
}

export async function runKeys (args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args
  if (sub === 'issue') {
    const { values } = parse('keys issue', rest, { ...COMMON, owner: { type: 'string' }, product: { type: 'string' }, plan: { type: 'string' }, ttl: { type: 'string' } }, { min: 0, max: 0 })
    for (const name of ['owner', 'product', 'plan'] as const) {
      if (values[name] === undefined) throw new UsageError(`sluice keys issue: --${name} is required`)
    }
    const ttlSeconds = integer('keys issue', 'ttl', values.ttl, 60)
    const { json } = await admin(io, values, 'POST', '/keys', { owner: values.owner, product: values.product, plan: values.plan, ...(ttlSeconds ? { ttlSeconds } : {}) })
    const issued = json as { key: string, id: string, expiresAt: string | number }
    io.out.write(`${issued.key}\n`)
    io.err.write(`issued key ${issued.id} for ${values.owner} (${values.product} on ${values.plan}), expires ${new Date(issued.expiresAt).toISOString()}; it is shown only now\n`)
    return 0
  }
  if (sub === 'list') {
    const { values } = parse('keys list', rest, { ...COMMON, owner: { type: 'string' } }, { min: 0, max: 0 })
    const { json } = await admin(io, values, 'GET', `/keys${values.owner ? `?owner=${encodeURIComponent(values.owner)}` : ''}`)
    for (const key of (json as { keys: Array<{ id: string, owner: string, product: string, plan: string, expiresAt: string | number }> }).keys) {
      io.out.write(`${key.id}  ${key.owner}  ${key.product}  ${key.plan}  expires ${new Date(key.expiresAt).toISOString()}\n`)
    }
    return 0
  }
  if (sub === 'revoke') {
    const { values, positionals } = parse('keys revoke', rest, COMMON, { min: 1, max: 1 })
    await admin(io, values, 'DELETE', `/keys/${encodeURIComponent(positionals[0]!)}`)
    io.out.write(`revoked ${positionals[0]}\n`)
    return 0
  }
  throw new UsageError(`sluice keys: ${sub === undefined ? 'a subcommand is required' : `unknown subcommand "${sub}"`} (issue, list, revoke)`)
}
