// The developer docs, public and read-only: the product catalogue
// (GET /v1/products) and the AsyncAPI documents generated from the policy in
// force (GET /asyncapi.json, GET /asyncapi/<product>.json). Both are built
// from the policy (catalogue.ts, asyncapi.ts are Fastify-free) and rebuilt
// when LivePolicy reports a reload, so the portal always shows what the
// gateway serves. Given the OpenAPI document (openapi.ts composes it from
// openapi/), also GET /openapi.json and its interactive UI at /docs
// (@fastify/swagger-ui, whose assets come from node_modules: no CDN), with
// Sluice's mark (brand.ts). GET /v1/me, for a credential, says what the
// policy grants it (reader.ts).
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { LivePolicy } from '@sluice/policy'
import { asyncapiDocument, type AsyncApiDocument, type AsyncApiOptions } from './asyncapi.ts'
import { catalogue, catalogueSchema, type Catalogue } from './catalogue.ts'
import { NotFoundError } from './errors.ts'
import { ICON_SVG, LOGO_SVG, THEME_CSS } from './brand.ts'
import { reader, readerSchema } from './reader.ts'
import type { OpenApiDocument } from './openapi.ts'

export { asyncapiDocument, securitySchemes } from './asyncapi.ts'
export type { AsyncApiDocument, AsyncApiOptions } from './asyncapi.ts'
export { catalogue, catalogueProduct, catalogueSchema, planSchema } from './catalogue.ts'
export { reader, readerSchema } from './reader.ts'
export type { Reader, ReaderProduct } from './reader.ts'
export type { Catalogue, CatalogueProduct, CataloguePlan, CatalogueTopic, CatalogueAccess } from './catalogue.ts'
export { exampleFor } from './example.ts'
export { composeOpenApi, loadOpenApi, HTTP_METHODS } from './openapi.ts'
export type { OpenApiDocument } from './openapi.ts'
export * as errors from './errors.ts'

export interface DocsOptions {
  policy: LivePolicy
  /** where clients reach /v1/stream: the AsyncAPI document's server */
  server: Pick<AsyncApiOptions, 'host' | 'protocol'>
  /** the gateway's OpenAPI document (loadOpenApi): served at /openapi.json and /docs */
  openapi?: OpenApiDocument
}

export const DOCS_PREFIX = '/docs'
export const DOCS_CSP = "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; " +
  "frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'"

const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }
  }
} as const

interface Generated {
  catalogue: Catalogue
  asyncapi: AsyncApiDocument
  /** per-product documents, built on first request: a policy may hold up to 1000 products */
  products: Map<string, AsyncApiDocument>
}

async function docs (fastify: FastifyInstance, opts: DocsOptions): Promise<void> {
  const live = opts.policy
  let generated: Generated | undefined
  let generatedFor: unknown

  const options = (): AsyncApiOptions => ({ ...opts.server, policyVersion: live.status().version })
  const current = (): Generated => {
    // keyed by the compiled policy object: a reload swaps it
    if (!generated || generatedFor !== live.current) {
      generatedFor = live.current
      generated = {
        catalogue: catalogue(live.document),
        asyncapi: asyncapiDocument(live.document, options())!,
        products: new Map()
      }
    }
    return generated
  }
  // rebuilt as soon as a reload applies, so the next reader does not pay for it
  const unsubscribe = live.onChange(() => {
    try {
      generated = undefined
      current()
    } catch (err) {
      fastify.log.error({ err }, 'could not generate the docs from the new policy')
    }
  })
  fastify.addHook('onClose', async () => { unsubscribe() })

  const notFound = (reply: FastifyReply, what: string) => {
    const err = new NotFoundError(what)
    return reply.code(404).send({ error: { code: err.code, message: err.message } })
  }

  fastify.get('/v1/products', {
    schema: { response: { 200: catalogueSchema } }
  }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache')
    return current().catalogue
  })

  // what the policy grants the credential that asks: the portal's console shows it once connected
  fastify.get('/v1/me', {
    config: { auth: true },
    schema: { response: { 200: readerSchema } }
  }, async (request, reply) => {
    // per credential: no shared cache may keep it
    reply.header('cache-control', 'no-store')
    return reader(live.current, request.identity!)
  })

  fastify.get('/asyncapi.json', async (_request, reply) => {
    reply.header('cache-control', 'no-cache')
    return current().asyncapi
  })

  fastify.get<{ Params: { product: string } }>('/asyncapi/:product.json', {
    schema: {
      params: { type: 'object', required: ['product'], properties: { product: { type: 'string' } } },
      response: { 404: errorBody }
    }
  }, async (request, reply) => {
    const { product } = request.params
    const state = current()
    let document = state.products.get(product)
    if (!document) {
      document = asyncapiDocument(live.document, options(), product)
      // only names the policy has are cached: the map is bounded by the policy's 1000 products
      if (!document) return notFound(reply, `product "${product.slice(0, 64)}"`)
      state.products.set(product, document)
    }
    reply.header('cache-control', 'no-cache')
    return document
  })

  if (opts.openapi) {
    const openapi = opts.openapi
    fastify.get('/openapi.json', async (_request, reply) => {
      reply.header('cache-control', 'no-cache')
      return openapi
    })
    // static mode: the document is the hand-written one, checked against the routes by test/docs/openapi.test.ts
    await fastify.register(swagger, { mode: 'static', specification: { document: openapi as never } })
    await fastify.register(swaggerUi, {
      routePrefix: DOCS_PREFIX,
      // the UI's CSP: everything from this origin (the plugin's default also allows https: fonts and styles
      // and validator.swagger.io images); the browser itself refuses anything else. Swagger UI sets inline
      // styles: 'unsafe-inline' for styles only, which cannot fetch anything (img-src and font-src stay 'self')
      staticCSP: DOCS_CSP,
      // swagger-ui would otherwise ask validator.swagger.io for a badge
      validatorUrl: false,
      uiConfig: { deepLinking: true },
      // Sluice's mark and name, not Fastify's (the logo is inlined as a data: URL, which DOCS_CSP's img-src allows)
      logo: { type: 'image/svg+xml', content: Buffer.from(LOGO_SVG), href: DOCS_PREFIX, target: '_self' },
      theme: {
        title: 'Sluice gateway REST API',
        css: [{ filename: 'sluice.css', content: THEME_CSS }],
        favicon: [{ filename: 'sluice.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(ICON_SVG) }]
      }
    })
  }
}

export default fp(docs, { fastify: '5.x', name: 'sluice-docs', dependencies: ['sluice-policy', 'sluice-auth'] })
