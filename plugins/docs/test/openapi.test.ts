// Composing openapi/*.yaml: the first document gives info and servers, the
// others add paths and components; a path or component declared twice
// differently is an error; a document's own `security` moves onto its operations.
import { test } from 'tap'
import { composeOpenApi } from '../src/openapi.ts'

const info = { title: 't', version: '1' }
const publicDoc = {
  openapi: '3.1.0',
  info,
  servers: [{ url: '/' }],
  paths: { '/v1/products': { get: { responses: { 200: { description: 'ok' } } } } },
  components: { schemas: { Error: { type: 'object' } } }
}
const adminDoc = {
  openapi: '3.1.0',
  info: { title: 'admin', version: '2' },
  security: [{ adminToken: [] }],
  paths: {
    '/admin/keys': {
      parameters: [],
      get: { responses: { 200: { description: 'ok' } } },
      post: { security: [], responses: { 201: { description: 'ok' } } }
    }
  },
  components: { schemas: { Error: { type: 'object' } }, securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } }
}

test('paths and components are merged; the admin document\'s security goes onto its operations', async t => {
  const doc = composeOpenApi([{ file: 'gateway.yaml', document: publicDoc }, { file: 'admin.yaml', document: adminDoc }])
  t.same(doc.info, info, 'info from the first document')
  t.same(Object.keys(doc.paths), ['/v1/products', '/admin/keys'])
  t.same((doc.paths['/admin/keys']!.get as { security: unknown }).security, [{ adminToken: [] }])
  t.same((doc.paths['/admin/keys']!.post as { security: unknown }).security, [], 'an operation\'s own security stays')
  t.equal((doc.paths['/v1/products']!.get as { security?: unknown }).security, undefined, 'public operations need nothing')
  t.equal(doc.security, undefined)
  t.same(Object.keys(doc.components!.schemas!), ['Error'])
  t.ok(doc.components!.securitySchemes!.adminToken)
  t.same(adminDoc.paths['/admin/keys'].get, { responses: { 200: { description: 'ok' } } }, 'the inputs are not changed')
})

test('conflicts are errors, never overwrites', async t => {
  t.throws(() => composeOpenApi([{ file: 'a.yaml', document: publicDoc }, { file: 'b.yaml', document: publicDoc }]), /b\.yaml: path \/v1\/products is already described/)
  const other = { ...adminDoc, components: { schemas: { Error: { type: 'string' } } } }
  t.throws(() => composeOpenApi([{ file: 'a.yaml', document: publicDoc }, { file: 'admin.yaml', document: other }]), /admin\.yaml: components\.schemas\.Error differs/)
  t.throws(() => composeOpenApi([{ file: 'old.yaml', document: { ...publicDoc, openapi: '3.0.3' } }]), /old\.yaml: not an OpenAPI 3\.1 document/)
  t.throws(() => composeOpenApi([]), /no OpenAPI document/)
})
