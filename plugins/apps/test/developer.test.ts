// resolveDeveloper: who a developer is, from the identity auth finds on the
// request (pure: the request is a plain object with the server's credentials).
import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import type { Identity } from '@sluice/protocol/identity'
import { DEV_ISSUER, resolveDeveloper } from '../src/developer.ts'

function request (identity: Identity | Error): FastifyRequest {
  const authenticate = async () => {
    if (identity instanceof Error) throw identity
    return identity
  }
  return { headers: {}, server: { credentials: { authenticate } } } as unknown as FastifyRequest
}

test('a JWT\'s developer is its issuer and subject', async t => {
  const developer = await resolveDeveloper(request({ kind: 'jwt', subject: 'alice', claims: { iss: 'https://id.example.com', sub: 'alice' } }))
  t.same(developer, { id: 'https://id.example.com|alice', issuer: 'https://id.example.com', subject: 'alice' })
})

test('the same subject at two issuers is two developers', async t => {
  const a = await resolveDeveloper(request({ kind: 'jwt', subject: 'alice', claims: { iss: 'https://a.example.com' } }))
  const b = await resolveDeveloper(request({ kind: 'jwt', subject: 'alice', claims: { iss: 'https://b.example.com' } }))
  t.not(a.id, b.id)
})

test('dev mode\'s credential is a developer of its own issuer', async t => {
  t.equal((await resolveDeveloper(request({ kind: 'dev', subject: 'dev', claims: {} }))).id, `${DEV_ISSUER}|dev`)
})

test('an API key is refused: it belongs to an application, not a developer', async t => {
  await t.rejects(resolveDeveloper(request({ kind: 'api-key', subject: 'app_0000000000000001', claims: {}, keyId: '0000000000000001' })), { code: 'SLUICE_APPS_DEVELOPER_REQUIRED', statusCode: 403 })
})

test('a token without an issuer is refused, and auth\'s own errors pass through', async t => {
  await t.rejects(resolveDeveloper(request({ kind: 'jwt', subject: 'x', claims: {} })), { code: 'SLUICE_APPS_DEVELOPER_REQUIRED' })
  const expired = Object.assign(new Error('expired'), { code: 'SLUICE_AUTH_EXPIRED', statusCode: 401 })
  await t.rejects(resolveDeveloper(request(expired)), { code: 'SLUICE_AUTH_EXPIRED' })
})
