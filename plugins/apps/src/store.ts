// Fastify-free: applications, their subscriptions and the index of their keys,
// in Redis. The keys themselves are @sluice/auth's API keys (ApiKeyStore): an
// application's key is an API key whose owner is the application's id, so it
// is verified, rate limited, revoked and re-checked exactly as an admin-issued
// key is, and admin-issued keys are untouched.
//
// Redis keys, under the prefix (`sluice:apps:` by default: auth's key prefix + `apps:`):
//   app:<app id>             hash: id, owner (developer id), name, description, createdAt, and per product
//                            `active:<product>` / `pending:<product>`: the subscription id in that state
//   app:<app id>:subs        zset: the application's subscription ids, by creation time
//   app:<app id>:keys        zset: the application's key ids, by issue time (a key revoked or expired
//                            elsewhere is dropped when next listed)
//   dev:<sha256(developer)>  zset: a developer's application ids, by creation time (hashed: a developer id
//                            is `<issuer URL>|<sub>`, of any length and character)
//   apps                     zset: every application id, by creation time (the admin's listing)
//   sub:<sub id>             hash: id, application, product, plan, state, createdAt, decidedAt, reason
//   subs:pending             zset: subscriptions waiting for an admin, by creation time
//   keyuse                   hash: key id -> ms of its last use (an upgrade; at most one write a minute per key and node)
import { createHash, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'

export type SubscriptionState = 'pending' | 'active' | 'rejected' | 'replaced'

export interface Application {
  id: string
  /** the developer id, `<iss>|<sub>` */
  owner: string
  name: string
  description?: string
  /** ms since the epoch */
  createdAt: number
  /** product -> subscription id, for the active and the pending subscription of each product */
  active: Record<string, string>
  pending: Record<string, string>
}

export interface Subscription {
  id: string
  application: string
  product: string
  plan: string
  state: SubscriptionState
  createdAt: number
  decidedAt?: number
  reason?: string
}

export const APP_ID_PATTERN = '^app_[0-9a-f]{16}$'
export const SUBSCRIPTION_ID_PATTERN = '^sub_[0-9a-f]{16}$'
const APP_ID = new RegExp(APP_ID_PATTERN)
const SUB_ID = new RegExp(SUBSCRIPTION_ID_PATTERN)
// a page of the admin's listings: one Redis pipeline, a response well under a megabyte
export const MAX_PAGE = 1000

function newId (kind: 'app' | 'sub'): string {
  return `${kind}_${randomBytes(8).toString('hex')}`
}

function developerKey (owner: string): string {
  return createHash('sha256').update(owner).digest('hex')
}

/** Throws the first error of a MULTI, or when it was discarded. */
function checked (result: Array<[Error | null, unknown]> | null): Array<[Error | null, unknown]> {
  const failed = result?.find(([err]) => err)
  if (!result || failed) throw failed?.[0] ?? new Error('the Redis transaction was discarded')
  return result
}

function applicationOf (fields: Record<string, string>): Application | undefined {
  if (!fields.id || !fields.owner) return undefined
  const app: Application = { id: fields.id, owner: fields.owner, name: fields.name ?? '', createdAt: Number(fields.createdAt), active: {}, pending: {} }
  if (fields.description) app.description = fields.description
  for (const [field, value] of Object.entries(fields)) {
    if (field.startsWith('active:')) app.active[field.slice(7)] = value
    else if (field.startsWith('pending:')) app.pending[field.slice(8)] = value
  }
  return app
}

function subscriptionOf (fields: Record<string, string>): Subscription | undefined {
  if (!fields.id || !fields.application) return undefined
  const sub: Subscription = {
    id: fields.id,
    application: fields.application,
    product: fields.product ?? '',
    plan: fields.plan ?? '',
    state: fields.state as SubscriptionState,
    createdAt: Number(fields.createdAt)
  }
  if (fields.decidedAt) sub.decidedAt = Number(fields.decidedAt)
  if (fields.reason) sub.reason = fields.reason
  return sub
}

export class ApplicationStore {
  readonly #redis: Redis
  readonly #prefix: string

  constructor (redis: Redis, prefix = 'sluice:apps:') {
    this.#redis = redis
    this.#prefix = prefix
  }

  #app (id: string): string { return `${this.#prefix}app:${id}` }
  #subs (app: string): string { return `${this.#prefix}app:${app}:subs` }
  #keys (app: string): string { return `${this.#prefix}app:${app}:keys` }
  #developer (owner: string): string { return `${this.#prefix}dev:${developerKey(owner)}` }
  #sub (id: string): string { return `${this.#prefix}sub:${id}` }
  get #all (): string { return `${this.#prefix}apps` }
  get #pending (): string { return `${this.#prefix}subs:pending` }
  get #keyUse (): string { return `${this.#prefix}keyuse` }

  // ---- applications --------------------------------------------------------------------

  async countApplications (owner: string): Promise<number> {
    return this.#redis.zcard(this.#developer(owner))
  }

  async createApplication (owner: string, fields: { name: string, description?: string }): Promise<Application> {
    const app: Application = { id: newId('app'), owner, name: fields.name, createdAt: Date.now(), active: {}, pending: {} }
    if (fields.description !== undefined) app.description = fields.description
    checked(await this.#redis.multi()
      .hset(this.#app(app.id), { id: app.id, owner, name: app.name, createdAt: String(app.createdAt), ...(app.description === undefined ? {} : { description: app.description }) })
      .zadd(this.#developer(owner), app.createdAt, app.id)
      .zadd(this.#all, app.createdAt, app.id)
      .exec())
    return app
  }

  async getApplication (id: string): Promise<Application | undefined> {
    if (!APP_ID.test(id)) return undefined
    return applicationOf(await this.#redis.hgetall(this.#app(id)))
  }

  /** The developer's application, or undefined for an id that is not theirs (the routes answer 404 either way). */
  async ownedApplication (owner: string, id: string): Promise<Application | undefined> {
    const app = await this.getApplication(id)
    return app?.owner === owner ? app : undefined
  }

  async #applications (ids: string[]): Promise<Application[]> {
    if (ids.length === 0) return []
    const pipeline = this.#redis.pipeline()
    for (const id of ids) pipeline.hgetall(this.#app(id))
    const replies = (await pipeline.exec()) ?? []
    return replies.flatMap(([err, fields]) => {
      if (err) throw err
      const app = applicationOf(fields as Record<string, string>)
      return app ? [app] : []
    })
  }

  /** A developer's applications, newest first. */
  async listApplications (owner: string): Promise<Application[]> {
    return this.#applications(await this.#redis.zrevrange(this.#developer(owner), 0, -1))
  }

  /** Every application, newest first, a page at a time (`next`: the offset of the following page). */
  async allApplications (limit: number, offset = 0): Promise<{ applications: Application[], next?: string }> {
    const ids = await this.#redis.zrevrange(this.#all, offset, offset + limit - 1)
    return { applications: await this.#applications(ids), next: ids.length === limit ? String(offset + limit) : undefined }
  }

  /** Forgets the application and its subscriptions; returns its key ids, which the caller revokes. */
  async deleteApplication (app: Application): Promise<string[]> {
    const [keyIds, subIds] = await Promise.all([this.keyIds(app.id), this.#redis.zrange(this.#subs(app.id), 0, -1)])
    const multi = this.#redis.multi()
      .del(this.#app(app.id), this.#subs(app.id), this.#keys(app.id))
      .zrem(this.#developer(app.owner), app.id)
      .zrem(this.#all, app.id)
    for (const id of subIds) multi.del(this.#sub(id)).zrem(this.#pending, id)
    if (keyIds.length > 0) multi.hdel(this.#keyUse, ...keyIds)
    checked(await multi.exec())
    return keyIds
  }

  // ---- subscriptions -------------------------------------------------------------------

  async getSubscription (id: string): Promise<Subscription | undefined> {
    if (!SUB_ID.test(id)) return undefined
    return subscriptionOf(await this.#redis.hgetall(this.#sub(id)))
  }

  async #subscriptions (ids: string[]): Promise<Subscription[]> {
    if (ids.length === 0) return []
    const pipeline = this.#redis.pipeline()
    for (const id of ids) pipeline.hgetall(this.#sub(id))
    const replies = (await pipeline.exec()) ?? []
    return replies.flatMap(([err, fields]) => {
      if (err) throw err
      const sub = subscriptionOf(fields as Record<string, string>)
      return sub ? [sub] : []
    })
  }

  /** An application's subscriptions, newest first. */
  async listSubscriptions (app: string): Promise<Subscription[]> {
    return this.#subscriptions(await this.#redis.zrevrange(this.#subs(app), 0, -1))
  }

  /** Subscriptions waiting for an admin, oldest first. */
  async pendingSubscriptions (limit: number): Promise<Subscription[]> {
    return this.#subscriptions(await this.#redis.zrange(this.#pending, 0, limit - 1))
  }

  /**
   * A new subscription of `app` to `product`'s `plan`. Pending (manual approval): refused with
   * 'pending' when the product already has one waiting (HSETNX decides, so two requests at once
   * make one). Active (auto approval): replaces the product's active subscription, whose id comes
   * back as `replaced`.
   */
  async subscribe (app: string, product: string, plan: string, approval: 'auto' | 'manual'): Promise<{ subscription: Subscription, replaced?: string } | 'pending'> {
    const now = Date.now()
    const subscription: Subscription = { id: newId('sub'), application: app, product, plan, state: approval === 'auto' ? 'active' : 'pending', createdAt: now }
    const record = { id: subscription.id, application: app, product, plan, state: subscription.state, createdAt: String(now) }
    if (approval === 'manual') {
      const claimed = await this.#redis.hsetnx(this.#app(app), `pending:${product}`, subscription.id)
      if (claimed === 0) return 'pending'
      checked(await this.#redis.multi()
        .hset(this.#sub(subscription.id), record)
        .zadd(this.#subs(app), now, subscription.id)
        .zadd(this.#pending, now, subscription.id)
        .exec())
      return { subscription }
    }
    subscription.decidedAt = now
    const replaced = await this.#activate(app, product, subscription.id, { ...record, decidedAt: String(now) }, now)
    return { subscription, replaced }
  }

  /** Makes `id` the product's active subscription; the one it replaces is marked so. */
  async #activate (app: string, product: string, id: string, record: Record<string, string>, now: number): Promise<string | undefined> {
    const previous = await this.#redis.hget(this.#app(app), `active:${product}`)
    const multi = this.#redis.multi()
      .hset(this.#sub(id), record)
      .zadd(this.#subs(app), Number(record.createdAt), id)
      .hset(this.#app(app), `active:${product}`, id)
    if (previous && previous !== id) multi.hset(this.#sub(previous), { state: 'replaced', decidedAt: String(now) })
    checked(await multi.exec())
    return previous && previous !== id ? previous : undefined
  }

  /**
   * An admin's decision on a pending subscription. Returns the subscription as decided (and, on
   * approval, the id of the active subscription it replaced), or its current state when it was not pending.
   */
  async decide (id: string, approve: boolean, reason?: string): Promise<{ subscription: Subscription, replaced?: string } | { notPending: SubscriptionState } | undefined> {
    const sub = await this.getSubscription(id)
    if (!sub) return undefined
    if (sub.state !== 'pending') return { notPending: sub.state }
    // the pending slot is released only by the decision that holds it: a second admin's decision finds it gone
    const released = await this.#redis.eval(RELEASE_PENDING, 1, this.#app(sub.application), `pending:${sub.product}`, id)
    if (released !== 1) return { notPending: (await this.getSubscription(id))?.state ?? 'rejected' }
    const now = Date.now()
    await this.#redis.zrem(this.#pending, id)
    const decided: Subscription = { ...sub, state: approve ? 'active' : 'rejected', decidedAt: now }
    if (reason) decided.reason = reason
    const record = { state: decided.state, decidedAt: String(now), ...(reason ? { reason } : {}) }
    if (!approve) {
      await this.#redis.hset(this.#sub(id), record)
      return { subscription: decided }
    }
    const replaced = await this.#activate(sub.application, sub.product, id, { ...record, createdAt: String(sub.createdAt) }, now)
    return { subscription: decided, replaced }
  }

  /**
   * Forgets the oldest decided subscriptions past `keep` (never an active or pending one), so that
   * switching plans back and forth cannot grow an application's history without bound.
   */
  async trimSubscriptions (app: string, keep: number): Promise<number> {
    const excess = await this.#redis.zcard(this.#subs(app)) - keep
    if (excess <= 0) return 0
    const current = await this.getApplication(app)
    if (!current) return 0
    const live = new Set([...Object.values(current.active), ...Object.values(current.pending)])
    // the oldest `excess` that are not live: among the oldest `excess + live` at most
    const oldest = await this.#redis.zrange(this.#subs(app), 0, excess + live.size - 1)
    const drop = oldest.filter(id => !live.has(id)).slice(0, excess)
    if (drop.length === 0) return 0
    checked(await this.#redis.multi().zrem(this.#subs(app), ...drop).del(...drop.map(id => this.#sub(id))).exec())
    return drop.length
  }

  // ---- keys ----------------------------------------------------------------------------

  async addKey (app: string, keyId: string, createdAt: number): Promise<void> {
    await this.#redis.zadd(this.#keys(app), createdAt, keyId)
  }

  async hasKey (app: string, keyId: string): Promise<boolean> {
    return (await this.#redis.zscore(this.#keys(app), keyId)) !== null
  }

  /** Newest first. */
  async keyIds (app: string): Promise<string[]> {
    return this.#redis.zrevrange(this.#keys(app), 0, -1)
  }

  async forgetKeys (app: string, keyIds: string[]): Promise<void> {
    if (keyIds.length === 0) return
    checked(await this.#redis.multi().zrem(this.#keys(app), ...keyIds).hdel(this.#keyUse, ...keyIds).exec())
  }

  async touchKey (keyId: string, at: number): Promise<void> {
    await this.#redis.hset(this.#keyUse, keyId, String(at))
  }

  /** ms of each key's last use, where known. */
  async lastUses (keyIds: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    if (keyIds.length === 0) return out
    const values = await this.#redis.hmget(this.#keyUse, ...keyIds)
    values.forEach((value, i) => { if (value) out.set(keyIds[i]!, Number(value)) })
    return out
  }
}

// KEYS[1] the application; ARGV[1] the `pending:<product>` field, ARGV[2] the subscription holding it
const RELEASE_PENDING = `
if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('hdel', KEYS[1], ARGV[1])
  return 1
end
return 0
`
