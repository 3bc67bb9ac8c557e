// The admin REST API under /admin, with its own credential (`admin.token`,
// sent as `Authorization: Bearer`): API keys (issue, list, revoke), the
// policy (show, validate, reload) and live sessions (list, kick). Described
// in openapi/admin.yaml; test/docs/openapi.test.ts keeps the two in step.
//
// An encapsulated plugin: its token check, error format and 404 apply to
// /admin only, and nothing of the stream's auth (config.auth) applies here.
import { createHash, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ApiKeyRecord } from '@sluice/auth'
import { compilePolicy, loadPolicyDir, errors as policyErrors, type PolicyFile } from '@sluice/policy'
import type { Identity } from '@sluice/protocol/identity'
import {
  AdminApiKeysUnavailableError, AdminBadRequestError, AdminInternalError, AdminNotFoundError, AdminRedisUnavailableError,
  AdminUnauthorizedError, AdminUnknownPlanError, AdminUnknownProductError, AdminTopicNotInProductError
} from './errors.ts'
import { productTopics } from '@sluice/policy/product-topics'
import { TOPIC_NAME_PATTERN } from '@sluice/protocol/topics'
import '@sluice/kafka'
// type-only: brings fastify.sessions into scope (the live sockets listed and kicked)
import type {} from '@sluice/sessions'
import { CLOSE } from '@sluice/protocol/codes'

export * as errors from './errors.ts'

export interface AdminOptions {
  /** the admin credential; compared in constant time */
  token: string
}

// API keys expire: 90 days unless asked otherwise, a year and a day at most, so a forgotten key dies on its own
export const DEFAULT_KEY_TTL_S = 90 * 24 * 3600
export const MAX_KEY_TTL_S = 366 * 24 * 3600
// a page of sessions or keys; one response stays well under a megabyte
export const MAX_PAGE = 1000
// topics: a product's topics at once; 3 partitions as `sluice topics create` and dev mode make them;
// Kafka's own ceilings are far above what one gateway product needs (a replication factor beyond the
// brokers is refused by Kafka itself, with its message)
const MAX_TOPICS_PER_CREATE = 100
const DEFAULT_PARTITIONS = 3
const MAX_PARTITIONS = 10_000
const MAX_REPLICATION = 32
// the policy sent for validation: as many files and bytes as a policy directory may hold (plugins/policy)
const MAX_VALIDATE_FILES = 100
const VALIDATE_BODY_LIMIT = 4 * 1024 * 1024

// the same rules as the policy's names and the API key's owner (a subject)
const NAME = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }
const OWNER = { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,128}$' }
const KEY_ID = { type: 'string', pattern: '^[0-9a-f]{16}$' }
// what issue() returns (plugins/auth): sk_<key id>_<32 random bytes, base64url>; documented, not checked on the way out
const KEY = { type: 'string', pattern: '^sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' }
const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
    problems: { type: 'array', items: { $ref: 'sluiceProblem#' } }
  }
}
const apiKey = {
  type: 'object',
  required: ['id', 'owner', 'product', 'plan', 'createdAt', 'expiresAt'],
  properties: {
    id: KEY_ID,
    owner: { type: 'string' },
    product: { type: 'string' },
    plan: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' }
  }
}
const session = {
  type: 'object',
  required: ['id', 'kind', 'subject', 'route', 'remoteAddress', 'connectedAt', 'topics'],
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: ['jwt', 'api-key', 'dev'] },
    subject: { type: 'string' },
    keyId: { type: 'string' },
    route: { type: 'string' },
    remoteAddress: { type: 'string' },
    connectedAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    topics: { type: 'array', items: { type: 'string' } }
  }
}

interface LiveSessionView {
  id: string
  identity: Identity
  route: string
  remoteAddress: string
  connectedAt: number
  topics (): string[]
  close (code: number, reason: string): void
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

function iso (ms: number): string {
  return new Date(ms).toISOString()
}

function keyView (record: ApiKeyRecord) {
  return { id: record.id, owner: record.owner, product: record.product, plan: record.plan, createdAt: iso(record.createdAt), expiresAt: iso(record.expiresAt) }
}

/** Redis failures become 503 with a code; the API's own errors pass as they are. */
async function redisCall<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (typeof (err as { code?: unknown }).code === 'string' && (err as { code: string }).code.startsWith('SLUICE_')) throw err
    throw new AdminRedisUnavailableError()
  }
}

/**
 * The admin API's credential check, an onRequest hook: `Authorization: Bearer <admin.token>`, else
 * SLUICE_ADMIN_UNAUTHORIZED. Every /admin route takes it (this plugin's and plugins/apps' admin routes).
 */
export function adminTokenCheck (token: string): (request: FastifyRequest) => Promise<void> {
  const expected = digest(token)
  return async request => {
    const header = request.headers.authorization
    const match = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null
    // digests have equal length whatever was sent, so the comparison leaks nothing
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) throw new AdminUnauthorizedError()
  }
}

async function adminRoutes (fastify: FastifyInstance, opts: AdminOptions): Promise<void> {
  fastify.addSchema({
    $id: 'sluiceProblem',
    type: 'object',
    required: ['path', 'message'],
    properties: { path: { type: 'string' }, message: { type: 'string' }, source: { type: 'string' } }
  })

  fastify.addHook('onRequest', adminTokenCheck(opts.token))

  fastify.setErrorHandler((err: FastifyError & { problems?: unknown }, request: FastifyRequest, reply: FastifyReply) => {
    let error: FastifyError = err
    if (err.validation) error = new AdminBadRequestError(err.message)
    else if (!err.code?.startsWith('SLUICE_')) {
      request.log.error({ err }, 'admin request failed')
      error = new AdminInternalError()
    }
    reply.code(error.statusCode ?? 500).header('cache-control', 'no-store')
    return reply.send({ error: { code: error.code, message: error.message }, ...(err.problems ? { problems: err.problems } : {}) })
  })
  fastify.setNotFoundHandler(async request => {
    throw new AdminNotFoundError(`${request.method} ${request.url.split('?')[0]}`)
  })

  const apiKeys = () => {
    const store = fastify.credentials.apiKeys
    if (!store) throw new AdminApiKeysUnavailableError()
    return store
  }
  const liveSessions = (): LiveSessionView[] => fastify.sessions.list()

  // ---- keys ---------------------------------------------------------------
  fastify.post('/keys', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['owner', 'product', 'plan'],
        properties: { owner: OWNER, product: NAME, plan: NAME, ttlSeconds: { type: 'integer', minimum: 60, maximum: MAX_KEY_TTL_S } }
      },
      response: { 201: { type: 'object', required: ['key', ...apiKey.required], properties: { key: KEY, ...apiKey.properties } } }
    }
  }, async (request, reply) => {
    const body = request.body as { owner: string, product: string, plan: string, ttlSeconds?: number }
    const store = apiKeys()
    // a key for a product or plan the policy does not have would open nothing, or something later
    const products = fastify.policy.document?.products ?? {}
    // own keys only: "constructor" is a valid name and must not reach Object.prototype
    const product = Object.hasOwn(products, body.product) ? products[body.product] : undefined
    if (!product) throw new AdminUnknownProductError(body.product)
    if (!product.plans.includes(body.plan)) throw new AdminUnknownPlanError(body.product, body.plan)
    const expiresAt = Date.now() + (body.ttlSeconds ?? DEFAULT_KEY_TTL_S) * 1000
    const { key, record } = await redisCall(() => store.issue({ owner: body.owner, product: body.product, plan: body.plan, expiresAt }))
    request.log.info({ keyId: record.id, owner: record.owner, product: record.product, plan: record.plan }, 'API key issued')
    reply.code(201).header('cache-control', 'no-store')
    return { key, ...keyView(record) }
  })

  // API routes have no automatic HEAD twins: the registered routes are exactly the documented ones
  fastify.get('/keys', {
    exposeHeadRoute: false,
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { owner: OWNER, limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE }, cursor: { type: 'string', pattern: '^[0-9]{1,9}$' } }
      },
      response: { 200: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: apiKey }, next: { type: 'string' } } } }
    }
  }, async request => {
    const query = request.query as { owner?: string, limit?: number, cursor?: string }
    const store = apiKeys()
    const page = await redisCall(() => store.list(query))
    return { keys: page.keys.map(keyView), next: page.next }
  })

  fastify.get('/keys/:id', {
    exposeHeadRoute: false,
    schema: { params: { type: 'object', properties: { id: KEY_ID } }, response: { 200: apiKey } }
  }, async request => {
    const { id } = request.params as { id: string }
    const store = apiKeys()
    const record = await redisCall(() => store.get(id))
    if (!record) throw new AdminNotFoundError(`API key ${id}`)
    return keyView(record)
  })

  fastify.delete('/keys/:id', {
    schema: { params: { type: 'object', properties: { id: KEY_ID } } }
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    apiKeys()
    const revoked = await redisCall(() => fastify.credentials.revokeApiKey(id))
    if (!revoked) throw new AdminNotFoundError(`API key ${id}`)
    request.log.info({ keyId: id }, 'API key revoked')
    return reply.code(204).send()
  })

  // ---- topics -------------------------------------------------------------
  // Brokers run with auto-create off: a product's topics are made here (or with `sluice topics create`),
  // and only a product's: a topic the policy does not name would serve nobody
  fastify.post('/topics', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['topics'],
        properties: {
          topics: { type: 'array', minItems: 1, maxItems: MAX_TOPICS_PER_CREATE, uniqueItems: true, items: { type: 'string', pattern: TOPIC_NAME_PATTERN } },
          partitions: { type: 'integer', minimum: 1, maximum: MAX_PARTITIONS },
          replicationFactor: { type: 'integer', minimum: 1, maximum: MAX_REPLICATION }
        }
      },
      response: {
        200: {
          type: 'object',
          required: ['topics'],
          properties: {
            topics: { type: 'array', items: { type: 'object', required: ['topic', 'product', 'created'], properties: { topic: { type: 'string' }, product: { type: 'string' }, created: { type: 'boolean' } } } }
          }
        }
      }
    }
  }, async request => {
    const body = request.body as { topics: string[], partitions?: number, replicationFactor?: number }
    const document = fastify.policy.document
    const products = document ? productTopics(document) : undefined
    const owned = body.topics.map(topic => ({ topic, product: products?.productOf(topic) }))
    const outside = owned.filter(o => o.product === undefined).map(o => o.topic)
    if (outside.length > 0) throw new AdminTopicNotInProductError(outside.slice(0, 10).join(', '))
    const existing = new Set(await fastify.kafka.listTopics())
    await fastify.kafka.ensureTopics(body.topics.map(topic => ({ topic, partitions: body.partitions ?? DEFAULT_PARTITIONS, replicationFactor: body.replicationFactor })))
    request.log.info({ topics: body.topics }, 'topics created')
    return { topics: owned.map(o => ({ topic: o.topic, product: o.product!, created: !existing.has(o.topic) })) }
  })

  // ---- policy -------------------------------------------------------------
  const problem = { $ref: 'sluiceProblem#' }
  fastify.get('/policy', {
    exposeHeadRoute: false,
    schema: {
      response: {
        200: {
          type: 'object',
          required: ['dir', 'files', 'policy'],
          properties: {
            dir: { type: 'string' },
            version: { type: 'string' },
            loadedAt: { type: 'string', format: 'date-time' },
            files: { type: 'array', items: { type: 'string' } },
            lastError: { type: 'object', properties: { at: { type: 'string', format: 'date-time' }, problems: { type: 'array', items: problem } } },
            policy: { type: ['object', 'null'], additionalProperties: true }
          }
        }
      }
    }
  }, async () => {
    const status = fastify.policy.status()
    return {
      dir: status.dir,
      version: status.version,
      loadedAt: status.loadedAt === undefined ? undefined : iso(status.loadedAt),
      files: status.files,
      lastError: status.lastError ? { at: iso(status.lastError.at), problems: status.lastError.problems } : undefined,
      policy: fastify.policy.document ?? null
    }
  })

  fastify.post('/policy/validate', {
    bodyLimit: VALIDATE_BODY_LIMIT,
    schema: {
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: {
          files: {
            type: 'object',
            minProperties: 1,
            maxProperties: MAX_VALIDATE_FILES,
            propertyNames: { pattern: '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\\.ya?ml$' },
            additionalProperties: { type: 'string' }
          }
        }
      },
      response: {
        200: { type: 'object', required: ['valid', 'problems'], properties: { valid: { type: 'boolean' }, problems: { type: 'array', items: problem } } }
      }
    }
  }, async request => {
    const files = (request.body as { files?: Record<string, string> } | null)?.files
    if (!files) {
      // the directory as the next reload would find it
      const result = await loadPolicyDir(fastify.policy.dir)
      return { valid: result.problems.length === 0, problems: result.problems }
    }
    const list: PolicyFile[] = Object.entries(files).sort(([a], [b]) => a.localeCompare(b)).map(([file, text]) => ({ file, text }))
    const { problems } = compilePolicy(list)
    return { valid: problems.length === 0, problems }
  })

  fastify.post('/policy/reload', {
    schema: {
      response: {
        200: { type: 'object', required: ['outcome'], properties: { outcome: { type: 'string', enum: ['applied', 'unchanged'] }, version: { type: 'string' } } },
        422: errorBody
      }
    }
  }, async request => {
    const result = await fastify.policy.reload({ force: true })
    if (result.outcome === 'invalid') {
      throw Object.assign(new policyErrors.PolicyInvalidError(result.problems.length), { problems: result.problems })
    }
    request.log.info({ version: result.version }, 'policy reloaded by an admin')
    return { outcome: result.outcome, version: result.version }
  })

  // ---- sessions -----------------------------------------------------------
  fastify.get('/sessions', {
    exposeHeadRoute: false,
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { subject: { type: 'string', maxLength: 256 }, keyId: KEY_ID, limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE } }
      },
      response: { 200: { type: 'object', required: ['sessions', 'total'], properties: { sessions: { type: 'array', items: session }, total: { type: 'integer' } } } }
    }
  }, async request => {
    const query = request.query as { subject?: string, keyId?: string, limit?: number }
    const matching = liveSessions().filter(s =>
      (query.subject === undefined || s.identity.subject === query.subject) &&
      (query.keyId === undefined || s.identity.keyId === query.keyId))
    return {
      total: matching.length,
      sessions: matching.slice(0, query.limit ?? 100).map(s => ({
        id: s.id,
        kind: s.identity.kind,
        subject: s.identity.subject,
        keyId: s.identity.keyId,
        route: s.route,
        remoteAddress: s.remoteAddress,
        connectedAt: iso(s.connectedAt),
        expiresAt: s.identity.expiresAt === undefined ? undefined : iso(s.identity.expiresAt),
        topics: s.topics()
      }))
    }
  })

  fastify.delete('/sessions/:id', {
    schema: { params: { type: 'object', properties: { id: { type: 'string', maxLength: 128 } } } }
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    const target = liveSessions().find(s => s.id === id)
    if (!target) throw new AdminNotFoundError(`session ${id}`)
    // a kick is the policy enforced by hand: 1008 policy violation (RFC 6455 §7.4.1)
    target.close(CLOSE.POLICY_VIOLATION, 'closed by an administrator')
    request.log.info({ session: id, subject: target.identity.subject }, 'session kicked by an admin')
    return reply.code(204).send()
  })
}

async function admin (fastify: FastifyInstance, opts: AdminOptions): Promise<void> {
  await fastify.register(adminRoutes, { ...opts, prefix: '/admin' })
}

export default fp(admin, { fastify: '5.x', name: 'sluice-admin', dependencies: ['sluice-sessions', 'sluice-auth', 'sluice-policy', 'sluice-kafka'] })
