// openapi/admin.yaml describes exactly the admin routes the gateway registers:
// a route missing from the document, or a documented path no route serves,
// fails this suite. Routes are collected with an onRoute hook (method + URL).
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import { parse } from 'yaml'
import health from '@sluice/health'
import auth from '@sluice/auth'
import policy from '@sluice/policy'
import admin from '@sluice/admin'
import { policyDir } from '../plugins/auth/test/live-route.ts'

const DOC = join(import.meta.dirname, '..', 'openapi', 'admin.yaml')
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']

test('the admin routes and openapi/admin.yaml match both ways', async t => {
  const doc = parse(readFileSync(DOC, 'utf8')) as { openapi: string, paths: Record<string, Record<string, unknown>> }
  t.match(doc.openapi, /^3\.1\./, 'OpenAPI 3.1')
  const documented = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item).filter(m => METHODS.includes(m))) {
      // OpenAPI {id} is Fastify :id
      documented.add(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)
    }
  }

  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const registered = new Set<string>()
  app.addHook('onRoute', route => {
    if (!route.url.startsWith('/admin')) return
    for (const method of [route.method].flat()) registered.add(`${method} ${route.url}`)
  })
  await app.register(health)
  await app.register(auth, {})
  await app.register(policy, { dir: policyDir(), watch: false })
  await app.register(admin, { token: 'x'.repeat(32) })
  await app.ready()

  t.ok(registered.size >= 9, `the admin API registered its routes (${registered.size})`)
  for (const route of registered) t.ok(documented.has(route), `${route} is documented`)
  for (const route of documented) t.ok(registered.has(route), `${route} is served`)
})
