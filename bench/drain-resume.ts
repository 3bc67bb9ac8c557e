// A node drain (issue 14, target: 5,000 clients all live again within 2 s): 5,000 WebSocket
// clients subscribed on gateway A to a topic (3 partitions) with a steady producer; A is killed
// (SIGKILL: every socket drops at the same instant, as the last step of a drain does) and every
// client reconnects at once to gateway B with `from=<cursor>`, the cursor it kept from the
// `subscribed` frame and the messages it got. A client is live when it has B's `subscribed` frame
// and every record acked before the drop on every partition; every message is checked on arrival
// against the next offset of its partition (a gap or a duplicate is counted, never skipped over).
// Two rounds: B cold (no socket on B reads the topic: the gaps come from Kafka) and then B warm
// (one socket subscribed on the next node long before the drop: the gaps come from its window).
// Each gateway is, by default, the gateway as shipped (`--gateway shipped`): its own process
// (apps/gateway/src/server.ts, a YAML config), JWT auth (each client a subject with a Bearer token),
// bench/drain-resume-policy, Redis-backed limits (REDIS_URL) and the default queues and listen backlog;
// `--gateway harness` is test/harness/stream.ts's streamApp (hub, /v1/stream, dev identity, no auth,
// policy or rate limits). The clients are `ws` sockets in two more processes.
// A `bare` round (`--rounds cold,warm,bare`) is the physical limit on the same machine in the same
// run: the last B is dropped in turn and the clients resume to a bare `ws` server (no auth, policy,
// limits or Kafka) that answers each with a `subscribed` frame and the same frames, byte for byte, as
// the gateway would send for its gap (the hub's native frames of the same records), in one write.
//
//   REDIS_URL=redis://127.0.0.1:6379 bash deploy/local/node.sh bench/drain-resume.ts --brokers 127.0.0.1:19092
//     [--clients 5000] [--rate 20] [--rounds cold,warm[,bare]] [--gateway shipped|harness] [--backlog N] [--listen-sockets N] [--profile DIR]
//     [--drop kill|drain] [--addresses N] [--alloc-profile DIR] [--gateway-nice N] [--warm-up N] [--baseline-tree DIR]
//
// --baseline-tree DIR runs every shipped gateway (A and each B) from another checkout (an earlier
// commit's `git worktree add`, with its own npm ci), as that checkout's npm start runs it, with the same
// YAML config less the sections it did not know yet (usage): the same-machine figures of the tree an
// issue measured its "today" on. The bare round stays this tree's.
//
// --warm-up N: before each round's drop, N other clients subscribe on B, resume and close (warmUpNode):
// B is then a node that has served connections, as the running nodes a drain moves clients to have, where
// by default it is a process started for the round that has served one socket at most. V8 optimizes a
// function after some thousands of calls, so a fresh B runs much of the burst on unoptimized code.
//
// --gateway-nice N runs every gateway process at nice N (a negative N needs root): how much of a round is
// the two cores' sharing between B and the 5,000 clients, which a production node does not share with
// its clients. Not the headline figure: the clients still share the cores with Redis and Kafka, and B
// then takes the CPU first whenever it can run (bench/README.md, the drain's round 11).
//
// --alloc-profile DIR samples what each shipped B allocates from the drop to all live (V8's sampling heap
// profiler through B's inspector, objects the GC already collected included: the churn the GC pays for),
// writes DIR/<round>.heapprofile (DevTools opens it) and prints the sites that allocated most.
//
// --addresses N spreads the clients over N source addresses on loopback (127.1.x.y), as clients on the
// internet come from many: the gateway's per-address upgrade limit then counts N keys, not one.
// --drop drain stops A with SIGTERM instead, as an orchestrator drains a node: the shipped drain closes
// the sockets with 1001 spread over server.drainMs (10 s by default), and each client resumes when its
// own socket closes. Each round then also prints each client's time from its own close to live.
//
// The reads are group-less (packages/kafka/src/reader.ts): the broker's group settings
// (group.initial.rebalance.delay.ms) do not touch any of this.
import { fork, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { Server } from 'node:net'
import { cpus, loadavg, setPriority, tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'
import { KafkaClient, type ConsumedRecord } from '@sluice/kafka'
import { nativeFormat } from '@sluice/hub'
import { freePort } from '@sluice/stack'
import { gatewayDefaults } from '@sluice/config/gateway'
import { allowAll, streamApp } from '../test/harness/stream.ts'
import { SHIPPED_V8_FLAGS, describeTree, spawnShipped, spawnTreeGateway } from './shipped-node.ts'

const PARTITIONS = 3
// a client process holds half the sockets: 2,500 sockets and their frames in one event loop
const CLIENT_PROCS = 2
// the bench gives up on a client that is not live this long after the drop
const LIVE_TIMEOUT_MS = 30_000
// after the last client is live, every socket keeps checking its offsets this long
const AFTER_MS = 2_000

type Msg = Record<string, unknown> & { type: string }

// The gateway as shipped: its own entry, a YAML config, JWT auth, bench/drain-resume-policy, Redis limits
const GATEWAY_ENTRY = join(import.meta.dirname, '..', 'apps', 'gateway', 'src', 'server.ts')
const POLICY_DIR = join(import.meta.dirname, 'drain-resume-policy')
const JWT_SECRET = 'drain-resume-bench-hs256-secret-0123456789'
function jwt (sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'bench', aud: 'sluice', sub, exp: Math.floor(Date.now() / 1000) + 6 * 3600 })}`
  return `${body}.${createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`
}

/**
 * CPU (µs), RSS and write syscalls of another process of this machine, from /proc (Linux): the
 * shipped gateway's own. The count of writes (syscw: write, writev, sendmsg and the like) does not
 * move with the machine's load as CPU does.
 */
function procUsage (pid: number): { us: number, sysUs: number, rss: number, writes: number } {
  // fields after the command name (which may hold spaces): utime and stime are the 14th and 15th, in clock ticks
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // 100 ticks a second on Linux (getconf CLK_TCK): 10 ms resolution, against rounds of seconds
  const tickUs = 10_000
  const rssPages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1])
  const writes = Number(/^syscw: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN)
  return { us: (Number(fields[11]) + Number(fields[12])) * tickUs, sysUs: Number(fields[12]) * tickUs, rss: rssPages * 4096, writes }
}

/**
 * The machine's CPU time, busy and idle, in clock ticks (/proc/stat's first line): how much of its cores
 * the clients, the gateway, Redis and Kafka left idle between two reads.
 */
function machineTicks (): { busy: number, idle: number } {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return { busy: user! + nice! + system! + irq! + softirq! + steal!, idle: idle! + iowait! }
}

const now = () => performance.timeOrigin + performance.now()

function ask (child: ChildProcess, msg: Msg, reply: string, timeoutMs = 120_000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${reply} within ${timeoutMs} ms`)), timeoutMs)
    const on = (m: Msg) => {
      if (m.type !== reply) return
      clearTimeout(timer)
      child.off('message', on)
      resolve(m)
    }
    child.on('message', on)
    child.send(msg)
  })
}

// ---- child: a gateway -----------------------------------------------------------------

interface HeapNode { callFrame: { functionName: string, url: string, lineNumber: number }, selfSize: number, children: HeapNode[] }

/** V8's sampling heap profiler on another process, through its inspector (collected objects included). */
function allocationSampler (url: string | undefined): { start (): Promise<void>, stop (): Promise<{ head: HeapNode }> } {
  if (!url) throw new Error('--alloc-profile: no inspector URL on the gateway\'s stderr')
  const ws = new WebSocket(url)
  const opened = new Promise(resolve => ws.once('open', resolve))
  let id = 0
  const waiting = new Map<number, (result: Record<string, unknown>) => void>()
  ws.on('message', data => {
    const msg = JSON.parse(String(data)) as { id?: number, result?: Record<string, unknown> }
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result ?? {})
  })
  const call = async (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
    await opened
    return new Promise(resolve => { waiting.set(++id, resolve); ws.send(JSON.stringify({ id, method, params })) })
  }
  return {
    async start () {
      await call('HeapProfiler.enable')
      // a sample every 8 KiB allocated on average, and keep those the GC already collected
      await call('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    },
    async stop () {
      const { profile } = await call('HeapProfiler.stopSampling') as { profile: { head: HeapNode } }
      ws.close()
      return profile
    }
  }
}

/** Bytes a profile sampled, and the sites (function, file, line) that allocated most themselves. */
function allocationTop (profile: { head: HeapNode }, n = 12): { total: number, top: Array<[string, number]> } {
  const sites = new Map<string, number>()
  let total = 0
  const walk = (node: HeapNode) => {
    const f = node.callFrame
    const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(plugins|packages|apps)\//, '$1/')}:${f.lineNumber + 1}`
    total += node.selfSize
    sites.set(site, (sites.get(site) ?? 0) + node.selfSize)
    for (const child of node.children) walk(child)
  }
  walk(profile.head)
  return { total, top: [...sites].sort((a, b) => b[1] - a[1]).slice(0, n) }
}

async function shippedGatewayChild (brokers: string[], nodeId: string, backlog: number, sockets: number, profileDir: string, upgradeMax: number, run: string, allocDir: string, baselineTree: string): Promise<void> {
  const redisUrl = process.env.REDIS_URL
  if (!redisUrl) throw new Error('--gateway shipped needs REDIS_URL (its connection limits live in Redis)')
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-drain-'))
  const file = join(dir, 'gateway.yaml')
  const port = await freePort()
  // JSON is YAML: the file an operator would write. Not defaults: the per-address upgrade limit when the
  // clients of one address connect more often than its default allows (upgradeMax > 0: one address, or few),
  // and the listen backlog and listening sockets when --backlog and --listen-sockets say so
  writeFileSync(file, JSON.stringify({
    server: { host: '127.0.0.1', port, ...(backlog > 0 ? { listenBacklog: backlog } : {}), ...(sockets > 0 ? { listenSockets: sockets } : {}) },
    log: { level: 'warn' },
    kafka: { brokers },
    redis: { url: redisUrl },
    policy: { dir: POLICY_DIR, watch: false },
    auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'bench', algorithms: ['HS256'], secret: JWT_SECRET }] } },
    stream: { nodeId },
    // the run's own keys, shared by its gateways: counts of an earlier run (the same addresses within the
    // minute) do not count against this one
    rateLimit: { prefix: `sluice:drain:${run}:`, ...(upgradeMax > 0 ? { http: { upgrade: { max: upgradeMax } } } : {}) },
    // the usage aggregates too (one hash per client's subject, kept 35 days): the run deletes them at its end
    // (a baseline tree from before usage metering would refuse the section)
    ...(baselineTree ? {} : { usage: { prefix: `sluice:drain:${run}:usage:` } })
  }, null, 2))
  // --profile: V8 writes each gateway's CPU profile when it exits (the last B is stopped with SIGTERM for it)
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${nodeId}.cpuprofile`] : []
  // as `npm start` and the image run it: on jemalloc, the shipped V8 flag (docs/performance.md, "Memory"), no IPC, the environment cleared
  // --alloc-profile: B's inspector on a port of the kernel's choosing (its URL is on stderr), for the sampler below
  const inspect = allocDir && !nodeId.startsWith('a-') ? ['--inspect=127.0.0.1:0'] : []
  const options = { env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] } satisfies SpawnOptions
  const server = baselineTree
    ? spawnTreeGateway(baselineTree, [...profile, ...inspect], ['--config', file], options)
    : spawnShipped([...SHIPPED_V8_FLAGS, ...profile, ...inspect, GATEWAY_ENTRY, '--config', file], options)
  let log = ''
  const keep = (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4000) }
  server.stdout!.on('data', keep)
  server.stderr!.on('data', keep)
  // the orchestrator kills the server itself (the drop); this child goes with it
  server.once('exit', () => process.exit(0))
  process.once('disconnect', () => server.kill('SIGKILL'))
  const deadline = Date.now() + 60_000
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined)
    if (res?.status === 200) break
    if (Date.now() > deadline) throw new Error(`gateway ${nodeId} is not ready after 60 s: ${log}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const sampler = inspect.length > 0 ? allocationSampler(/ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(log)?.[0]) : undefined
  process.on('message', (m: Msg) => {
    if (m.type === 'cpu') process.send!({ type: 'cpu', ...procUsage(server.pid!) })
    if (m.type === 'alloc-start') sampler!.start().then(() => process.send!({ type: 'alloc-start' }))
    if (m.type === 'alloc-stop') {
      sampler!.stop().then(profile => {
        const path = join(allocDir, `${nodeId.split('-')[0]}.heapprofile`)
        writeFileSync(path, JSON.stringify(profile))
        process.send!({ type: 'alloc-stop', path, ...allocationTop(profile) })
      })
    }
    if (m.type === 'limits') {
      // the limiter's Redis errors and timeouts (each sent that decision to the local fallback for a probe
      // interval: limits per node instead of shared), from the gateway's own /metrics
      fetch(`http://127.0.0.1:${port}/metrics`).then(res => res.text()).then(text => {
        const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
        // and how the hub served the resumes: a catch-up reader on Kafka each, or the topic's window; of the
        // errors, the timeouts whose deadline fired with B's event loop 50 ms late or more (B's own load)
        process.send!({ type: 'limits', errors: metric('sluice_rate_limit_redis_errors_total'), lateTimeouts: metric('sluice_rate_limit_redis_timeouts_total\\{loop="late"\\}'), onTimeTimeouts: metric('sluice_rate_limit_redis_timeouts_total\\{loop="on_time"\\}'), catchUps: metric('sluice_hub_catchups_total'), replays: metric('sluice_hub_window_replays_total') })
      }, () => process.send!({ type: 'limits', errors: NaN, lateTimeouts: NaN, onTimeTimeouts: NaN, catchUps: NaN, replays: NaN }))
    }
  })
  process.send!({ type: 'ready', url: `ws://127.0.0.1:${port}`, pid: server.pid })
}

async function gatewayChild (brokers: string[], nodeId: string, backlog: number): Promise<void> {
  if (backlog > 0) {
    // streamApp listens with Node's default backlog (511); this tries a larger accept queue without
    // touching the harness (the kernel caps it at net.core.somaxconn)
    const listen = Server.prototype.listen
    Server.prototype.listen = function (this: Server, ...args: unknown[]) {
      if (typeof args[0] === 'object' && args[0] !== null) args[0] = { ...args[0], backlog }
      return (listen as (...a: unknown[]) => Server).apply(this, args)
    } as typeof listen
  }
  const gw = await streamApp({ access: allowAll(), brokers, nodeId })
  process.on('message', (m: Msg) => {
    if (m.type === 'cpu') {
      const c = process.cpuUsage()
      process.send!({ type: 'cpu', us: c.user + c.system, rss: process.memoryUsage().rss })
    }
  })
  process.send!({ type: 'ready', url: gw.url, pid: process.pid })
}

/**
 * The physical limit: a bare `ws` server on this machine, no auth, policy, limits or Kafka. Each
 * resume gets the 101, a `subscribed` frame and its gap as the hub's native frames of the same
 * records (the same bytes the gateway writes), written in one write as the gateway's replay does.
 */
async function bareChild (backlog: number): Promise<void> {
  let targets: number[] | undefined
  const waiting: Array<() => void> = []
  const port = await freePort()
  const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: backlog > 0 ? backlog : 4096, perMessageDeflate: false })
  await new Promise(resolve => wss.once('listening', resolve))
  wss.on('connection', (ws, req) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const topic = url.searchParams.get('topics') ?? ''
    const from = (url.searchParams.get('from') ?? '').slice(topic.length + 1).split(',').filter(Boolean).map(part => part.split(':').map(Number) as [number, number])
    const serve = () => {
      const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket
      socket.cork()
      ws.send(`{"op":"subscribed","topic":${JSON.stringify(topic)},"cursor":${JSON.stringify(`${topic}@${from.map(([p, o]) => `${p}:${o}`).join(',')}`)}}`)
      for (const [p, start] of from) {
        for (let o = start; o < targets![p]!; o++) {
          // the producer's record: value {"n":...}, partitions in turn
          const record: ConsumedRecord = { topic, partition: p, offset: String(o), timestamp: String(Date.now()), key: null, value: Buffer.from(JSON.stringify({ n: o * PARTITIONS + p })), headers: {} }
          const frame = nativeFormat.frame(record, 'json')
          if (frame) socket.write(frame)
        }
      }
      socket.uncork()
    }
    if (targets) serve()
    else waiting.push(serve)
  })
  process.on('message', (m: Msg) => {
    if (m.type === 'cpu') {
      const c = process.cpuUsage()
      process.send!({ type: 'cpu', us: c.user + c.system, rss: process.memoryUsage().rss })
    } else if (m.type === 'targets') {
      targets = m.targets as number[]
      for (const serve of waiting.splice(0)) serve()
      process.send!({ type: 'targets' })
    }
  })
  process.send!({ type: 'ready', url: `ws://127.0.0.1:${port}`, pid: process.pid })
}

// ---- child: clients --------------------------------------------------------------------

interface Sock {
  next: number[]
  subscribedAt: number
  closedAt: number
  upgradedAt: number
  liveAt: number
  gaps: number
  dups: number
  ws?: WebSocket
  resumed: boolean
  retries: number
  token?: string
  /** the source address its connects bind to (--addresses) */
  address?: string
}

const MESSAGE = /"partition":(\d+),"offset":"(\d+)"/
const CURSOR = /"cursor":"([^"]+)"/

/** The `a`-th source address (0 to 62,499) of loopback's 127.`net`.x.y: the drain's clients use net 1, the warm-up's 2. */
function loopback (net: number, a: number): string {
  return `127.${net}.${Math.floor(a / 250)}.${1 + (a % 250)}`
}

/**
 * --warm-up N: before the drop, N other clients (subjects of their own, from 127.2.x.y) each subscribe
 * on B, resume from the cursor of their subscribed frame, and close, 100 at a time: B is then a node
 * that has served connections before, as a running node of a cluster has, not a process that never did.
 */
async function warmUpNode (url: string, topic: string, n: number, subjectPrefix: string | undefined): Promise<void> {
  const one = (i: number, from?: string): Promise<string> => new Promise((resolve, reject) => {
    const headers = subjectPrefix ? { authorization: `Bearer ${jwt(`${subjectPrefix}${i}`)}` } : undefined
    const ws = new WebSocket(`${url}/v1/stream?topics=${topic}${from ? `&from=${encodeURIComponent(from)}` : ''}`, ['sluice.v1'], { perMessageDeflate: false, headers, localAddress: loopback(2, i % 62_500) })
    ws.on('message', (data: Buffer) => {
      const text = data.toString('latin1')
      if (!text.startsWith('{"op":"subscribed"')) return
      ws.close()
      resolve(CURSOR.exec(text)![1]!)
    })
    ws.once('error', reject)
    // refused (a 429, a 503) or closed before its subscribed frame: the bench stops with why, it does not wait
    ws.once('close', (code: number, reason: Buffer) => reject(new Error(`warm-up client ${i}: closed (${code} ${String(reason)}) before its subscribed frame`)))
  })
  let i = 0
  const lane = async () => {
    while (i < n) {
      const k = i++
      await one(k, await one(k))
    }
  }
  await Promise.all(Array.from({ length: 100 }, lane))
}

function clientsChild (): void {
  let socks: Sock[] = []
  let topic = ''
  let nextUrl = ''
  let dropAt = 0
  let targets: number[] | undefined
  let errors = 0
  const errorCodes: Record<string, number> = {}

  const checkLive = (s: Sock) => {
    if (s.liveAt > 0 || !s.resumed || s.subscribedAt === 0 || !targets) return
    for (let p = 0; p < PARTITIONS; p++) if (s.next[p]! < targets[p]!) return
    s.liveAt = now()
  }

  const open = (s: Sock, url: string, onSubscribed: () => void) => {
    const headers = s.token ? { authorization: `Bearer ${s.token}` } : undefined
    const ws = new WebSocket(url, ['sluice.v1'], { perMessageDeflate: false, headers, ...(s.address ? { localAddress: s.address } : {}) })
    s.ws = ws
    // the 101: TCP accepted, and auth, policy and the connection limits passed
    ws.once('upgrade', () => { if (s.resumed) s.upgradedAt = now() })
    ws.on('message', (data: Buffer) => {
      const text = data.toString('latin1')
      const m = MESSAGE.exec(text)
      if (m && text.startsWith('{"op":"message"')) {
        const p = Number(m[1])
        const o = Number(m[2])
        if (o > s.next[p]!) s.gaps++
        else if (o < s.next[p]!) s.dups++
        if (o >= s.next[p]!) s.next[p] = o + 1
        checkLive(s)
      } else if (text.startsWith('{"op":"subscribed"')) {
        const c = CURSOR.exec(text)
        if (c && !s.resumed) {
          // the starting position of every partition, even those that have sent nothing yet
          for (const part of c[1]!.slice(c[1]!.indexOf('@') + 1).split(',')) {
            const [p, o] = part.split(':')
            s.next[Number(p)] = Number(o)
          }
        }
        s.subscribedAt = now()
        onSubscribed()
        checkLive(s)
      }
    })
    ws.on('error', (err: Error & { code?: string }) => {
      errors++
      const code = `${s.resumed ? 'on B' : 'on A'} ${err.code ?? err.message}`
      errorCodes[code] = (errorCodes[code] ?? 0) + 1
    })
    ws.on('close', () => {
      if (!nextUrl) return
      if (s.resumed) {
        // a resume that failed before B's subscribed frame: try again at once, as a client would
        if (ws === s.ws && s.subscribedAt === 0) {
          s.retries++
          open(s, ws.url, () => {})
        }
        return
      }
      // the drop: reconnect at once, from where this socket is
      s.closedAt = now()
      s.resumed = true
      s.subscribedAt = 0
      const cursor = `${topic}@${s.next.map((o, p) => `${p}:${o}`).join(',')}`
      open(s, `${nextUrl}&from=${encodeURIComponent(cursor)}`, () => {})
    })
  }

  process.on('message', (m: Msg) => {
    if (m.type === 'connect') {
      topic = m.topic as string
      const n = m.n as number
      // the shipped gateway: each socket is a subject of its own, with its own Bearer token
      const subjectPrefix = (m.subjectPrefix as string | undefined) ?? ''
      // this process's share of the addresses: process k of CLIENT_PROCS takes every CLIENT_PROCS-th one
      const addresses = m.addresses as number
      const address = (i: number): string | undefined => {
        if (addresses <= 1) return undefined
        const a = ((i * CLIENT_PROCS) + (m.proc as number)) % addresses
        return loopback(1, a)
      }
      socks = Array.from({ length: n }, (_, i) => ({ next: new Array(PARTITIONS).fill(-1), subscribedAt: 0, closedAt: 0, upgradedAt: 0, liveAt: 0, gaps: 0, dups: 0, resumed: false, retries: 0, token: subjectPrefix ? jwt(`${subjectPrefix}${i}`) : undefined, address: address(i) }))
      // 100 handshakes at a time: a listen backlog (511) is no part of what is measured here
      let i = 0
      let pending = 0
      const more = () => {
        while (pending < 100 && i < n) {
          const s = socks[i++]!
          pending++
          open(s, m.url as string, () => {
            pending--
            if (i < n) more()
            else if (pending === 0) process.send!({ type: 'connected', errors })
          })
        }
      }
      more()
    } else if (m.type === 'next') {
      nextUrl = m.url as string
      // a new round: every socket drops and resumes again, counted afresh
      targets = undefined
      for (const s of socks) { s.resumed = false; s.liveAt = 0; s.closedAt = 0; s.upgradedAt = 0; s.gaps = 0; s.dups = 0; s.retries = 0 }
      errors = 0
      for (const k of Object.keys(errorCodes)) delete errorCodes[k]
      process.send!({ type: 'next' })
    } else if (m.type === 'targets') {
      dropAt = m.dropAt as number
      targets = m.targets as number[]
      for (const s of socks) checkLive(s)
      process.send!({ type: 'targets' })
    } else if (m.type === 'progress') {
      process.send!({ type: 'progress', live: socks.filter(s => s.liveAt > 0).length })
    } else if (m.type === 'report') {
      process.send!({
        type: 'report',
        live: socks.map(s => s.liveAt > 0 ? s.liveAt - dropAt : -1),
        subscribed: socks.map(s => s.subscribedAt > 0 ? s.subscribedAt - dropAt : -1),
        upgraded: socks.map(s => s.upgradedAt > 0 ? s.upgradedAt - dropAt : -1),
        closed: socks.map(s => s.closedAt > 0 ? s.closedAt - dropAt : -1),
        gaps: socks.reduce((a, s) => a + s.gaps, 0),
        dups: socks.reduce((a, s) => a + s.dups, 0),
        gapSockets: socks.filter(s => s.gaps + s.dups > 0).length,
        retries: socks.reduce((a, s) => a + s.retries, 0),
        errorCodes,
        errors
      })
    } else if (m.type === 'close') {
      nextUrl = ''
      for (const s of socks) s.ws?.terminate()
      process.send!({ type: 'close' })
    }
  })
  process.send!({ type: 'ready' })
}

// ---- orchestrator ----------------------------------------------------------------------

function pct (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

function summary (values: number[]): string {
  // -1: never (NaN would reach here as null through IPC's JSON)
  const ok = values.filter(v => v >= 0)
  return `min ${Math.round(Math.min(...ok))} ms, p50 ${Math.round(pct(ok, 50))} ms, p99 ${Math.round(pct(ok, 99))} ms, max ${Math.round(Math.max(...ok))} ms (n=${ok.length} of ${values.length})`
}

/** the machine's TCP counters (Linux): a reconnect storm past a listen backlog shows as overflows and SYN retransmits */
function tcpCounters (): Record<string, number> {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter(l => l.startsWith('TcpExt:'))
  const names = lines[0]!.split(' ').slice(1)
  const counts = lines[1]!.split(' ').slice(1).map(Number)
  const want = ['ListenOverflows', 'ListenDrops', 'TCPSynRetrans']
  return Object.fromEntries(want.map(k => [k, counts[names.indexOf(k)]!]))
}

type Redis = import('ioredis').Redis
/** Redis' own count of the script calls (EVALSHA: the limiter's decisions and the HTTP counts) and the µs it spent in them (INFO commandstats) */
/** Deletes the keys under `prefix` (SCAN, then UNLINK in batches); how many. */
async function removeKeys (redis: Redis, prefix: string): Promise<number> {
  let cursor = '0'
  let removed = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) removed += await redis.unlink(...keys)
  } while (cursor !== '0')
  return removed
}

async function scriptCalls (redis: Redis): Promise<{ calls: number, us: number }> {
  const m = /^cmdstat_evalsha:calls=(\d+),usec=(\d+)/m.exec(await redis.info('commandstats'))
  return { calls: Number(m?.[1] ?? 0), us: Number(m?.[2] ?? 0) }
}

function errorsByCode (reports: Msg[]): Record<string, number> {
  const all: Record<string, number> = {}
  for (const r of reports) for (const [k, v] of Object.entries(r.errorCodes as Record<string, number>)) all[k] = (all[k] ?? 0) + v
  return all
}

async function startGateway (kind: string, brokers: string[], nodeId: string, backlog: number, sockets: number, profileDir: string, upgradeMax: number, run: string, allocDir: string, baselineTree: string): Promise<{ child: ChildProcess, url: string, pid: number }> {
  const child = fork(import.meta.filename, ['--role', 'gateway', '--gateway', kind, '--brokers', brokers.join(','), '--node', nodeId, '--backlog', String(backlog), '--listen-sockets', String(sockets), '--profile', profileDir, '--upgrade-max', String(upgradeMax), '--run', run, '--alloc-profile', allocDir, '--baseline-tree', baselineTree])
  const ready = await new Promise<Msg>((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', code => reject(new Error(`gateway ${nodeId} exited with ${code}`)))
  })
  return { child, url: ready.url as string, pid: ready.pid as number }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string', default: 'main' },
      brokers: { type: 'string', default: '127.0.0.1:19092' },
      node: { type: 'string', default: 'a' },
      clients: { type: 'string', default: '5000' },
      rate: { type: 'string', default: '20' },
      rounds: { type: 'string', default: 'cold,warm' },
      gateway: { type: 'string', default: 'shipped' },
      backlog: { type: 'string', default: '0' },
      'listen-sockets': { type: 'string', default: '0' },
      profile: { type: 'string', default: '' },
      'alloc-profile': { type: 'string', default: '' },
      'gateway-nice': { type: 'string', default: '' },
      'warm-up': { type: 'string', default: '0' },
      drop: { type: 'string', default: 'kill' },
      addresses: { type: 'string', default: '1' },
      'upgrade-max': { type: 'string', default: '0' },
      'baseline-tree': { type: 'string', default: '' },
      run: { type: 'string', default: '' }
    }
  })
  const brokers = values.brokers.split(',')
  if (values.role === 'gateway') {
    if (values.gateway === 'bare') return await bareChild(Number(values.backlog))
    return values.gateway === 'shipped'
      ? await shippedGatewayChild(brokers, values.node, Number(values.backlog), Number(values['listen-sockets']), values.profile, Number(values['upgrade-max']), values.run, values['alloc-profile'], values['baseline-tree'])
      : await gatewayChild(brokers, values.node, Number(values.backlog))
  }
  if (values.role === 'clients') return clientsChild()

  const clients = Number(values.clients)
  const addresses = Number(values.addresses)
  const warmUp = Number(values['warm-up'])
  if (!Number.isInteger(warmUp) || warmUp < 0 || warmUp > 62_500) throw new Error('--warm-up: 0 to 62,500 clients')
  if (!Number.isInteger(addresses) || addresses < 1 || addresses > 62_500) throw new Error('--addresses: 1 to 62,500 (127.1.0.1 to 127.1.249.250)')
  // the shipped per-address upgrade limit, unless one address's clients connect more often than it allows in
  // the run (once on A, once per round): then a limit they fit in, as an operator would set for a NAT
  const rounds = values.rounds.split(',').length
  const perAddress = Math.ceil(clients / addresses) * (rounds + 1)
  const upgradeMax = perAddress > gatewayDefaults.rateLimit.http.upgrade.max ? 1_000_000 : 0
  const rate = Number(values.rate)
  // kill: SIGKILL, every socket drops at once; drain: SIGTERM, the shipped drain closes them with 1001
  // spread over server.drainMs (10 s by default)
  const drain = values.drop === 'drain'
  if (!drain && values.drop !== 'kill') throw new Error('--drop kill|drain')
  if (drain && values.gateway !== 'shipped') throw new Error('--drop drain needs --gateway shipped (the drain is the shipped server\'s)')
  const run = randomBytes(3).toString('hex')
  const baselineTree = values['baseline-tree'] ? resolvePath(values['baseline-tree']) : ''
  if (baselineTree && values.gateway !== 'shipped') throw new Error('--baseline-tree runs shipped gateways: it needs --gateway shipped')
  const topic = `bench.drain.${run}`
  const setup = new KafkaClient({ brokers, clientId: 'bench-setup' })
  await setup.ensureTopics([{ topic, partitions: PARTITIONS }], 120_000)
  const load0 = loadavg()
  const children: ChildProcess[] = []
  // the shipped gateways are processes of their own, under their child
  const servers: number[] = []
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL')
    for (const pid of servers) { try { process.kill(pid, 'SIGKILL') } catch {} }
  }
  process.once('exit', killAll)
  const shipped = values.gateway === 'shipped'
  // the script calls per round, read on the Redis the shipped gateways share
  const redis = shipped ? new (await import('ioredis')).Redis(process.env.REDIS_URL!, { lazyConnect: true }) : undefined
  await redis?.connect()
  const out: string[] = []
  const allLiveBy = new Map<string, number>()
  // per round, p99 of each client's close on A -> live on B: what a drain's clients wait
  const ownP99By = new Map<string, number>()

  // the producer: one record every 1000/rate ms, partitions in turn, one at a time, so that the
  // acked count of a partition is its next offset (a fresh topic)
  const acked = new Array(PARTITIONS).fill(0)
  const producing = { on: true }
  let n = 0
  const producer = (async () => {
    const t0 = performance.now()
    while (producing.on) {
      const due = t0 + (n * 1000) / rate
      const wait = due - performance.now()
      if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
      const p = n % PARTITIONS
      await setup.produceBatch(topic, [{ value: JSON.stringify({ n }), partition: p }])
      acked[p]++
      n++
    }
  })()

  try {
    let current = await startGateway(values.gateway, brokers, `a-${run}`, Number(values.backlog), Number(values['listen-sockets']), values.profile, upgradeMax, run, values['alloc-profile'], baselineTree)
    children.push(current.child)
    servers.push(current.pid)
    const gatewayNice = values['gateway-nice'] === '' ? undefined : Number(values['gateway-nice'])
    if (gatewayNice !== undefined) setPriority(current.pid, gatewayNice)
    const procs: ChildProcess[] = []
    for (let i = 0; i < CLIENT_PROCS; i++) {
      const c = fork(import.meta.filename, ['--role', 'clients'])
      children.push(c)
      await new Promise(resolve => c.once('message', resolve))
      procs.push(c)
    }
    const t = performance.now()
    await Promise.all(procs.map((c, i) => ask(c, { type: 'connect', topic, n: Math.floor(clients / CLIENT_PROCS) + (i < clients % CLIENT_PROCS ? 1 : 0), url: `${current.url}/v1/stream?topics=${topic}`, subjectPrefix: shipped ? `c-${run}-${i}-` : undefined, addresses, proc: i }, 'connected', 300_000)))
    if (baselineTree) out.push(`every shipped gateway (A and B) from the baseline tree ${describeTree(baselineTree)}`)
    out.push(`${clients} clients subscribed on node A in ${Math.round(performance.now() - t)} ms`)

    for (const round of values.rounds.split(',')) {
      const next = await startGateway(round === 'bare' ? 'bare' : values.gateway, brokers, `${round}-${run}`, Number(values.backlog), Number(values['listen-sockets']), values.profile, upgradeMax, run, values['alloc-profile'], baselineTree)
      children.push(next.child)
      servers.push(next.pid)
      if (gatewayNice !== undefined) setPriority(next.pid, gatewayNice)
      let holder: WebSocket | undefined
      if (round === 'warm') {
        // another client already reads the topic on B: its feed and window are there before the drop
        const headers = shipped ? { authorization: `Bearer ${jwt(`holder-${run}-${round}`)}` } : undefined
        holder = new WebSocket(`${next.url}/v1/stream?topics=${topic}`, ['sluice.v1'], { perMessageDeflate: false, headers })
        await new Promise(resolve => holder!.once('message', resolve))
      }
      if (warmUp > 0 && round !== 'bare') {
        const tw = performance.now()
        await warmUpNode(next.url, topic, warmUp, shipped ? `w-${run}-${round}-` : undefined)
        out.push(`${round}: B served ${warmUp} other clients (subscribe, resume, close) before the drop, in ${Math.round(performance.now() - tw)} ms`)
      }
      // the sockets on A receive for a while first (their cursors move; a warm B's window fills)
      await new Promise(resolve => setTimeout(resolve, 5_000))
      await Promise.all(procs.map(c => ask(c, { type: 'next', url: `${next.url}/v1/stream?topics=${topic}` }, 'next')))
      const usage0 = await ask(next.child, { type: 'cpu' }, 'cpu')
      const cpu0 = usage0.us as number
      const metrics0 = shipped && round !== 'bare' ? await ask(next.child, { type: 'limits' }, 'limits') : undefined
      const limits0 = metrics0 ? metrics0.errors as number : NaN
      const tcp0 = tcpCounters()
      const machine0 = machineTicks()
      const script0 = redis && round !== 'bare' ? await scriptCalls(redis) : undefined
      const sampling = values['alloc-profile'] && shipped && round !== 'bare'
      if (sampling) {
        mkdirSync(values['alloc-profile'], { recursive: true })
        await ask(next.child, { type: 'alloc-start' }, 'alloc-start')
      }
      const dropAt = now()
      if (drain) {
        // the drain ends with the server's exit, and its child (which only watches it) goes with it
        process.kill(current.pid, 'SIGTERM')
      } else {
        process.kill(current.pid, 'SIGKILL')
        current.child.kill('SIGKILL')
      }
      const targets = [...acked]
      if (round === 'bare') await ask(next.child, { type: 'targets', targets }, 'targets')
      // a round starts only once the last one ended: a warm round after a cold one that was not all live
      // would count the cold round's unfinished reconnects (refused by the killed node) as its own
      await Promise.all(procs.map(c => ask(c, { type: 'targets', dropAt, targets }, 'targets')))
      let live = 0
      const deadline = performance.now() + LIVE_TIMEOUT_MS
      while (live < clients && performance.now() < deadline) {
        await new Promise(resolve => setTimeout(resolve, 50))
        live = (await Promise.all(procs.map(c => ask(c, { type: 'progress' }, 'progress')))).reduce((a, m) => a + (m.live as number), 0)
      }
      const allLive = now() - dropAt
      const cpu1 = (await ask(next.child, { type: 'cpu' }, 'cpu'))
      const allocated = sampling ? await ask(next.child, { type: 'alloc-stop' }, 'alloc-stop') : undefined
      const metrics1 = shipped && round !== 'bare' ? await ask(next.child, { type: 'limits' }, 'limits') : undefined
      const limits1 = metrics1 ? metrics1.errors as number : NaN
      const tcp1 = tcpCounters()
      const machine1 = machineTicks()
      const script1 = script0 && redis ? await scriptCalls(redis) : undefined
      await new Promise(resolve => setTimeout(resolve, AFTER_MS))
      const reports = await Promise.all(procs.map(c => ask(c, { type: 'report' }, 'report')))
      const liveMs = reports.flatMap(r => r.live as number[])
      const subMs = reports.flatMap(r => r.subscribed as number[])
      const upMs = reports.flatMap(r => r.upgraded as number[])
      const closedMs = reports.flatMap(r => r.closed as number[])
      const sum = (k: string) => reports.reduce((a, r) => a + (r[k] as number), 0)
      const cpuMs = ((cpu1.us as number) - cpu0) / 1000
      const how = drain ? 'closed with 1001 over the shipped drain (node A SIGTERMed, server.drainMs 10 s)' : 'dropped at once (node A SIGKILLed)'
      out.push(`-- B ${round}: ${clients} clients ${how}, all reconnect to B with from=<cursor>; producer ${rate} records/s, ${targets.reduce((a, b) => a + b, 0)} acked before the drop`)
      out.push(`   live (B's subscribed + every record acked before the drop), per client from the drop: ${summary(liveMs)}`)
      out.push(`   A's socket closed (the client saw the drop and reconnected), per client from the drop: ${summary(closedMs)}`)
      // each client's own wait: from its socket's close on A to live on B
      const ownMs = liveMs.map((l, i) => l >= 0 && closedMs[i]! >= 0 ? l - closedMs[i]! : -1)
      out.push(`   live, per client from its own socket's close on A: ${summary(ownMs)}`)
      out.push(`   upgraded on B (the 101: accepted, auth, policy, limits), per client from the drop: ${summary(upMs)}`)
      out.push(`   subscribed on B, per client from the drop: ${summary(subMs)}`)
      out.push(`   all live: ${live === clients ? `${Math.round(allLive)} ms` : `NOT within ${LIVE_TIMEOUT_MS} ms (${live} of ${clients})`}; gaps ${sum('gaps')}, duplicates ${sum('dups')} (${sum('gapSockets')} sockets), socket errors ${sum('errors')} ${JSON.stringify(errorsByCode(reports))}, failed resumes retried ${sum('retries')}`)
      const sysMs = typeof cpu1.sysUs === 'number' ? ((cpu1.sysUs as number) - (usage0.sysUs as number)) / 1000 : NaN
      out.push(`   gateway B CPU from the drop to all live: ${Math.round(cpuMs)} ms in ${Math.round(allLive)} ms (${Math.round((cpuMs / allLive) * 100)} % of a core${Number.isNaN(sysMs) ? '' : `; ${Math.round(sysMs)} ms of it in the kernel`}), RSS ${Math.round((cpu1.rss as number) / 2 ** 20)} MiB`)
      const busy = machine1.busy - machine0.busy
      const idle = machine1.idle - machine0.idle
      out.push(`   the machine from the drop to all live: ${Math.round((100 * busy) / (busy + idle))} % of its ${cpus().length} cores busy (the clients, both gateways, Redis, Kafka)`)
      if (typeof cpu1.writes === 'number' && typeof usage0.writes === 'number') {
        const writes = cpu1.writes - usage0.writes
        out.push(`   gateway B write syscalls from the drop to all live: ${writes} (${(writes / clients).toFixed(2)} a resume)`)
      }
      if (script0 && script1) {
        const calls = script1.calls - script0.calls
        out.push(`   rate-limit script calls on Redis from the drop to all live: ${calls} (${(calls / clients).toFixed(2)} a resume), ${Math.round((script1.us - script0.us) / 1000)} ms of Redis CPU in them`)
      }
      if (!Number.isNaN(limits0)) {
        // a baseline tree from before the timeouts were counted apart has no such lines: n/a
        const late = (metrics1!.lateTimeouts as number) - (metrics0!.lateTimeouts as number)
        const onTime = (metrics1!.onTimeTimeouts as number) - (metrics0!.onTimeTimeouts as number)
        out.push(`   rate-limit Redis errors and timeouts on B from the drop to all live: ${limits1 - limits0} (each one's decisions fell back to local buckets for a second); of them timeouts, B's event loop on time ${Number.isNaN(onTime) ? 'n/a' : onTime}, 50 ms late or more ${Number.isNaN(late) ? 'n/a' : late}`)
      }
      if (metrics0 && metrics1) {
        out.push(`   B's hub from the drop to all live: ${(metrics1.catchUps as number) - (metrics0.catchUps as number)} catch-up readers on Kafka, ${(metrics1.replays as number) - (metrics0.replays as number)} replays from the window`)
      }
      out.push(`   machine TCP counters from the drop to all live: ${Object.entries(tcp1).map(([k, v]) => `${k} +${v - tcp0[k]!}`).join(', ')} (listen backlog ${Number(values.backlog) > 0 ? values.backlog : shipped ? 'server.listenBacklog\'s default, 4096' : 'Node\'s default, 511'}${shipped && round !== 'bare' ? `, ${Number(values['listen-sockets']) > 0 ? values['listen-sockets'] : 'server.listenSockets\' default'} listening sockets` : ''})`)
      if (allocated) {
        const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1)
        out.push(`   B's allocations from the drop to all live (sampled, collected ones included): ${mib(allocated.total as number)} MiB, ${((allocated.total as number) / clients / 1024).toFixed(1)} KiB a resume; ${allocated.path as string}; the sites that allocated most:`)
        for (const [site, bytes] of allocated.top as Array<[string, number]>) out.push(`     ${mib(bytes).padStart(6)} MiB  ${site}`)
      }
      if (live === clients) {
        allLiveBy.set(round, allLive)
        ownP99By.set(round, pct(ownMs.filter(v => v >= 0), 99))
      }
      holder?.terminate()
      current = next
    }
    const bare = allLiveBy.get('bare')
    if (bare !== undefined) {
      out.push(`-- against the bare ws server on the same machine (all live ${Math.round(bare)} ms): ${[...allLiveBy].filter(([r]) => r !== 'bare').map(([r, ms]) => `B ${r} x${(ms / bare).toFixed(1)}`).join(', ')}`)
      const bareOwn = ownP99By.get('bare')!
      out.push(`-- the same, p99 of each client's own close -> live (bare ${Math.round(bareOwn)} ms): ${[...ownP99By].filter(([r]) => r !== 'bare').map(([r, ms]) => `B ${r} ${Math.round(ms)} ms, x${(ms / Math.max(bareOwn, 1)).toFixed(1)}`).join(', ')}`)
    }
    await Promise.all(procs.map(c => ask(c, { type: 'close' }, 'close')))
    if (values.profile && shipped) {
      // the last B exits on SIGTERM (its sockets are gone: no drain to wait for), and V8 writes its profile
      const exited = new Promise(resolve => current.child.once('exit', resolve))
      process.kill(current.pid, 'SIGTERM')
      await exited
    }
  } finally {
    producing.on = false
    await producer.catch(() => {})
    killAll()
    if (redis) {
      const removed = await removeKeys(redis, `sluice:drain:${run}:`).catch(err => { process.stderr.write(`[bench] the run's Redis keys not removed: ${String(err)}\n`); return 0 })
      process.stderr.write(`[bench] ${removed} Redis keys of the run removed\n`)
    }
    redis?.disconnect()
    await setup.close()
  }
  const load1 = loadavg()
  process.stdout.write(`\ndrain-resume bench: gateway ${values.gateway}, node ${process.version}, broker ${brokers.join(',')}, topic ${PARTITIONS} partitions, clients from ${addresses === 1 ? 'one address' : `${addresses} addresses`}, per-address upgrade limit ${upgradeMax > 0 ? `raised to ${upgradeMax} a minute (past the default for one address's clients)` : 'as shipped'}, load ${load0.map(l => l.toFixed(2)).join(' ')} before, ${load1.map(l => l.toFixed(2)).join(' ')} after\n`)
  for (const line of out) process.stdout.write(`${line}\n`)
}

main().catch(err => {
  process.stderr.write(`[bench] ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
