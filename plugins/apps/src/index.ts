// The apps plugin: API management's first slice (issue 18). A developer,
// known by a JWT of a trusted issuer (developer.ts), creates applications,
// subscribes them to a product's plan (a plan's `approval: auto | manual` in
// the policy) and gets keys for them: /v1/developer/... An admin lists the
// pending subscriptions and approves or rejects them, with the admin API's
// credential: /admin/subscriptions, /admin/applications. Storage in Redis
// (store.ts); keys are auth's API keys owned by the application, so revocation,
// re-checks and rate limits are the ones every key already has. Described in
// openapi/gateway.yaml and openapi/admin.yaml.
//
// Without Redis the routes exist and answer 503 SLUICE_APPS_UNAVAILABLE, as
// the admin API's key routes do.
import fp from 'fastify-plugin'
import { Ajv, type ErrorObject } from 'ajv'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type {} from '@sluice/auth'
import type {} from '@sluice/policy'
// type-only: brings fastify.sessions into scope (open sockets of a key whose plan changed are retargeted)
import type {} from '@sluice/sessions'
import type { Redis } from 'ioredis'
import { adminTokenCheck } from '@sluice/admin'
import { Applications } from './applications.ts'
import { ApplicationStore, MAX_PAGE } from './store.ts'
import { resolveDeveloper, type Developer } from './developer.ts'
import {
  APP_ID, KEY_ID, SUBSCRIPTION_ID, adminApplicationSchema, applicationSchema, applicationView, createApplicationBody, DEFAULT_KEY_TTL_S,
  issueKeyBody, issuedKeySchema, keySchema, keyView, rejectBody, rotateKeyBody, subscribeBody, subscriptionSchema, subscriptionView,
  adminUsageQuery, adminUsageSchema, applicationUsageSchema, usageQuery
} from './schemas.ts'
import { AppsBadRequestError, AppsInternalError, AppsRedisUnavailableError, AppsUnavailableError, AppsUsageDisabledError } from './errors.ts'
import type { Usage } from '@sluice/usage'

export { resolveDeveloper } from './developer.ts'
export type { Developer } from './developer.ts'
export { Applications, MAX_APPLICATIONS, MAX_GRACE_S, MAX_KEYS } from './applications.ts'
export { ApplicationStore } from './store.ts'
export type { Application, Subscription, SubscriptionState } from './store.ts'
export * as errors from './errors.ts'

export interface AppsOptions {
  /** the admin API's credential: without it, no /admin route of this plugin */
  adminToken?: string
  /** Redis key prefix (default `sluice:apps:`) */
  prefix?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** undefined without Redis */
    applications: Applications | undefined
  }
}

// the last use of a key is written at most once a minute per key and node: a reconnect storm is not a write storm
const KEY_USE_INTERVAL_MS = 60_000
// how many keys' last writes a node remembers before starting over (a few hundred KB at most)
const KEY_USE_MEMORY = 10_000
// an application's keys are API keys owned by the application (store.ts)
const APPLICATION_OWNER = /^app_[0-9a-f]{16}$/
const KEY_ID_PATTERN = /^[0-9a-f]{16}$/
const PLAN_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/
// a plan change names an application's keys: at most MAX_KEYS live, and a few in their grace period
const MAX_KEYS_PER_MESSAGE = 100

function errorHandler (fastify: FastifyInstance) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    let error: FastifyError = err
    if (err.validation) error = new AppsBadRequestError(err.message)
    else if (!err.code?.startsWith('SLUICE_')) {
      // a command failed while Redis is not connected, or timed out (ioredis' commandTimeout, the 500 ms budget,
      // on a Redis that stopped answering): a dependency down, not a bug
      if (fastify.hasDecorator('redis') && (fastify.redis.status !== 'ready' || err.message === 'Command timed out')) error = new AppsRedisUnavailableError()
      else {
        request.log.error({ err }, 'apps request failed')
        error = new AppsInternalError()
      }
    }
    reply.code(error.statusCode ?? 500).header('cache-control', 'no-store')
    if (error.statusCode === 401) reply.header('www-authenticate', 'Bearer realm="sluice"')
    return reply.send({ error: { code: error.code, message: error.message } })
  }
}

// Fastify's own validator removes unknown properties silently; here they are refused, so that a
// misspelt field (`graceSecond`) is an error, not a default. Every problem is reported at once.
const ajv = new Ajv({ allErrors: true, coerceTypes: 'array', useDefaults: true, removeAdditional: false, strict: false })

function problem (error: ErrorObject, dataVar: string): string {
  const extra = error.keyword === 'additionalProperties' ? ` (${String(error.params.additionalProperty)})` : ''
  return `${dataVar}${error.instancePath} ${error.message ?? 'is invalid'}${extra}`
}

function strictValidation (fastify: FastifyInstance): void {
  fastify.setValidatorCompiler(({ schema }) => ajv.compile(schema))
  fastify.setSchemaErrorFormatter((errors, dataVar) => new Error(errors.map(e => problem(e as ErrorObject, dataVar)).join('; ')))
}

function metering (fastify: FastifyInstance): Usage {
  const usage = fastify.hasDecorator('usage') ? fastify.usage : undefined
  if (!usage) throw new AppsUsageDisabledError()
  return usage
}

/** The last `count` UTC days, oldest first, ending with today. */
function lastDays (count: number, now = Date.now()): string[] {
  const days: string[] = []
  for (let i = count - 1; i >= 0; i--) days.push(new Date(now - i * 86_400_000).toISOString().slice(0, 10))
  return days
}

function core (fastify: FastifyInstance): Applications {
  if (!fastify.applications) throw new AppsUnavailableError()
  return fastify.applications
}

const params = { type: 'object', properties: { id: APP_ID } }
const keyParams = { type: 'object', properties: { id: APP_ID, keyId: KEY_ID } }

async function developerRoutes (fastify: FastifyInstance): Promise<void> {
  strictValidation(fastify)
  fastify.setErrorHandler(errorHandler(fastify))
  fastify.addHook('onRequest', async request => {
    request.developer = await resolveDeveloper(request)
  })
  const developer = (request: FastifyRequest): string => (request.developer as Developer).id

  fastify.post('/applications', {
    schema: { body: createApplicationBody, response: { 201: applicationSchema } }
  }, async (request, reply) => {
    const app = await core(fastify).create(developer(request), request.body as { name: string, description?: string })
    request.log.info({ application: app.id }, 'application created')
    return reply.code(201).send(applicationView(app))
  })

  // API routes have no automatic HEAD twins: the registered routes are exactly the documented ones
  fastify.get('/applications', {
    exposeHeadRoute: false,
    schema: { response: { 200: { type: 'object', required: ['applications'], properties: { applications: { type: 'array', items: applicationSchema } } } } }
  }, async request => {
    return { applications: (await core(fastify).list(developer(request))).map(app => applicationView(app)) }
  })

  fastify.get('/applications/:id', {
    exposeHeadRoute: false,
    schema: { params, response: { 200: applicationSchema } }
  }, async request => {
    const { id } = request.params as { id: string }
    return applicationView(await core(fastify).get(developer(request), id))
  })

  // what the application used, per UTC day (plugins/usage), summed over its products; today against its plan's quota
  fastify.get('/applications/:id/usage', {
    exposeHeadRoute: false,
    schema: { params, querystring: usageQuery, response: { 200: applicationUsageSchema } }
  }, async request => {
    const { id } = request.params as { id: string }
    const { days } = request.query as { days: number }
    const usage = metering(fastify)
    const app = await core(fastify).get(developer(request), id)
    const list = await usage.store.applicationDays(id, lastDays(days))
    const active = app.subscriptions.filter(s => s.state === 'active')
    const quota = active.length === 1 ? fastify.policy.plan(active[0]!.plan)?.dailyQuota : undefined
    return { application: id, days: list, today: { ...list[list.length - 1]!, quota } }
  })

  fastify.delete('/applications/:id', { schema: { params } }, async (request, reply) => {
    const { id } = request.params as { id: string }
    await core(fastify).delete(developer(request), id)
    request.log.info({ application: id }, 'application deleted, its keys revoked')
    return reply.code(204).send()
  })

  fastify.post('/applications/:id/subscriptions', {
    schema: { params, body: subscribeBody, response: { 201: subscriptionSchema } }
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    const { product, plan } = request.body as { product: string, plan: string }
    const sub = await core(fastify).subscribe(developer(request), id, product, plan)
    request.log.info({ application: id, subscription: sub.id, product, plan, state: sub.state }, 'subscription requested')
    return reply.code(201).send(subscriptionView(sub))
  })

  fastify.post('/applications/:id/keys', {
    schema: { params, body: issueKeyBody, response: { 201: issuedKeySchema } }
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    const body = (request.body ?? {}) as { product?: string, ttlSeconds?: number }
    const { key, record } = await core(fastify).issueKey(developer(request), id, { product: body.product, ttlSeconds: body.ttlSeconds ?? DEFAULT_KEY_TTL_S })
    request.log.info({ application: id, keyId: record.id, product: record.product, plan: record.plan }, 'application key issued')
    return reply.code(201).header('cache-control', 'no-store').send({ key, ...keyView(record) })
  })

  fastify.get('/applications/:id/keys', {
    exposeHeadRoute: false,
    schema: { params, response: { 200: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: keySchema } } } } }
  }, async request => {
    const { id } = request.params as { id: string }
    return { keys: (await core(fastify).listKeys(developer(request), id)).map(keyView) }
  })

  fastify.post('/applications/:id/keys/:keyId/rotate', {
    schema: {
      params: keyParams,
      body: rotateKeyBody,
      response: {
        201: {
          ...issuedKeySchema,
          required: [...issuedKeySchema.required, 'previous'],
          properties: {
            ...issuedKeySchema.properties,
            previous: { type: 'object', required: ['id', 'expiresAt'], properties: { id: KEY_ID, expiresAt: { type: 'string', format: 'date-time' } } }
          }
        }
      }
    }
  }, async (request, reply) => {
    const { id, keyId } = request.params as { id: string, keyId: string }
    const body = request.body as { graceSeconds: number, ttlSeconds?: number }
    const rotated = await core(fastify).rotateKey(developer(request), id, keyId, { graceSeconds: body.graceSeconds, ttlSeconds: body.ttlSeconds ?? DEFAULT_KEY_TTL_S })
    request.log.info({ application: id, keyId: rotated.record.id, previous: keyId, graceSeconds: body.graceSeconds }, 'application key rotated')
    return reply.code(201).header('cache-control', 'no-store')
      .send({ key: rotated.key, ...keyView(rotated.record), previous: { id: keyId, expiresAt: new Date(rotated.previous.expiresAt).toISOString() } })
  })

  fastify.delete('/applications/:id/keys/:keyId', { schema: { params: keyParams } }, async (request, reply) => {
    const { id, keyId } = request.params as { id: string, keyId: string }
    await core(fastify).revokeKey(developer(request), id, keyId)
    request.log.info({ application: id, keyId }, 'application key revoked')
    return reply.code(204).send()
  })
}

async function adminRoutes (fastify: FastifyInstance, opts: { token: string }): Promise<void> {
  strictValidation(fastify)
  fastify.setErrorHandler(errorHandler(fastify))
  // the admin API's own check and error (plugins/admin): one credential for every /admin route
  fastify.addHook('onRequest', adminTokenCheck(opts.token))

  // usage of every application on a UTC day (plugins/usage), by application and product
  fastify.get('/usage', {
    exposeHeadRoute: false,
    schema: { querystring: adminUsageQuery, response: { 200: adminUsageSchema } }
  }, async request => {
    const { date } = request.query as { date: string }
    return { date, applications: await metering(fastify).store.day(date) }
  })

  fastify.get('/subscriptions/pending', {
    exposeHeadRoute: false,
    schema: {
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE } } },
      response: { 200: { type: 'object', required: ['subscriptions'], properties: { subscriptions: { type: 'array', items: subscriptionSchema } } } }
    }
  }, async request => {
    const { limit } = request.query as { limit?: number }
    return { subscriptions: (await core(fastify).pending(limit ?? 100)).map(subscriptionView) }
  })

  fastify.post('/subscriptions/:id/approve', {
    schema: { params: { type: 'object', properties: { id: SUBSCRIPTION_ID } }, response: { 200: subscriptionSchema } }
  }, async request => {
    const { id } = request.params as { id: string }
    const sub = await core(fastify).decide(id, true)
    request.log.info({ subscription: id, application: sub.application, product: sub.product, plan: sub.plan }, 'subscription approved by an admin')
    return subscriptionView(sub)
  })

  fastify.post('/subscriptions/:id/reject', {
    schema: { params: { type: 'object', properties: { id: SUBSCRIPTION_ID } }, body: rejectBody, response: { 200: subscriptionSchema } }
  }, async request => {
    const { id } = request.params as { id: string }
    const { reason } = (request.body ?? {}) as { reason?: string }
    const sub = await core(fastify).decide(id, false, reason)
    request.log.info({ subscription: id, application: sub.application }, 'subscription rejected by an admin')
    return subscriptionView(sub)
  })

  fastify.get('/applications', {
    exposeHeadRoute: false,
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE }, cursor: { type: 'string', pattern: '^[0-9]{1,9}$' } }
      },
      response: { 200: { type: 'object', required: ['applications'], properties: { applications: { type: 'array', items: adminApplicationSchema }, next: { type: 'string' } } } }
    }
  }, async request => {
    const { limit, cursor } = request.query as { limit?: number, cursor?: string }
    const page = await core(fastify).all(limit ?? 100, cursor === undefined ? 0 : Number(cursor))
    return { applications: page.applications.map(app => applicationView(app, true)), next: page.next }
  })
}

/** The open sockets of these keys act under `plan` from now on (SocketSession.retarget), on this node. */
function retarget (fastify: FastifyInstance, keyIds: string[], plan: string): number {
  const ids = new Set(keyIds)
  let retargeted = 0
  for (const session of fastify.sessions.list()) {
    const identity = session.identity
    if (identity.keyId === undefined || !ids.has(identity.keyId) || identity.claims.plan === plan || !session.retarget) continue
    session.retarget({ ...identity, claims: { ...identity.claims, plan } })
    retargeted++
  }
  return retargeted
}

/** The other nodes hear of a plan change through Redis pub/sub, as auth's revocations. */
function planChannel (fastify: FastifyInstance, redis: Redis, channel: string) {
  let subscriber: Redis | undefined
  const onMessage = (from: string, message: string) => {
    if (from !== channel) return
    let change: { keyIds?: unknown, plan?: unknown }
    try {
      change = JSON.parse(message)
    } catch {
      return
    }
    const { keyIds, plan } = change
    if (!Array.isArray(keyIds) || keyIds.length > MAX_KEYS_PER_MESSAGE || !keyIds.every(id => typeof id === 'string' && KEY_ID_PATTERN.test(id))) return
    if (typeof plan !== 'string' || !PLAN_NAME.test(plan)) return
    const count = retarget(fastify, keyIds, plan)
    if (count > 0) fastify.log.info({ plan, sockets: count }, 'open sockets moved to an approved plan')
  }
  return {
    publish (keyIds: string[], plan: string): void {
      redis.publish(channel, JSON.stringify({ keyIds, plan })).catch(err => fastify.log.warn({ err }, 'publishing a plan change failed'))
    },
    start (): void {
      // its own connection: a subscribed connection runs no other command; SUBSCRIBE is queued until connected
      subscriber = redis.duplicate({ enableOfflineQueue: true, autoResubscribe: true })
      subscriber.on('error', err => fastify.log.debug({ err }, 'plan change channel'))
      subscriber.on('message', onMessage)
      subscriber.subscribe(channel).catch(err => fastify.log.warn({ err }, 'subscribing to plan changes failed'))
    },
    stop (): void {
      subscriber?.disconnect()
    }
  }
}

async function apps (fastify: FastifyInstance, opts: AppsOptions): Promise<void> {
  const keys = fastify.credentials.apiKeys
  const prefix = opts.prefix ?? 'sluice:apps:'
  const plans = fastify.hasDecorator('redis') ? planChannel(fastify, fastify.redis, `${prefix}plans`) : undefined
  const applications = plans && keys
    ? new Applications({
      store: new ApplicationStore(fastify.redis, prefix),
      keys,
      revokeKey: id => fastify.credentials.revokeApiKey(id),
      policy: () => fastify.policy.document,
      // this node at once; the others through the channel (this one hears it too, and finds nothing left to do)
      onPlanChanged: (keyIds, plan) => {
        retarget(fastify, keyIds, plan)
        plans.publish(keyIds, plan)
      },
      onError: (err, what) => fastify.log.warn({ err }, `${what} failed`)
    })
    : undefined
  fastify.decorate('applications', applications)
  if (applications) fastify.addHook('onReady', async () => plans!.start())
  fastify.addHook('onClose', async () => {
    applications?.close()
    plans?.stop()
  })

  // an application key's last use: noted on its upgrade (or any request it authenticates), off the request's path
  if (applications) {
    const written = new Map<string, number>()
    fastify.addHook('preHandler', async request => {
      const identity = request.identity
      if (identity?.kind !== 'api-key' || identity.keyId === undefined || !APPLICATION_OWNER.test(identity.subject)) return
      const now = Date.now()
      if (now - (written.get(identity.keyId) ?? 0) < KEY_USE_INTERVAL_MS) return
      if (written.size >= KEY_USE_MEMORY) written.clear()
      written.set(identity.keyId, now)
      applications.touchKey(identity.keyId, now).catch(err => request.log.warn({ err }, 'noting a key\'s last use failed'))
    })
  }

  await fastify.register(developerRoutes, { prefix: '/v1/developer' })
  if (opts.adminToken) await fastify.register(adminRoutes, { token: opts.adminToken, prefix: '/admin' })
}

export default fp(apps, { fastify: '5.x', name: 'sluice-apps', dependencies: ['sluice-sessions', 'sluice-auth', 'sluice-policy'] })
