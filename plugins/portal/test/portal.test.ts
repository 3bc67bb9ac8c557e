// The portal's files as the gateway serves them: the page, its stylesheet
// and modules, the security headers on each, nothing else reachable, and the
// rules the browser code keeps (no inline script, no markup from data, no
// other origin).
import { test } from 'tap'
import Fastify from 'fastify'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import portal, { CONTENT_SECURITY_POLICY, PUBLIC_DIR, loadAssets } from '@sluice/portal'

async function app () {
  const fastify = Fastify({ logger: false })
  await fastify.register(portal)
  return fastify
}

test('the page and its files, with the security headers', async t => {
  const fastify = await app()
  t.teardown(() => fastify.close())
  for (const url of ['/portal', '/portal/']) {
    const page = await fastify.inject({ url })
    t.equal(page.statusCode, 200, url)
    t.match(page.headers['content-type'], /^text\/html; charset=utf-8/)
    t.equal(page.headers['content-security-policy'], CONTENT_SECURITY_POLICY)
    t.equal(page.headers['x-content-type-options'], 'nosniff')
    t.equal(page.headers['x-frame-options'], 'DENY')
  }
  t.match(CONTENT_SECURITY_POLICY, /default-src 'self'/)
  t.match(CONTENT_SECURITY_POLICY, /connect-src 'self' ws: wss:/)
  t.notMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|\*/, 'no inline script or eval, no wildcard source')

  const html = (await fastify.inject({ url: '/portal' })).body
  t.notMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, 'every script has a src: no inline script')
  t.notMatch(html, /\son[a-z]+=/i, 'no inline event handler')
  t.notMatch(html, /<style/i, 'no inline style block')
  const linked = [...html.matchAll(/(?:src|href)="(\/portal\/[^"]+)"/g)].map(m => m[1]!)
  t.same([...new Set(linked)].sort(), ['/portal/admin.html', '/portal/favicon.svg', '/portal/portal.css', '/portal/portal.js'])
  const types: Record<string, RegExp> = { css: /^text\/css/, js: /^text\/javascript/, svg: /^image\/svg\+xml/ }
  for (const name of await readdir(PUBLIC_DIR)) {
    if (!/\.(css|js|svg)$/.test(name)) continue
    const res = await fastify.inject({ url: `/portal/${name}` })
    t.equal(res.statusCode, 200, name)
    t.match(res.headers['content-type'], types[name.split('.').pop()!]!, `${name}: its own type (nosniff needs it)`)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.equal(res.body, await readFile(join(PUBLIC_DIR, name), 'utf8'))
  }

  const first = await fastify.inject({ url: '/portal/portal.js' })
  const again = await fastify.inject({ url: '/portal/portal.js', headers: { 'if-none-match': String(first.headers.etag) } })
  t.equal(again.statusCode, 304, 'revalidated with the ETag')
  t.equal(first.headers['cache-control'], 'no-cache')
})

test('nothing else is served', async t => {
  const fastify = await app()
  t.teardown(() => fastify.close())
  for (const url of ['/portal/missing.js', '/portal/tsconfig.json', '/portal/..%2fsrc%2findex.ts', '/portal/%2e%2e%2fpackage.json', '/portal/PORTAL.JS', '/portal/sub/portal.js']) {
    const res = await fastify.inject({ url })
    t.equal(res.statusCode, 404, url)
    if (res.headers['content-type']?.startsWith('application/json') && url !== '/portal/sub/portal.js') {
      t.equal(res.json().error.code, 'SLUICE_PORTAL_NOT_FOUND', url)
    }
  }
})

test('a folder without index.html is refused at start', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-portal-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'portal.js'), '')
  await t.rejects(loadAssets(dir), /no index\.html/)
})

test('the browser code: no markup from data, no other origin, no eval', async t => {
  for (const name of await readdir(PUBLIC_DIR)) {
    if (!/\.(js|html|css)$/.test(name)) continue
    const source = await readFile(join(PUBLIC_DIR, name), 'utf8')
    t.notMatch(source, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, `${name}: text only (textContent)`)
    t.notMatch(source, /https?:\/\/|\/\/cdn|@import\s+url/i, `${name}: nothing from another origin`)
  }
})

test('the browser code type-checks (JSDoc, strict, DOM types)', async t => {
  const tsc = spawnSync(process.execPath, [fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url)), '-p', join(PUBLIC_DIR, 'tsconfig.json')], { encoding: 'utf8' })
  t.equal(tsc.status, 0, tsc.stdout + tsc.stderr)
})
