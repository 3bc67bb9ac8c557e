// Fastify-free: usage aggregated in Redis, shared by every node.
//
//   <prefix>p:<period start ms>      hash: JSON [application, product, metric] → amount, the period's usage
//   <prefix>d:<YYYY-MM-DD>           hash: the same fields, the UTC day's usage (the admin's view of a day)
//   <prefix>a:<YYYY-MM-DD>:<app id>  hash: JSON [product, metric] → amount, one application's day (the developer's view)
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

const FLUSH_SCRIPT = `
local prefix = ARGV[1]
local period, day = ARGV[2], ARGV[3]
if redis.call('EXISTS', prefix .. 'sealed:' .. period) == 1 then
  period, day = ARGV[4], ARGV[5]
end
local pkey = prefix .. 'p:' .. period
local dkey = prefix .. 'd:' .. day
local n = tonumber(ARGV[8])
local i = 9
for _ = 1, n do
  local app, akey, fields = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local appDay = prefix .. 'a:' .. day .. ':' .. akey
  i = i + 3
  for _ = 1, fields do
    local product, metric, amount = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    redis.call('HINCRBY', pkey, cjson.encode({app, product, metric}), amount)
    redis.call('HINCRBY', dkey, cjson.encode({app, product, metric}), amount)
    redis.call('HINCRBY', appDay, cjson.encode({product, metric}), amount)
    i = i + 3
  end
  redis.call('EXPIRE', appDay, ARGV[7])
end
redis.call('EXPIRE', pkey, ARGV[6])
redis.call('EXPIRE', dkey, ARGV[7])
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
      const fields: Array<string | number> = []
      for (const line of appLines) {
        for (const [metric, amount] of Object.entries(line.amounts)) fields.push(line.product, metric, amount)
      }
      args.push(application, applicationKey(application), fields.length / 3, ...fields)
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
        addTo(totals, parsed[1], Number(value))
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
      line.amounts[metric] = (line.amounts[metric] ?? 0) + Number(value)
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
