// Where a credential may be, and that there is exactly one: pure logic.
import { test } from 'tap'
import { credentialFrom, MAX_CREDENTIAL_LENGTH } from '../src/credentials.ts'

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln'
const KEY = 'sk_0123456789abcdef_' + 'a'.repeat(43)

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

test('each place a credential may be', async t => {
  t.same(credentialFrom({ authorization: `Bearer ${JWT}` }, {}), { type: 'bearer', token: JWT, from: 'header' })
  t.same(credentialFrom({ authorization: `bearer   ${JWT}` }, {}), { type: 'bearer', token: JWT, from: 'header' }, 'scheme case and spacing')
  t.same(credentialFrom({ 'x-api-key': KEY }, {}), { type: 'api-key', key: KEY, from: 'header' })
  t.same(credentialFrom({ authorization: `Bearer ${KEY}` }, {}), { type: 'api-key', key: KEY, from: 'header' }, 'an API key sent as a bearer token')
  t.same(credentialFrom({ 'sec-websocket-protocol': `sluice.v1, bearer.${JWT}` }, {}), { type: 'bearer', token: JWT, from: 'subprotocol' })
  t.same(credentialFrom({}, { access_token: JWT }), { type: 'bearer', token: JWT, from: 'query' })
  t.same(credentialFrom({}, { api_key: KEY }), { type: 'api-key', key: KEY, from: 'query' })
  t.same(credentialFrom({ 'sec-websocket-protocol': 'sluice.v1' }, { topics: 'a', access_token: JWT }), { type: 'bearer', token: JWT, from: 'query' }, 'other subprotocols and parameters are not credentials')
})

test('none, two, or a malformed one are refused', async t => {
  t.equal(code(() => credentialFrom({}, {})), 'SLUICE_AUTH_MISSING')
  t.equal(code(() => credentialFrom({ 'sec-websocket-protocol': 'sluice.v1' }, undefined)), 'SLUICE_AUTH_MISSING')
  t.equal(code(() => credentialFrom({ authorization: `Bearer ${JWT}` }, { access_token: JWT })), 'SLUICE_AUTH_AMBIGUOUS', 'the same token twice is still two')
  t.equal(code(() => credentialFrom({ authorization: `Bearer ${JWT}`, 'x-api-key': KEY }, {})), 'SLUICE_AUTH_AMBIGUOUS')
  t.equal(code(() => credentialFrom({ 'sec-websocket-protocol': `bearer.${JWT}, bearer.${JWT}` }, {})), 'SLUICE_AUTH_AMBIGUOUS')
  t.equal(code(() => credentialFrom({}, { access_token: [JWT, JWT] })), 'SLUICE_AUTH_AMBIGUOUS', 'a repeated parameter')
  t.equal(code(() => credentialFrom({ 'x-api-key': [KEY, KEY] }, {})), 'SLUICE_AUTH_AMBIGUOUS', 'a repeated header')
  t.equal(code(() => credentialFrom({ authorization: 'Basic YTpi' }, {})), 'SLUICE_AUTH_MALFORMED', 'another scheme')
  t.equal(code(() => credentialFrom({ authorization: 'Bearer' }, {})), 'SLUICE_AUTH_MALFORMED', 'no token')
  t.equal(code(() => credentialFrom({ authorization: 'Bearer a b' }, {})), 'SLUICE_AUTH_MALFORMED', 'two tokens')
  t.equal(code(() => credentialFrom({}, { access_token: '' })), 'SLUICE_AUTH_MALFORMED', 'empty')
  t.equal(code(() => credentialFrom({}, { access_token: { a: 1 } })), 'SLUICE_AUTH_MALFORMED', 'not a string')
  t.equal(code(() => credentialFrom({}, { access_token: 'x'.repeat(MAX_CREDENTIAL_LENGTH + 1) })), 'SLUICE_AUTH_MALFORMED', `longer than ${MAX_CREDENTIAL_LENGTH}`)
  t.equal(credentialFrom({}, { access_token: 'x'.repeat(MAX_CREDENTIAL_LENGTH) }).type, 'bearer', 'the bound itself is allowed')
})
