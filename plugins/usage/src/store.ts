// Fastify-free: usage aggregated in Redis, shared by every node.
//
//   <prefix>p:<period start ms>      hash: the period's usage. JSON [application, product, "counts"] →
//                                    "delivered:deliveredBytes:published:connectionMs", and
//                                    JSON [application, product, "refused:<code>"] → refusals
//   <prefix>d:<YYYY-MM-DD>           hash: the same fields, the UTC day's usage (the admin's view of a day)
//   <prefix>a:<YYYY-MM-DD>:<app id>  hash: JSON [product, "counts" | "refused:<code>"], one application's day
//                                    (the developer's view)
//   <prefix>periods                  zset: period starts with usage not yet emitted, by start
//   <prefix>sealed:<period start>    set once the period's events are being emitted: later flushes of it count
//                                    in the period open at the time of that flush instead (nothing lost, nothing twice)
//   <prefix>emit:<period start>      the node emitting the period's events (a lock that expires)
//
// A flush is one script call (atomic: a period is sealed either before or after it, never in between).
import type { Redis } from 'ioredis'
import type { UsageLine } from './meter.ts'

// A closed period waits this long in Redis for its events to be written to Kafka: a week of Kafka outage
// and a node still emits it when Kafka comes back; past that it is gone (and the log said why each time)
export const PERIOD_TTL_S = 8 * 24 * 3600
// A day's usage is kept 35 days: a month's invoice can be checked against it, with a few days of slack
export const DAY_TTL_S = 35 * 24 * 3600

// Per application and product, the four counts are one field, `delivered:bytes:published:connectionMs`
// (a read and a write, where a field each took four increments), in each of the three hashes; refusals, rare, a
// field per code. So a flush costs Redis 6 commands per application and product it names (measured in
// bench/fanout.ts: Redis commands per delivered message, metering on and off). EXPIRE only when a hash is new.
const FLUSH_SCRIPT = `
local prefix = ARGV[1]
local period, day = ARGV[2], ARGV[3]
if redis.call('EXISTS', prefix .. 'sealed:' .. period) == 1 then
  period, day = ARGV[4], ARGV[5]
end
local periodTtl, dayTtl = ARGV[6], ARGV[7]
local pkey = prefix .. 'p:' .. period
local dkey = prefix .. 'd:' .. day
local fresh = {}
local function add (key, field, d, b, p, c, ttl)
  local cur = redis.call('HGET', key, field)
  if cur then
    local d0, b0, p0, c0 = string.match(cur, '^(%d+):(%d+):(%d+):(%d+)$')
    if d0 then
      d, b, p, c = d + tonumber(d0), b + tonumber(b0), p + tonumber(p0), c + tonumber(c0)
    end
  elseif fresh[key] == nil then
    fresh[key] = ttl
  end
  redis.call('HSET', key, field, string.format('%d:%d:%d:%d', d, b, p, c))
end
local function refuse (key, field, n, ttl)
  if redis.call('HINCRBY', key, field, n) == n and fresh[key] == nil then fresh[key] = ttl end
end
local apps = tonumber(ARGV[8])
local i = 9
for _ = 1, apps do
  local app, akey, lines = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local appDay = prefix .. 'a:' .. day .. ':' .. akey
  i = i + 3
  for _ = 1, lines do
    local product = ARGV[i]
    local d, b, p, c = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    local refusals = tonumber(ARGV[i + 5])
    i = i + 6
    if d + b + p + c > 0 then
      local field = cjson.encode({app, product, 'counts'})
      add(pkey, field, d, b, p, c, periodTtl)
      add(dkey, field, d, b, p, c, dayTtl)
      add(appDay, cjson.encode({product, 'counts'}), d, b, p, c, dayTtl)
    end
    for _ = 1, refusals do
      local reason, n = ARGV[i], tonumber(ARGV[i + 1])
      i = i + 2
      refuse(pkey, cjson.encode({app, product, 'refused:' .. reason}), n, periodTtl)
      refuse(dkey, cjson.encode({app, product, 'refused:' .. reason}), n, dayTtl)
      refuse(appDay, cjson.encode({product, 'refused:' .. reason}), n, dayTtl)
    end
  end
end
for key, ttl in pairs(fresh) do redis.call('EXPIRE', key, ttl) end
redis.call('ZADD', prefix .. 'periods', period, period)
return period
`

const COMMAND = 'sluiceUsageFlush'

export interface Period {
  /** ms since the epoch */
  start: number
  end: number
}

export function periodOf (at: number, periodMs: number): Period {
  const start = Math.floor(at / periodMs) * periodMs
  return { start, end: start + periodMs }
}

export function dayOf (at: number): string {
  return new Date(at).toISOString().slice(0, 10)
}

export interface UsageTotals {
  delivered: number
  deliveredBytes: number
  published: number
  connectionMinutes: number
  refused: Record<string, number>
}

export function emptyTotals (): UsageTotals {
  return { delivered: 0, deliveredBytes: 0, published: 0, connectionMinutes: 0, refused: {} }
}

/** Adds one metric's amount (as stored: connection time in ms) to totals. */
export function addTo (totals: UsageTotals & { connectionMs?: number }, metric: string, amount: number): void {
  if (metric.startsWith('refused:')) {
    const reason = metric.slice('refused:'.length)
    totals.refused[reason] = (totals.refused[reason] ?? 0) + amount
  } else if (metric === 'connectionMs') {
    totals.connectionMs = (totals.connectionMs ?? 0) + amount
    // minutes to the millisecond's precision, as billing systems take them
    totals.connectionMinutes = Math.round(totals.connectionMs / 60) / 1000
  } else if (metric === 'delivered' || metric === 'deliveredBytes' || metric === 'published') {
    totals[metric] += amount
  }
}

/** The key's part naming an application: its id as it is (ids are short and printable), else a hex of its bytes. */
export function applicationKey (application: string): string {
  return /^[A-Za-z0-9_.:|-]{1,128}$/.test(application) ? application : Buffer.from(application).toString('hex').slice(0, 256)
}

const PACKED = ['delivered', 'deliveredBytes', 'published', 'connectionMs'] as const

/** A stored field into amounts: `counts` holds the four counts packed (`d:b:p:c`), `refused:<code>` a number. */
function addField (amounts: Record<string, number>, metric: string, value: string): void {
  if (metric === 'counts') {
    const parts = value.split(':').map(Number)
    if (parts.length !== PACKED.length || !parts.every(Number.isSafeInteger)) return
    PACKED.forEach((name, i) => { amounts[name] = (amounts[name] ?? 0) + parts[i]! })
  } else if (metric.startsWith('refused:')) {
    amounts[metric] = (amounts[metric] ?? 0) + Number(value)
  }
}

function parseField (field: string): unknown[] | undefined {
  try {
    const parsed: unknown = JSON.parse(field)
    return Array.isArray(parsed) ? parsed : undefined
  } catch {
    return undefined
  }
}

export class UsageStore {
  readonly #redis: Redis
  readonly prefix: string

  constructor (redis: Redis, prefix: string) {
    this.#redis = redis
    this.prefix = prefix
    if (typeof (redis as unknown as Record<string, unknown>)[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 0, lua: FLUSH_SCRIPT })
  }

  /**
   * Adds `lines` to `period` (and its day), or to `current` if `period` is sealed already
   * (its events are out: a late flush counts in the open period rather than being lost).
   */
  async flush (lines: UsageLine[], period: Period, current: Period): Promise<void> {
    if (lines.length === 0) return
    const args: Array<string | number> = [this.prefix, period.start, dayOf(period.start), current.start, dayOf(current.start), PERIOD_TTL_S, DAY_TTL_S]
    // lines grouped by application (the application's day hash is one key)
    const byApp = new Map<string, UsageLine[]>()
    for (const line of lines) {
      const list = byApp.get(line.application)
      if (list) list.push(line)
      else byApp.set(line.application, [line])
    }
    args.push(byApp.size)
    for (const [application, appLines] of byApp) {
      args.push(application, applicationKey(application), appLines.length)
      for (const { product, amounts } of appLines) {
        const refusals = Object.entries(amounts).filter(([metric]) => metric.startsWith('refused:'))
        args.push(product, amounts.delivered ?? 0, amounts.deliveredBytes ?? 0, amounts.published ?? 0, amounts.connectionMs ?? 0, refusals.length)
        for (const [metric, n] of refusals) args.push(metric.slice('refused:'.length), n)
      }
    }
    await (this.#redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[COMMAND]!(...args)
  }

  /** One period's usage by application and product. */
  async period (start: number): Promise<Map<string, { application: string, product: string, amounts: Record<string, number> }>> {
    return this.#lines(await this.#redis.hgetall(`${this.prefix}p:${start}`))
  }

  /** A UTC day's usage by application and product (the admin's view). */
  async day (date: string): Promise<Array<{ application: string, product: string } & UsageTotals>> {
    const lines = this.#lines(await this.#redis.hgetall(`${this.prefix}d:${date}`))
    return [...lines.values()].map(line => {
      const totals = emptyTotals()
      for (const [metric, amount] of Object.entries(line.amounts)) addTo(totals, metric, amount)
      return { application: line.application, product: line.product, ...totals }
    }).sort((a, b) => b.delivered - a.delivered || a.application.localeCompare(b.application))
  }

  /** An application's usage on each of these UTC days, summed over its products. */
  async applicationDays (application: string, dates: string[]): Promise<Array<{ date: string } & UsageTotals>> {
    const pipeline = this.#redis.pipeline()
    for (const date of dates) pipeline.hgetall(`${this.prefix}a:${date}:${applicationKey(application)}`)
    const results = await pipeline.exec()
    return dates.map((date, i) => {
      const totals = emptyTotals()
      const [err, fields] = results?.[i] ?? [null, {}]
      if (err) throw err
      for (const [field, value] of Object.entries(fields as Record<string, string>)) {
        const parsed = parseField(field)
        if (!parsed || typeof parsed[1] !== 'string') continue
        const amounts: Record<string, number> = {}
        addField(amounts, parsed[1], value)
        for (const [metric, amount] of Object.entries(amounts)) addTo(totals, metric, amount)
      }
      const { connectionMs: _ms, ...rest } = totals as UsageTotals & { connectionMs?: number }
      return { date, ...rest }
    })
  }

  #lines (fields: Record<string, string>): Map<string, { application: string, product: string, amounts: Record<string, number> }> {
    const lines = new Map<string, { application: string, product: string, amounts: Record<string, number> }>()
    for (const [field, value] of Object.entries(fields)) {
      const parsed = parseField(field)
      if (!parsed || parsed.length !== 3 || !parsed.every(p => typeof p === 'string')) continue
      const [application, product, metric] = parsed as [string, string, string]
      const key = JSON.stringify([application, product])
      let line = lines.get(key)
      if (!line) {
        line = { application, product, amounts: {} }
        lines.set(key, line)
      }
      addField(line.amounts, metric, value)
    }
    return lines
  }

  /** Closed periods with usage not yet emitted whose start is at most `before`, oldest first. */
  async duePeriods (before: number, limit: number): Promise<number[]> {
    return (await this.#redis.zrangebyscore(`${this.prefix}periods`, '-inf', before, 'LIMIT', 0, limit)).map(Number)
  }

  /**
   * Takes the right to emit a period (for `lockMs`) and seals it: from now on no flush adds to it.
   * false: another node holds it.
   */
  async claim (start: number, node: string, lockMs: number): Promise<boolean> {
    const got = await this.#redis.set(`${this.prefix}emit:${start}`, node, 'PX', lockMs, 'NX')
    if (got !== 'OK') return false
    await this.#redis.set(`${this.prefix}sealed:${start}`, node, 'EX', PERIOD_TTL_S)
    return true
  }

  /** The period's events are acknowledged by Kafka: it is done. */
  async emitted (start: number): Promise<void> {
    await this.#redis.multi().zrem(`${this.prefix}periods`, String(start)).del(`${this.prefix}emit:${start}`).exec()
  }

  /** Lets another node (or a later tick) try the period again. */
  async unclaim (start: number, node: string): Promise<void> {
    const key = `${this.prefix}emit:${start}`
    if (await this.#redis.get(key) === node) await this.#redis.del(key)
  }
}
