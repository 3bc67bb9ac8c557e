// Fastify-free: what the developer and admin routes do, on the application
// store (store.ts), auth's API keys and the policy in force. Every method that
// takes a developer answers "not found" for an application that is not theirs,
// exactly as for one that does not exist: ids of others are never confirmed.
import type { ApiKeyRecord } from '@sluice/auth'
import type { PolicyDocument } from '@sluice/policy'
import type { Application, ApplicationStore, Subscription } from './store.ts'
import {
  AppsAlreadySubscribedError, AppsNoActiveSubscriptionError, AppsNotFoundError, AppsNotPendingError, AppsProductRequiredError,
  AppsSubscriptionPendingError, AppsTooManyApplicationsError, AppsTooManyKeysError, AppsUnknownPlanError, AppsUnknownProductError
} from './errors.ts'

// A developer's applications are their projects and environments, read in one listing; 50 bounds
// what one sign-in can make Redis hold (each application a few hashes) without being met in practice.
export const MAX_APPLICATIONS = 50
// live keys per application: a rotation holds two at once, and a few environments may each have their own
export const MAX_KEYS = 10
// subscriptions an application remembers: its active and pending ones and the latest decisions, enough for
// a console's history; older replaced and rejected ones are forgotten, so that switching plans back and
// forth (1200 requests a minute per address pass the HTTP limit) cannot grow Redis without bound
export const MAX_SUBSCRIPTIONS = 100
// A rotation's grace period: up to a week, one release cycle of a fleet of clients to roll out the new
// key; a leaked old key lives no longer than that. 0 revokes the old key at once.
export const MAX_GRACE_S = 7 * 24 * 3600
// Redis keeps a rotated key's record this long past its grace period (verify() refuses it from the end of
// the grace on), so that the revocation due then still finds it and tells every node through pub/sub;
// the record's own TTL and auth's re-check (4 s) close the sockets anyway if this node is gone by then.
export const REVOKE_KEEP_MS = 10_000
// setTimeout's ceiling (2^31 - 1 ms, 24.8 days): a week's grace is far below it
const MAX_TIMER_MS = 2 ** 31 - 1

/** What the core needs of @sluice/auth's ApiKeyStore. */
export interface KeyStore {
  issue (request: { owner: string, product: string, plan: string, expiresAt: number }): Promise<{ key: string, record: ApiKeyRecord }>
  get (id: string): Promise<ApiKeyRecord | undefined>
  update (id: string, change: { plan?: string, expiresAt?: number, keepMs?: number }): Promise<boolean>
}

export interface ApplicationsOptions {
  store: ApplicationStore
  keys: KeyStore
  /** deletes a key and closes its sockets on every node with 4001 (auth's revokeApiKey) */
  revokeKey (id: string): Promise<boolean>
  policy (): PolicyDocument | undefined
  /** these keys' plan changed (an approval, an automatic plan): their open sockets are to take it */
  onPlanChanged? (keyIds: string[], plan: string): void
  onError? (err: Error, what: string): void
}

export interface ApplicationView extends Application {
  subscriptions: Subscription[]
}

export interface KeyView extends ApiKeyRecord {
  lastUsedAt?: number
}

export class Applications {
  readonly #options: ApplicationsOptions
  readonly #rotations = new Map<string, NodeJS.Timeout>()

  constructor (options: ApplicationsOptions) {
    this.#options = options
  }

  get #store (): ApplicationStore {
    return this.#options.store
  }

  // ---- applications --------------------------------------------------------------------

  async create (developer: string, fields: { name: string, description?: string }): Promise<ApplicationView> {
    if (await this.#store.countApplications(developer) >= MAX_APPLICATIONS) throw new AppsTooManyApplicationsError(MAX_APPLICATIONS)
    return { ...await this.#store.createApplication(developer, fields), subscriptions: [] }
  }

  async list (developer: string): Promise<ApplicationView[]> {
    const apps = await this.#store.listApplications(developer)
    return Promise.all(apps.map(async app => ({ ...app, subscriptions: await this.#store.listSubscriptions(app.id) })))
  }

  async #owned (developer: string, id: string): Promise<Application> {
    const app = await this.#store.ownedApplication(developer, id)
    if (!app) throw new AppsNotFoundError(`application ${id}`)
    return app
  }

  async get (developer: string, id: string): Promise<ApplicationView> {
    const app = await this.#owned(developer, id)
    return { ...app, subscriptions: await this.#store.listSubscriptions(id) }
  }

  /** Deletes the application and revokes its keys: their sockets close with 4001 on every node. */
  async delete (developer: string, id: string): Promise<void> {
    const app = await this.#owned(developer, id)
    // the keys first: a failure half-way leaves an application to delete again, never a live key without one
    for (const keyId of await this.#store.keyIds(id)) {
      this.#cancelRotation(keyId)
      await this.#options.revokeKey(keyId)
    }
    await this.#store.deleteApplication(app)
  }

  // ---- subscriptions -------------------------------------------------------------------

  #offered (product: string, plan: string): { approval: 'auto' | 'manual' } {
    const policy = this.#options.policy()
    // own keys only: "constructor" is a valid name and must not reach Object.prototype
    const offer = policy && Object.hasOwn(policy.products, product) ? policy.products[product] : undefined
    if (!offer) throw new AppsUnknownProductError(product)
    if (!offer.plans.includes(plan) || !Object.hasOwn(policy!.plans, plan)) throw new AppsUnknownPlanError(product, plan)
    return { approval: policy!.plans[plan]!.approval ?? 'auto' }
  }

  /** A plan of `auto` approval is active at once (and replaces the product's active plan); `manual` waits for an admin. */
  async subscribe (developer: string, id: string, product: string, plan: string): Promise<Subscription> {
    const app = await this.#owned(developer, id)
    const { approval } = this.#offered(product, plan)
    const active = app.active[product] ? await this.#store.getSubscription(app.active[product]) : undefined
    if (active?.plan === plan) throw new AppsAlreadySubscribedError(plan, product)
    // one request waits per product; an automatic plan may still be taken meanwhile
    if (approval === 'manual' && app.pending[product]) throw new AppsSubscriptionPendingError(product)
    const made = await this.#store.subscribe(id, product, plan, approval)
    if (made === 'pending') throw new AppsSubscriptionPendingError(product)
    await this.#store.trimSubscriptions(id, MAX_SUBSCRIPTIONS)
    if (made.subscription.state === 'active') await this.#applyPlan(id, product, plan)
    return made.subscription
  }

  /** The application's keys for `product` are limited by `plan`: from their next connection, and their open sockets are told. */
  async #applyPlan (app: string, product: string, plan: string): Promise<void> {
    const changed: string[] = []
    for (const keyId of await this.#store.keyIds(app)) {
      const record = await this.#options.keys.get(keyId)
      if (record?.product === product && record.plan !== plan && await this.#options.keys.update(keyId, { plan })) changed.push(keyId)
    }
    if (changed.length > 0) this.#options.onPlanChanged?.(changed, plan)
  }

  // ---- keys ----------------------------------------------------------------------------

  /** The active subscription a key of `product` (or of the only subscribed product) is issued under. */
  async #activeSubscription (app: Application, product: string | undefined): Promise<Subscription> {
    const products = Object.keys(app.active)
    const chosen = product ?? (products.length === 1 ? products[0] : undefined)
    if (chosen === undefined) {
      if (products.length === 0) throw new AppsNoActiveSubscriptionError('')
      throw new AppsProductRequiredError()
    }
    const subId = app.active[chosen]
    const sub = subId ? await this.#store.getSubscription(subId) : undefined
    if (!sub) throw new AppsNoActiveSubscriptionError(` to product "${chosen}"`)
    // the policy may have dropped the product or plan since: a key for it would open nothing
    this.#offered(sub.product, sub.plan)
    return sub
  }

  /** Live keys of the application, newest first; ids of keys revoked or expired elsewhere are forgotten. */
  async #liveKeys (app: string): Promise<ApiKeyRecord[]> {
    const ids = await this.#store.keyIds(app)
    const records = await Promise.all(ids.map(id => this.#options.keys.get(id)))
    const gone = ids.filter((_, i) => !records[i])
    if (gone.length > 0) await this.#store.forgetKeys(app, gone)
    return records.filter((r): r is ApiKeyRecord => r !== undefined)
  }

  /** Issues a key; the returned `key` is the only copy of its secret. */
  async issueKey (developer: string, id: string, request: { product?: string, ttlSeconds: number }): Promise<{ key: string, record: ApiKeyRecord }> {
    const app = await this.#owned(developer, id)
    const sub = await this.#activeSubscription(app, request.product)
    if ((await this.#liveKeys(id)).length >= MAX_KEYS) throw new AppsTooManyKeysError(MAX_KEYS)
    return this.#issue(app.id, sub, request.ttlSeconds)
  }

  async #issue (app: string, sub: Subscription, ttlSeconds: number): Promise<{ key: string, record: ApiKeyRecord }> {
    // the key's owner is the application: its limits are the application's, whoever holds the key
    const issued = await this.#options.keys.issue({ owner: app, product: sub.product, plan: sub.plan, expiresAt: Date.now() + ttlSeconds * 1000 })
    await this.#store.addKey(app, issued.record.id, issued.record.createdAt)
    return issued
  }

  async listKeys (developer: string, id: string): Promise<KeyView[]> {
    await this.#owned(developer, id)
    const keys = await this.#liveKeys(id)
    const uses = await this.#store.lastUses(keys.map(k => k.id))
    return keys.map(k => uses.has(k.id) ? { ...k, lastUsedAt: uses.get(k.id)! } : k)
  }

  async #ownedKey (developer: string, id: string, keyId: string): Promise<ApiKeyRecord> {
    await this.#owned(developer, id)
    const record = await this.#store.hasKey(id, keyId) ? await this.#options.keys.get(keyId) : undefined
    if (!record) throw new AppsNotFoundError(`key ${keyId}`)
    return record
  }

  /**
   * A new key under the same product (and the plan its subscription has now); the old one keeps
   * working for `graceSeconds`, then is revoked: its sockets close with 4001 on every node.
   */
  async rotateKey (developer: string, id: string, keyId: string, request: { graceSeconds: number, ttlSeconds: number }): Promise<{ key: string, record: ApiKeyRecord, previous: { id: string, expiresAt: number } }> {
    const old = await this.#ownedKey(developer, id, keyId)
    const app = await this.#owned(developer, id)
    const sub = await this.#activeSubscription(app, old.product)
    const issued = await this.#issue(id, sub, request.ttlSeconds)
    const graceMs = request.graceSeconds * 1000
    const endsAt = Math.min(old.expiresAt, Date.now() + graceMs)
    if (graceMs === 0) await this.#revoke(keyId)
    else {
      await this.#options.keys.update(keyId, { expiresAt: endsAt, keepMs: REVOKE_KEEP_MS })
      this.#scheduleRevocation(keyId, endsAt)
    }
    return { ...issued, previous: { id: keyId, expiresAt: endsAt } }
  }

  #scheduleRevocation (keyId: string, at: number): void {
    this.#cancelRotation(keyId)
    const timer = setTimeout(() => {
      this.#rotations.delete(keyId)
      this.#revoke(keyId).catch(err => this.#options.onError?.(err as Error, 'revoking a rotated key'))
    }, Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS))
    // a gateway may stop meanwhile: then the record's TTL and auth's re-check close the sockets
    timer.unref()
    this.#rotations.set(keyId, timer)
  }

  #cancelRotation (keyId: string): void {
    clearTimeout(this.#rotations.get(keyId))
    this.#rotations.delete(keyId)
  }

  async #revoke (keyId: string): Promise<boolean> {
    return this.#options.revokeKey(keyId)
  }

  async revokeKey (developer: string, id: string, keyId: string): Promise<void> {
    await this.#ownedKey(developer, id, keyId)
    this.#cancelRotation(keyId)
    await this.#revoke(keyId)
    await this.#store.forgetKeys(id, [keyId])
  }

  /** Notes a key's last use (the plugin calls it at most once a minute per key and node). */
  async touchKey (keyId: string, at: number): Promise<void> {
    await this.#store.touchKey(keyId, at)
  }

  // ---- the admin's side ----------------------------------------------------------------

  async pending (limit: number): Promise<Subscription[]> {
    return this.#store.pendingSubscriptions(limit)
  }

  /** Approves or rejects a pending subscription; an approved plan is what the application's keys of that product get. */
  async decide (subscription: string, approve: boolean, reason?: string): Promise<Subscription> {
    if (approve) {
      // the policy may have dropped the plan since it was asked for: approving it would give keys that open nothing
      const asked = await this.#store.getSubscription(subscription)
      if (asked?.state === 'pending') this.#offered(asked.product, asked.plan)
    }
    const decided = await this.#store.decide(subscription, approve, reason)
    if (!decided) throw new AppsNotFoundError(`subscription ${subscription}`)
    if ('notPending' in decided) throw new AppsNotPendingError(subscription, decided.notPending)
    const sub = decided.subscription
    if (approve) await this.#applyPlan(sub.application, sub.product, sub.plan)
    return sub
  }

  async all (limit: number, offset: number): Promise<{ applications: ApplicationView[], next?: string }> {
    const page = await this.#store.allApplications(limit, offset)
    const applications = await Promise.all(page.applications.map(async app => ({ ...app, subscriptions: await this.#store.listSubscriptions(app.id) })))
    return { applications, next: page.next }
  }

  /** Forgets the timers of rotations in progress (the records' TTLs finish them). */
  close (): void {
    for (const timer of this.#rotations.values()) clearTimeout(timer)
    this.#rotations.clear()
  }
}
