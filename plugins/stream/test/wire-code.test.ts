import { test } from 'tap'
import createError from '@fastify/error'
import { wireCode } from '../src/errors.ts'

test('a catalogued error is never INTERNAL: it maps by its status; only an uncatalogued throw is INTERNAL', async t => {
  const cases: Array<[string, number, string]> = [
    ['SLUICE_RATE_UNAVAILABLE', 503, 'UNAVAILABLE'],
    ['SLUICE_POLICY_NOT_LOADED', 503, 'UNAVAILABLE'],
    ['SLUICE_AUTH_INVALID_TOKEN', 401, 'UNAUTHORIZED'],
    ['SLUICE_AUTH_RENEW_REFUSED', 401, 'UNAUTHORIZED'],
    ['SLUICE_AUTH_KEYS_UNAVAILABLE', 503, 'UNAVAILABLE'],
    ['SLUICE_SOMETHING_FORBIDDEN', 403, 'FORBIDDEN'],
    ['SLUICE_SOMETHING_BROKEN', 500, 'INTERNAL']
  ]
  for (const [code, status, wire] of cases) {
    const E = createError(code, 'x', status)
    t.equal(wireCode(new E()), wire, `${code} (${status})`)
  }
  t.equal(wireCode(new TypeError('bug')), 'INTERNAL')
  t.equal(wireCode(undefined), 'INTERNAL')
})
