// The routes' JSON Schemas (openapi/gateway.yaml and openapi/admin.yaml say
// the same; test/docs/openapi.test.ts compares them) and the views they describe.
import type { ApiKeyRecord } from '@sluice/auth'
import { MAX_KEY_TTL_S } from '@sluice/admin'
import { MAX_GRACE_S } from './applications.ts'
import type { ApplicationView, KeyView } from './applications.ts'
import { APP_ID_PATTERN, SUBSCRIPTION_ID_PATTERN, type Application, type Subscription } from './store.ts'

// API keys' lifetime, as the admin API issues them: 90 days unless asked otherwise, a year and a day at most
export { DEFAULT_KEY_TTL_S } from '@sluice/admin'

// the policy's names (plugins/policy schema.ts)
export const NAME = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }
export const APP_ID = { type: 'string', pattern: APP_ID_PATTERN }
export const SUBSCRIPTION_ID = { type: 'string', pattern: SUBSCRIPTION_ID_PATTERN }
export const KEY_ID = { type: 'string', pattern: '^[0-9a-f]{16}$' }
// what a person types as a title; no control characters, which a console or a log would render
const APP_NAME = { type: 'string', minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }
const DESCRIPTION = { type: 'string', maxLength: 1000 }
const TTL = { type: 'integer', minimum: 60, maximum: MAX_KEY_TTL_S }
const DATE = { type: 'string', format: 'date-time' }

export const subscriptionSchema = {
  type: 'object',
  required: ['id', 'application', 'product', 'plan', 'state', 'createdAt'],
  properties: {
    id: { type: 'string' },
    application: { type: 'string' },
    product: { type: 'string' },
    plan: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'active', 'rejected', 'replaced'] },
    createdAt: DATE,
    decidedAt: DATE,
    reason: { type: 'string' }
  }
}

export const applicationSchema = {
  type: 'object',
  required: ['id', 'name', 'createdAt', 'subscriptions'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    createdAt: DATE,
    subscriptions: { type: 'array', items: subscriptionSchema }
  }
}

/** The admin's view also says whose application it is. */
export const adminApplicationSchema = {
  ...applicationSchema,
  required: [...applicationSchema.required, 'owner'],
  properties: { ...applicationSchema.properties, owner: { type: 'string' } }
}

export const keySchema = {
  type: 'object',
  required: ['id', 'prefix', 'product', 'plan', 'createdAt', 'expiresAt'],
  properties: {
    id: KEY_ID,
    prefix: { type: 'string' },
    product: { type: 'string' },
    plan: { type: 'string' },
    createdAt: DATE,
    expiresAt: DATE,
    lastUsedAt: DATE
  }
}

export const issuedKeySchema = {
  type: 'object',
  required: ['key', ...keySchema.required],
  properties: { key: { type: 'string', pattern: '^sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' }, ...keySchema.properties }
}

export const createApplicationBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: APP_NAME, description: DESCRIPTION }
}

export const subscribeBody = {
  type: 'object',
  additionalProperties: false,
  required: ['product', 'plan'],
  properties: { product: NAME, plan: NAME }
}

export const issueKeyBody = {
  type: 'object',
  additionalProperties: false,
  properties: { product: NAME, ttlSeconds: TTL }
}

export const rotateKeyBody = {
  type: 'object',
  additionalProperties: false,
  required: ['graceSeconds'],
  properties: { graceSeconds: { type: 'integer', minimum: 0, maximum: MAX_GRACE_S }, ttlSeconds: TTL }
}

export const rejectBody = {
  type: 'object',
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 1000 } }
}

function iso (ms: number): string {
  return new Date(ms).toISOString()
}

export function subscriptionView (sub: Subscription) {
  return {
    id: sub.id,
    application: sub.application,
    product: sub.product,
    plan: sub.plan,
    state: sub.state,
    createdAt: iso(sub.createdAt),
    decidedAt: sub.decidedAt === undefined ? undefined : iso(sub.decidedAt),
    reason: sub.reason
  }
}

export function applicationView (app: Application | ApplicationView, admin = false) {
  return {
    id: app.id,
    ...(admin ? { owner: app.owner } : {}),
    name: app.name,
    description: app.description,
    createdAt: iso(app.createdAt),
    subscriptions: 'subscriptions' in app ? app.subscriptions.map(subscriptionView) : []
  }
}

export function keyView (key: ApiKeyRecord | KeyView) {
  return {
    id: key.id,
    // the key id is what a key shows of itself (`sk_<id>_…`): enough to tell keys apart, nothing of the secret
    prefix: `sk_${key.id}`,
    product: key.product,
    plan: key.plan,
    createdAt: iso(key.createdAt),
    expiresAt: iso(key.expiresAt),
    lastUsedAt: 'lastUsedAt' in key && key.lastUsedAt !== undefined ? iso(key.lastUsedAt) : undefined
  }
}

// ---- usage (plugins/usage's totals) -----------------------------------------------------
const usageCounts = {
  delivered: { type: 'integer', description: 'messages delivered' },
  deliveredBytes: { type: 'integer', description: 'bytes of the messages delivered (as framed for the socket)' },
  published: { type: 'integer', description: 'messages published and acknowledged by Kafka' },
  connectionMinutes: { type: 'number', description: 'minutes of open connections, to the millisecond' },
  refused: { type: 'object', additionalProperties: { type: 'integer' }, description: 'refused publishes and connections, by error code' }
} as const
const USAGE_REQUIRED = ['delivered', 'deliveredBytes', 'published', 'connectionMinutes', 'refused'] as const
// the days a developer's usage reaches back: the days Redis keeps (plugins/usage DAY_TTL_S)
export const MAX_USAGE_DAYS = 35
export const usageQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { days: { type: 'integer', minimum: 1, maximum: MAX_USAGE_DAYS, default: 7 } }
} as const
const usageDay = {
  type: 'object',
  required: ['date', ...USAGE_REQUIRED],
  properties: { date: { type: 'string' }, ...usageCounts }
} as const
export const applicationUsageSchema = {
  type: 'object',
  required: ['application', 'days', 'today'],
  properties: {
    application: { type: 'string' },
    days: { type: 'array', items: usageDay },
    today: {
      type: 'object',
      required: ['date', ...USAGE_REQUIRED],
      properties: { date: { type: 'string' }, ...usageCounts, quota: { type: 'integer', description: 'the daily quota of the application\'s plan, when it has one active subscription' } }
    }
  }
} as const
export const adminUsageQuery = {
  type: 'object',
  additionalProperties: false,
  required: ['date'],
  properties: { date: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' } }
} as const
export const adminUsageSchema = {
  type: 'object',
  required: ['date', 'applications'],
  properties: {
    date: { type: 'string' },
    applications: {
      type: 'array',
      items: { type: 'object', required: ['application', 'product', ...USAGE_REQUIRED], properties: { application: { type: 'string' }, product: { type: 'string' }, ...usageCounts } }
    }
  }
} as const
