// The developer portal (docs/design.md "Admin and docs"): GET /portal serves a
// hand-written page, its stylesheet and browser ES modules from this package,
// with no CDN and nothing fetched from elsewhere at run time. The page reads
// the catalogue (/v1/products) and each product's AsyncAPI from this gateway
// and opens /v1/stream with the reader's own credential. GET /favicon.ico is
// the portal's mark, drawn in code (favicon.ts). Developers sign in at
// /portal/login (sign-in.ts) and manage their applications from the page.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { loadAssets, toAsset, ASSET_NAME, SECURITY_HEADERS, type Asset } from './assets.ts'
import { PortalNotFoundError } from './errors.ts'
import { faviconIco } from './favicon.ts'
import { signIn, type SignInOptions } from './sign-in.ts'

export { loadAssets, CONTENT_SECURITY_POLICY, SECURITY_HEADERS, PUBLIC_DIR } from './assets.ts'
export * from './errors.ts'
export { faviconIco, faviconPng } from './favicon.ts'
export type { SignInOptions } from './sign-in.ts'

export interface PortalOptions {
  /** the folder of files to serve (default: this package's public/) */
  dir?: string
  /** developers' sign-in with an OpenID Connect provider (config portal.oidc); absent: none */
  oidc?: SignInOptions
}

async function portal (fastify: FastifyInstance, opts: PortalOptions): Promise<void> {
  // read once at start: a missing or unreadable file fails the boot, not a reader's request
  const assets = await loadAssets(opts.dir)

  function send (reply: FastifyReply, asset: Asset, ifNoneMatch: string | undefined): FastifyReply {
    reply.headers(SECURITY_HEADERS)
    // revalidated on every load (an ETag round trip): a gateway upgrade is seen at once, never a stale mix of files
    reply.header('cache-control', 'no-cache')
    reply.header('etag', asset.etag)
    if (ifNoneMatch === asset.etag) return reply.code(304).send()
    return reply.type(asset.type).send(asset.body)
  }

  const index = assets.get('index.html')!
  const page = { logLevel: 'warn' as const }
  fastify.get('/portal', page, async (request, reply) => send(reply, index, request.headers['if-none-match']))
  fastify.get('/portal/', page, async (request, reply) => send(reply, index, request.headers['if-none-match']))
  fastify.get<{ Params: { file: string } }>('/portal/:file', page, async (request, reply) => {
    const name = request.params.file
    const asset = ASSET_NAME.test(name) ? assets.get(name) : undefined
    if (!asset) {
      const err = new PortalNotFoundError(name.slice(0, 64))
      reply.headers(SECURITY_HEADERS)
      return reply.code(err.statusCode!).send({ error: { code: err.code, message: err.message } })
    }
    return send(reply, asset, request.headers['if-none-match'])
  })

  await signIn(fastify, opts.oidc)

  // browsers ask every origin for it, whatever the page links (the portal links favicon.svg)
  const favicon = toAsset(faviconIco(), 'image/x-icon')
  fastify.get('/favicon.ico', page, async (request, reply) => send(reply, favicon, request.headers['if-none-match']))
}

export default fp(portal, { fastify: '5.x', name: 'sluice-portal' })
