// The /readyz timing the documents quote is the code's: each check's deadline
// (DEFAULT_CHECK_TIMEOUT_MS) and how long a run's results serve (DEFAULT_REUSE_MS),
// read from the constants, in docs/operations.md, the OpenAPI document and the
// Kubernetes probe's comment; and a check that never answers is cut off there.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import health, { DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_REUSE_MS } from '@sluice/health'

const root = join(import.meta.dirname, '..', '..')
const read = (file: string) => readFileSync(join(root, file), 'utf8')

test('every document quotes the /readyz check deadline and reuse window the code has', async t => {
  const operations = read('docs/operations.md')
  t.match(operations, new RegExp(`Each check has\\s+${DEFAULT_CHECK_TIMEOUT_MS} ms`), `docs/operations.md: ${DEFAULT_CHECK_TIMEOUT_MS} ms per check`)
  t.match(operations, new RegExp(`serve for ${DEFAULT_REUSE_MS}\\s+ms`), `docs/operations.md: results serve for ${DEFAULT_REUSE_MS} ms`)
  t.match(operations, new RegExp(`shares a run of the last ${DEFAULT_REUSE_MS} ms\\), ${DEFAULT_CHECK_TIMEOUT_MS} ms at most`), 'docs/operations.md, Metrics: sluice_dependency_up')
  t.match(read('openapi/gateway.yaml'), `Each check has ${DEFAULT_CHECK_TIMEOUT_MS} ms`, 'openapi/gateway.yaml')
  t.match(read('deploy/k8s/gateway.yaml'), `each check has ${DEFAULT_CHECK_TIMEOUT_MS} ms inside /readyz`, 'deploy/k8s/gateway.yaml')
  // every number of ms said next to "check" in those places is the constant: no other figure left behind
  for (const file of ['README.md', 'docs/operations.md', 'docs/design.md', 'openapi/gateway.yaml', 'deploy/k8s/gateway.yaml']) {
    for (const m of read(file).matchAll(/[Ee]ach check has\s+(\d+) ms/g)) t.equal(Number(m[1]), DEFAULT_CHECK_TIMEOUT_MS, `${file}: "${m[0].replace(/\s+/g, ' ')}"`)
  }
  t.ok(DEFAULT_CHECK_TIMEOUT_MS < 1000, 'under a load balancer\'s usual 1 s probe timeout, as the documents say')
})

test('a readiness check that never answers is cut off at the documented deadline', async t => {
  const app = Fastify({ logger: false })
  await app.register(health)
  app.readiness.add('stuck', () => new Promise(() => {}))
  await app.ready()
  t.teardown(() => app.close())
  const started = performance.now()
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  const ms = performance.now() - started
  t.equal(res.statusCode, 503)
  const body = res.json() as { checks: Record<string, { ok: boolean, reason?: string }> }
  t.equal(body.checks.stuck?.reason, `no answer within ${DEFAULT_CHECK_TIMEOUT_MS} ms`)
  // a lower bound only: how much later a busy machine answers is not what this test is about
  t.ok(ms >= DEFAULT_CHECK_TIMEOUT_MS - 2, `answered after ${Math.round(ms)} ms, not before the deadline`)
})
