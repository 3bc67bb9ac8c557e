// Fastify-free: API keys in Redis. A key is shown once, at issue; Redis holds
// only the SHA-256 of its secret, with the owner, product, plan and expiry.
// Revocation deletes the record and publishes the key id so that every gateway
// node closes the key's live sockets (see session-watch.ts).
//
// SHA-256, not a slow password hash: the secret is 256 random bits, so there
// is nothing to brute-force, and an upgrade must not cost 100 ms of CPU.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Identity } from './identity.ts'
import { API_KEY_PATTERN } from './credentials.ts'
import { gatewayDefaults } from '@sluice/config/gateway'

export interface ApiKeyRecord {
  id: string
  owner: string
  product: string
  plan: string
  /** ms since the epoch */
  createdAt: number
  expiresAt: number
}

export interface IssueRequest {
  owner: string
  product: string
  plan: string
  expiresAt: number
}

export interface ListOptions {
  owner?: string
  /** at most MAX_LIST_LIMIT */
  limit?: number
  /** the `next` of the previous page */
  cursor?: string
}

// one page of a listing: enough for a console, small enough for one Redis pipeline
export const MAX_LIST_LIMIT = 1000
const DEFAULT_LIST_LIMIT = 100

// KEYS[1] the record; ARGV[1] a plan or '', ARGV[2] an earlier expiry (ms) or '', ARGV[3] ms the record outlives it
const UPDATE_SCRIPT = `
if redis.call('hexists', KEYS[1], 'hash') == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('hset', KEYS[1], 'plan', ARGV[1]) end
if ARGV[2] ~= '' then
  local at = tonumber(ARGV[2])
  if at < tonumber(redis.call('hget', KEYS[1], 'expiresAt')) then
    redis.call('hset', KEYS[1], 'expiresAt', ARGV[2])
    redis.call('pexpireat', KEYS[1], at + tonumber(ARGV[3]))
  end
end
return 1
`

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

export class ApiKeyStore {
  readonly #redis: Redis
  readonly #prefix: string

  constructor (redis: Redis, prefix = gatewayDefaults.auth.apiKeys.prefix) {
    this.#redis = redis
    this.#prefix = prefix
  }

  /** the pub/sub channel that carries revoked key ids to every node */
  get channel (): string {
    return `${this.#prefix}apikey:revoked`
  }

  #recordKey (id: string): string {
    return `${this.#prefix}apikey:${id}`
  }

  #index (owner?: string): string {
    return owner === undefined ? `${this.#prefix}apikeys` : `${this.#prefix}apikeys:owner:${owner}`
  }

  /** Issues a key; the returned `key` is the only copy of its secret. */
  async issue (request: IssueRequest): Promise<{ key: string, record: ApiKeyRecord }> {
    const id = randomBytes(8).toString('hex')
    const secret = randomBytes(32).toString('base64url')
    const record: ApiKeyRecord = { id, owner: request.owner, product: request.product, plan: request.plan, createdAt: Date.now(), expiresAt: request.expiresAt }
    const result = await this.#redis.multi()
      .hset(this.#recordKey(id), {
        hash: sha256(secret).toString('hex'),
        owner: record.owner,
        product: record.product,
        plan: record.plan,
        createdAt: String(record.createdAt),
        expiresAt: String(record.expiresAt)
      })
      // Redis forgets an expired key by itself; the index entries go lazily on listing
      .pexpireat(this.#recordKey(id), record.expiresAt)
      .zadd(this.#index(), record.createdAt, id)
      .zadd(this.#index(record.owner), record.createdAt, id)
      .exec()
    const failed = result?.find(([err]) => err)
    if (!result || failed) throw failed?.[0] ?? new Error('the Redis transaction was discarded')
    return { key: `sk_${id}_${secret}`, record }
  }

  /** The record of a presented key, or undefined when it is unknown, wrong, expired or revoked. */
  async verify (key: string): Promise<ApiKeyRecord | undefined> {
    const match = API_KEY_PATTERN.exec(key)
    if (!match) return undefined
    const record = await this.#read(match[1]!)
    if (!record) return undefined
    const stored = Buffer.from(record.hash, 'hex')
    const presented = sha256(match[2]!)
    if (stored.length !== presented.length || !timingSafeEqual(stored, presented)) return undefined
    if (record.expiresAt <= Date.now()) return undefined
    return record.record
  }

  async get (id: string): Promise<ApiKeyRecord | undefined> {
    if (!/^[0-9a-f]{16}$/.test(id)) return undefined
    return (await this.#read(id))?.record
  }

  async #read (id: string): Promise<{ record: ApiKeyRecord, hash: string, expiresAt: number } | undefined> {
    const fields = await this.#redis.hgetall(this.#recordKey(id))
    if (!fields.hash) return undefined
    const expiresAt = Number(fields.expiresAt)
    return {
      hash: fields.hash,
      expiresAt,
      record: { id, owner: fields.owner ?? '', product: fields.product ?? '', plan: fields.plan ?? '', createdAt: Number(fields.createdAt), expiresAt }
    }
  }

  /** Newest first; secrets and hashes are never listed. */
  async list (options: ListOptions = {}): Promise<{ keys: ApiKeyRecord[], next?: string }> {
    const limit = Math.min(Math.max(options.limit ?? DEFAULT_LIST_LIMIT, 1), MAX_LIST_LIMIT)
    const offset = options.cursor ? Math.max(0, Number.parseInt(options.cursor, 10) || 0) : 0
    const index = this.#index(options.owner)
    const ids = await this.#redis.zrevrange(index, offset, offset + limit - 1)
    if (ids.length === 0) return { keys: [] }
    const pipeline = this.#redis.pipeline()
    for (const id of ids) pipeline.hgetall(this.#recordKey(id))
    const replies = (await pipeline.exec()) ?? []
    const keys: ApiKeyRecord[] = []
    const gone: string[] = []
    replies.forEach(([err, fields], i) => {
      const id = ids[i]!
      const f = fields as Record<string, string> | null
      if (err || !f?.hash) {
        if (!err) gone.push(id)
        return
      }
      keys.push({ id, owner: f.owner ?? '', product: f.product ?? '', plan: f.plan ?? '', createdAt: Number(f.createdAt), expiresAt: Number(f.expiresAt) })
    })
    // expired or revoked elsewhere: drop them from the index now that they are seen
    if (gone.length > 0) await this.#redis.zrem(index, ...gone).catch(() => {})
    return { keys, next: ids.length === limit ? String(offset + limit) : undefined }
  }

  /**
   * Changes a live key's plan or moves its expiry earlier (plugins/apps: an approved plan, a rotation's
   * grace period); false when the key is gone. One script, so a key revoked meanwhile is not brought back
   * as a record without its hash. A later expiry is refused: a key never outlives what it was issued for.
   * `keepMs`: Redis keeps the record that long past the new expiry (verify() refuses it from the expiry on),
   * so that a revocation due at the expiry still finds it and tells every node.
   */
  async update (id: string, change: { plan?: string, expiresAt?: number, keepMs?: number }): Promise<boolean> {
    if (!/^[0-9a-f]{16}$/.test(id)) return false
    const expiry = change.expiresAt === undefined ? '' : String(change.expiresAt)
    const updated = await this.#redis.eval(UPDATE_SCRIPT, 1, this.#recordKey(id), change.plan ?? '', expiry, String(change.keepMs ?? 0))
    return updated === 1
  }

  /** Deletes the key and tells every node; false when there was no such key. */
  async revoke (id: string): Promise<boolean> {
    const record = await this.get(id)
    if (!record) return false
    await this.#redis.multi()
      .del(this.#recordKey(id))
      .zrem(this.#index(), id)
      .zrem(this.#index(record.owner), id)
      .publish(this.channel, id)
      .exec()
    return true
  }

  /** Which of these key ids still exist (the periodic re-check's one round trip). */
  async existing (ids: string[]): Promise<Set<string>> {
    const alive = new Set<string>()
    if (ids.length === 0) return alive
    const pipeline = this.#redis.pipeline()
    for (const id of ids) pipeline.exists(this.#recordKey(id))
    const replies = (await pipeline.exec()) ?? []
    replies.forEach(([err, count], i) => {
      // an error is not proof of revocation: keep the socket
      if (err || count === 1) alive.add(ids[i]!)
    })
    return alive
  }

  /**
   * Calls `onRevoked(id)` for every revocation published by any node. Uses its
   * own connection (a subscribed connection can run no other command); it
   * queues SUBSCRIBE until connected and resubscribes after a reconnect.
   */
  listen (onRevoked: (id: string) => void, onError?: (err: Error) => void): { close (): void } {
    const subscriber = this.#redis.duplicate({ enableOfflineQueue: true, autoResubscribe: true })
    subscriber.on('error', err => onError?.(err))
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel && /^[0-9a-f]{16}$/.test(message)) onRevoked(message)
    })
    subscriber.subscribe(this.channel).catch(err => onError?.(err as Error))
    return { close: () => subscriber.disconnect() }
  }
}

/** A verified key as an Identity: its attributes are the claims access rules match on. */
export function apiKeyIdentity (record: ApiKeyRecord): Identity {
  return {
    kind: 'api-key',
    subject: record.owner,
    claims: { sub: record.owner, owner: record.owner, product: record.product, plan: record.plan, keyId: record.id },
    keyId: record.id,
    expiresAt: record.expiresAt
  }
}
