// Fastify-free: the Redis store. One Lua script, registered once per client
// with ioredis `defineCommand` (as @fastify/rate-limit's RedisStore does),
// reads and writes every bucket of a decision atomically, on Redis' clock
// (TIME): a gateway node's own clock never enters the arithmetic, so a node
// whose clock is off gets no extra tokens. Every key it writes gets a TTL.
//
// Contract (the README has it with examples):
//   KEYS   the buckets, in the order of ARGV's bucket records
//   ARGV   'take', lines, then per line: want, min, buckets in the line,
//          then per bucket: kind (r | d | s), capacity, perSecond, ttlMs, node, held
//          -> { ok (1 | 0), retryAfterMs (-1: never; 0: unknown), index of
//             the limiting key (1-based, 0: none), granted per line... }
//             (ok with a line granted less than its want: the limiting key
//             and the wait for one more unit)
//   ARGV   'put', n, then per bucket: kind (r | d | D | s | S), capacity,
//          perSecond, ttlMs, node, amount   (S: set this node's slot count;
//          D: renew a lease, amount = what the node still holds of it)
//          -> 0
//   ARGV   'then', n, first, then (only inside a batch: first and then are
//          'take' argument arrays, n the number of first's keys; KEYS:
//          first's keys, then then's) -> { first's answer, then's answer
//          or 0 when first was refused and then was not decided }
//   ARGV   'batch', n, then per decision: its number of keys, and its
//          arguments ('take' or 'put' as above) as one JSON array; KEYS:
//          every decision's keys in turn
//          -> per decision, its answer as above, or { 'err', message } for
//             one that failed (it fails alone)
// A daily bucket's `node` is a delivery lease's id ('' for none), its `ttlMs`
// the lease record's lifetime, `held` what the node holds of that lease.
// The arithmetic is token-bucket.ts's; the in-process store runs that file.
import type { ClientContext, Redis, Result } from 'ioredis'
import { DAILY_LEASE_SHARE, NEVER, type Bucket } from './token-bucket.ts'
import type { Line, LimitStore, Put, TakeResult } from './store.ts'

export const LIMIT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local DAY = 86400000
local today = math.floor(now / DAY)
local dayEnd = (today + 1) * DAY

local LEASE_SHARE = ${DAILY_LEASE_SHARE}

-- 'count|expiresAt': a node's slot count, or a lease's tokens
local function slotOf (value)
  if not value then return 0, 0 end
  local count, exp = string.match(value, '^(-?%d+)|(%d+)$')
  if not count then return 0, 0 end
  return tonumber(count), tonumber(exp)
end

local function level (b)
  if b.kind == 'r' then
    local h = redis.call('HMGET', b.key, 't', 'ts')
    local tokens, ts = tonumber(h[1]), tonumber(h[2])
    if not tokens or not ts then return b.cap end
    if now > ts then tokens = tokens + (now - ts) * b.rate / 1000 end
    return math.min(b.cap, tokens)
  elseif b.kind == 'd' or b.kind == 'D' then
    -- fields: day, used, and per lease 'l:<id>' -> 'tokens|expiresAt', its tokens counted in used;
    -- an expired lease (its node died) is credited back before anything is decided
    local h = redis.call('HGETALL', b.key)
    local day, used, back, stale = nil, 0, 0, {}
    for i = 1, #h, 2 do
      local f = h[i]
      if f == 'day' then day = tonumber(h[i + 1])
      elseif f == 'used' then used = tonumber(h[i + 1]) or 0
      elseif string.sub(f, 1, 2) == 'l:' then
        local tokens, exp = slotOf(h[i + 1])
        if exp > now then
          if f == b.lease then b.mine = tokens end
        else
          back = back + tokens
          stale[#stale + 1] = f
        end
      end
    end
    if day ~= today then
      -- yesterday's leases were yesterday's quota
      for i = 1, #h, 2 do if string.sub(h[i], 1, 2) == 'l:' then redis.call('HDEL', b.key, h[i]) end end
      b.mine = nil
      return b.cap
    end
    if #stale > 0 then
      used = math.max(0, used - back)
      redis.call('HDEL', b.key, unpack(stale))
      redis.call('HSET', b.key, 'used', used)
    end
    return b.cap - used
  end
  local fields = redis.call('HGETALL', b.key)
  local held = 0
  for i = 1, #fields, 2 do
    local count, exp = slotOf(fields[i + 1])
    if exp > now then held = held + count else redis.call('HDEL', b.key, fields[i]) end
  end
  return b.cap - held
end

local function wait (b, lvl, need)
  if b.kind == 'r' then
    if need > b.cap or b.rate <= 0 then return -1 end
    return math.max(0, math.ceil((need - lvl) * 1000 / b.rate))
  elseif b.kind == 'd' then
    if need > b.cap then return -1 end
    return dayEnd - now
  end
  if need > b.cap then return -1 end
  return 0
end

local function setSlots (b, count)
  if count > 0 then
    redis.call('HSET', b.key, b.node, count .. '|' .. (now + b.ttl))
  else
    redis.call('HDEL', b.key, b.node)
  end
  -- the key lives as long as its longest-lived node count; never shortened by another node
  if redis.call('PTTL', b.key) < b.ttl then redis.call('PEXPIRE', b.key, b.ttl) end
end

-- a lease's record: what its node holds of it now (never more than the record had: a record only ever
-- holds tokens this quota counts as used) plus what it takes, with a new deadline; an expired or ended
-- record stays gone, its tokens were credited back already
local function keep (b, taken)
  local held = math.min(b.mine or 0, b.held) + taken
  if held > 0 then
    redis.call('HSET', b.key, b.lease, held .. '|' .. (now + b.ttl))
  elseif b.mine then
    redis.call('HDEL', b.key, b.lease)
  end
end

-- writes a bucket after 'taken' units left it (negative: given back)
local function store (b, lvl, taken)
  if b.kind == 'r' then
    if b.rate <= 0 then return end
    local tokens = math.min(b.cap, lvl - taken)
    redis.call('HSET', b.key, 't', tostring(tokens), 'ts', now)
    redis.call('PEXPIRE', b.key, math.ceil(math.max(0, b.cap - tokens) * 1000 / b.rate) + 1000)
  elseif b.kind == 'd' then
    redis.call('HSET', b.key, 'day', today, 'used', math.max(0, b.cap - lvl + taken))
    if b.lease and taken > 0 then keep(b, taken) end
    redis.call('PEXPIRE', b.key, dayEnd - now + 3600000)
  else
    local count, exp = slotOf(redis.call('HGET', b.key, b.node))
    if exp <= now then count = 0 end
    setSlots(b, math.max(0, count + taken))
  end
end

local function bucket (K, A, k, a)
  local b = { key = K[k], index = k, kind = A[a], cap = tonumber(A[a + 1]), rate = tonumber(A[a + 2]), ttl = tonumber(A[a + 3]), node = A[a + 4], held = tonumber(A[a + 5]) }
  if (b.kind == 'd' or b.kind == 'D') and b.node ~= '' then b.lease = 'l:' .. b.node end
  return b
end

-- one decision: K and A are its keys and arguments ('take', 'put' or 'then', as the contract above says)
local function run (K, A)
  if A[1] == 'then' then
    -- a connection and its lease's first batch: the second take only when the first was granted, on its own
    if type(A[3]) ~= 'table' or type(A[4]) ~= 'table' or A[3][1] ~= 'take' or A[4][1] ~= 'take' then
      error('then: two takes')
    end
    local n = tonumber(A[2])
    local first, second = {}, {}
    for i = 1, #K do
      if i <= n then first[i] = K[i] else second[i - n] = K[i] end
    end
    local answer = run(first, A[3])
    if answer[1] ~= 1 then return { answer, 0 } end
    return { answer, run(second, A[4]) }
  end
  if A[1] == 'put' then
    local a = 3
    for k = 1, tonumber(A[2]) do
      local b = bucket(K, A, k, a)
      local amount = b.held
      if b.kind == 'S' then
        setSlots(b, amount)
      elseif b.lease then
        local lvl = level(b)
        if b.kind == 'D' then
          -- a renewal: the record holds what the node says it still holds
          keep(b, 0)
        else
          -- the lease ends: its unused tokens go back, never more than its record held
          local back = math.min(b.mine or 0, amount)
          if b.mine then redis.call('HDEL', b.key, b.lease) end
          if back > 0 then store(b, lvl, -back) end
        end
      else
        store(b, level(b), -amount)
      end
      a = a + 6
    end
    return 0
  end

  local lines = {}
  local a = 3
  for l = 1, tonumber(A[2]) do
    lines[l] = { want = tonumber(A[a]), min = tonumber(A[a + 1]), n = tonumber(A[a + 2]), buckets = {} }
    a = a + 3
  end
  local k = 1
  for l = 1, #lines do
    for i = 1, lines[l].n do
      lines[l].buckets[i] = bucket(K, A, k, a)
      k = k + 1
      a = a + 6
    end
  end

  local ok, retry, limited = 1, 0, 0
  -- the bucket with the longest wait names the limit; -1 (never) is the longest
  local function consider (b, lvl, need)
    local w = wait(b, lvl, need)
    if limited == 0 or w == -1 or (retry ~= -1 and w > retry) then
      retry = w
      limited = b.index
    end
  end
  for l = 1, #lines do
    local line = lines[l]
    local grant = line.want
    for i = 1, line.n do
      local b = line.buckets[i]
      b.level = level(b)
      -- a lease takes a share of what the quota has left, and at least its last token
      b.avail = b.level
      if b.lease and b.level >= 1 then b.avail = math.max(1, math.floor(b.level / LEASE_SHARE)) end
      grant = math.min(grant, math.floor(b.avail))
    end
    line.grant = math.max(0, grant)
    if line.grant < line.min then
      ok = 0
      for i = 1, line.n do
        local b = line.buckets[i]
        if math.floor(b.avail) < line.min then consider(b, b.level, line.min) end
      end
    end
  end
  if ok == 1 then
    -- granted less than wanted (coalesced decisions: the ones left over are refused): which bucket, and when one more
    for l = 1, #lines do
      local line = lines[l]
      if line.grant < line.want then
        for i = 1, line.n do
          local b = line.buckets[i]
          if math.floor(b.avail) <= line.grant then consider(b, b.level - line.grant, 1) end
        end
      end
    end
  end

  local result = { ok, retry, limited }
  for l = 1, #lines do
    if ok == 1 then
      for i = 1, lines[l].n do store(lines[l].buckets[i], lines[l].buckets[i].level, lines[l].grant) end
      result[3 + l] = lines[l].grant
    else
      -- a refused lease still reports what its node holds: the record never credits back what was spent since
      for i = 1, lines[l].n do
        local b = lines[l].buckets[i]
        if b.lease then keep(b, 0) end
      end
      result[3 + l] = 0
    end
  end
  return result
end

if ARGV[1] ~= 'batch' then return run(KEYS, ARGV) end
-- many decisions in one call (RedisLimitStore sends a turn's decisions together): each is decided as if
-- it were its own call, in order, and answers in its place. A decision's arguments come as one JSON array
local out = {}
local k = 1
for d = 1, tonumber(ARGV[2]) do
  local nk = tonumber(ARGV[1 + 2 * d])
  local K = {}
  for i = 1, nk do K[i] = KEYS[k + i - 1] end
  -- a decision that fails (a key of another type) fails alone, as its own call would have
  local done, answer = pcall(function () return run(K, cjson.decode(ARGV[2 + 2 * d])) end)
  if done then out[d] = answer
  else out[d] = { 'err', type(answer) == 'table' and answer.err or tostring(answer) } end
  k = k + nk
end
return out
`

const COMMAND = 'sluiceLimit'

declare module 'ioredis' {
  interface RedisCommander<Context extends ClientContext = { type: 'default' }> {
    sluiceLimit (numberOfKeys: number, ...args: Array<string | number>): Result<Array<number> | number, Context>
  }
}

function kindOf (b: Bucket, absolute = false): string {
  if (b.kind === 'rate') return 'r'
  if (b.kind === 'daily') return absolute ? 'D' : 'd'
  return absolute ? 'S' : 's'
}

/**
 * A bucket's record, then `last` (take: a lease's held; put: the amount), appended to a decision's arguments.
 * Pushed one by one, not spread from an array of its own: in a burst of decisions (5,000 resumes, two each)
 * the iterators and arrays of the spread were a third of what a decision allocated before its answer.
 */
function pushBucket (args: Array<string | number>, b: Bucket, last: number, absolute = false): void {
  args.push(
    kindOf(b, absolute),
    b.capacity,
    b.kind === 'rate' ? b.perSecond : 0,
    b.kind === 'slots' ? b.ttlMs : b.kind === 'daily' ? b.lease?.ttlMs ?? 0 : 0,
    b.kind === 'slots' ? b.node : b.kind === 'daily' ? b.lease?.id ?? '' : '',
    last
  )
}

/** A take's keys, its buckets in the keys' order, and its arguments as the contract says. */
function takeArgs (lines: readonly Line[]): { keys: string[], buckets: Bucket[], args: Array<string | number> } {
  const keys: string[] = []
  const buckets: Bucket[] = []
  const args: Array<string | number> = ['take', lines.length]
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l]!
    args.push(line.want, line.min, line.buckets.length)
  }
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l]!
    for (let i = 0; i < line.buckets.length; i++) {
      const b = line.buckets[i]!
      keys.push(b.key)
      buckets.push(b)
      pushBucket(args, b, b.kind === 'daily' ? b.lease?.held ?? 0 : 0)
    }
  }
  return { keys, buckets, args }
}

function takeResult (reply: number[], buckets: Bucket[]): TakeResult {
  const index = Number(reply[2])
  const granted: number[] = []
  for (let i = 3; i < reply.length; i++) granted.push(Number(reply[i]))
  return { ok: reply[0] === 1, retryAfterMs: reply[1] === -1 ? NEVER : Number(reply[1]), limitedBy: index > 0 ? buckets[index - 1] : undefined, granted }
}

/** Registers the script on this client (once: ioredis keeps it across reconnects and reloads it after NOSCRIPT). */
export function defineLimitCommand (redis: Redis): void {
  if (typeof (redis as unknown as Record<string, unknown>)[COMMAND] === 'function') return
  redis.defineCommand(COMMAND, { lua: LIMIT_SCRIPT })
}

// A decision per script call cost the gateway more than the script cost Redis: at 5,000 clients resuming at
// once after a drain, 10,000 calls (a connection decision and a first delivery lease each) were 11 % of the
// node's CPU (bench/drain-resume.ts, profile), most of it in ioredis building, timing and parsing each
// command. So the decisions asked in a turn leave together, as one call ('batch'), once MAX_BATCH are
// queued or in the turn's check phase: each is still decided alone and atomically, in the order asked, on
// the one Redis every node shares. At most this many go in one call: with 32, two of three profiled drain runs of B
// (5,000 warm, load 1.4-2.9) had 1,486 and 1,761 decisions time out and fall back to local buckets (each
// waits for its whole call's Lua); with 8 (two runs) and with no batching (one), none. Redis spends 25-55 µs
// of Lua on a decision (INFO commandstats, load 10)
export const MAX_BATCH = 8

interface Queued {
  keys: string[]
  /** the decision's arguments, as the JSON text of one array */
  json: string
  resolve (reply: unknown): void
  reject (err: Error): void
}

export class RedisLimitStore implements LimitStore {
  readonly #redis: Redis
  readonly #atTurnEnd: (flush: () => void) => void
  #queue: Queued[] = []
  #scheduled = false
  #corked = 0
  /** script calls made (tests read it) */
  calls = 0

  /**
   * `atTurnEnd` runs a flush in this turn's check phase, with the turn's other Redis flushes in one
   * write (RateLimiter.atTurnEnd); without it, a flush of its own in the check phase.
   */
  constructor (redis: Redis, atTurnEnd: (flush: () => void) => void = flush => setImmediate(flush)) {
    this.#redis = redis
    this.#atTurnEnd = atTurnEnd
    defineLimitCommand(redis)
  }

  take (lines: readonly Line[]): Promise<TakeResult> {
    const { keys, buckets, args } = takeArgs(lines)
    return this.#call(keys, JSON.stringify(args)).then(reply => takeResult(reply as number[], buckets))
  }

  takeThen (first: readonly Line[], then: readonly Line[]): Promise<[TakeResult, TakeResult | undefined]> {
    const a = takeArgs(first)
    const b = takeArgs(then)
    return this.#call(a.keys.concat(b.keys), JSON.stringify(['then', a.keys.length, a.args, b.args])).then(answer => {
      const [one, two] = answer as [number[], number[] | number]
      return [takeResult(one, a.buckets), Array.isArray(two) ? takeResult(two, b.buckets) : undefined]
    })
  }

  async put (puts: readonly Put[]): Promise<void> {
    if (puts.length === 0) return
    const keys: string[] = []
    const args: Array<string | number> = ['put', puts.length]
    for (let i = 0; i < puts.length; i++) {
      const p = puts[i]!
      keys.push(p.bucket.key)
      pushBucket(args, p.bucket, p.amount, p.absolute)
    }
    await this.#call(keys, JSON.stringify(args))
  }

  /** Holds decisions back until uncork(): a caller about to ask many at once sends them as one call. */
  cork (): void {
    this.#corked++
  }

  uncork (): void {
    if (this.#corked > 0 && --this.#corked === 0) this.#send()
  }

  #call (keys: string[], json: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ keys, json, resolve, reject })
      if (this.#corked > 0) return
      if (this.#queue.length >= MAX_BATCH) this.#send()
      else if (!this.#scheduled) {
        // The rest waits for a full batch or this turn's check phase, with the turn's other Redis calls in
        // one write. In a burst of resumes each upgrade is a callback of its own, and Redis answers a call
        // before the node reads the next upgrade, so each session's first delivery lease was a call and a
        // write of its own when idle stores sent at once (5,568 calls for a drain of 5,000 on one node, their
        // writes alone 9 % of its busy main thread: bench/drain-resume.ts --profile). A lone decision waits
        // at most for the poll phase that asked it; a full batch leaves at once, so a poll phase busy with a
        // burst of upgrades does not hold its decisions back (waiting for the check phase with no bound had
        // 1,288 of 5,000 resumes time out to local buckets in one drain run at load 12).
        this.#scheduled = true
        this.#atTurnEnd(this.#sendQueued)
      }
    })
  }

  readonly #sendQueued = (): void => {
    this.#scheduled = false
    if (this.#corked === 0) this.#send()
  }

  /** Sends everything queued, MAX_BATCH decisions a call (the calls all leave now: none waits for another's answer). */
  #send (): void {
    const queued = this.#queue
    if (queued.length === 0) return
    this.#queue = []
    if (queued.length <= MAX_BATCH) this.#sendBatch(queued)
    else for (let i = 0; i < queued.length; i += MAX_BATCH) this.#sendBatch(queued.slice(i, i + MAX_BATCH))
  }

  #sendBatch (queue: Queued[]): void {
    this.calls++
    // a decision's arguments as one JSON array, not one Redis argument each: ioredis encodes every argument
    // of a command on its own, and a batch of 8 leases was ~220 of them. In a drain of 5,000 resumes that
    // encoding allocated 8 KB a call, and the script path ~130 of the 518 MiB gateway B allocated in the
    // burst (bench/drain-resume.ts, an allocation profile through the inspector)
    const keys: string[] = []
    const args: Array<string | number> = ['batch', queue.length]
    for (const q of queue) {
      for (const key of q.keys) keys.push(key)
      args.push(q.keys.length, q.json)
    }
    this.#redis.sluiceLimit(keys.length, ...keys, ...args).then(replies => {
      const answers = replies as unknown as unknown[]
      queue.forEach((q, i) => {
        const answer = answers[i]
        if (Array.isArray(answer) && answer[0] === 'err') q.reject(new Error(String(answer[1])))
        else q.resolve(answer)
      })
    }, (err: Error) => {
      for (const q of queue) q.reject(err)
    })
  }
}
