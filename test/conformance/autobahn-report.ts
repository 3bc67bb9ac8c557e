// Reads the reports test/conformance/autobahn.ts leaves (one JSON per case and testee),
// compares each gateway route with the bare ws server case by case, and
// writes docs/conformance.md.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** the agent names of the three testees in the reports */
export const AGENTS = { bare: 'ws', stream: 'sluice-v1-stream', broker: 'sluice-v2-broker' } as const

export interface CaseOutcome {
  id: string
  description: string
  /** OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED: what the testee sent */
  behavior: string
  /** OK, FAILED, WRONG CODE, UNCLEAN, FAILED BY CLIENT, INFORMATIONAL: how the connection ended */
  behaviorClose: string
  /** the close code the testee sent; null when no close frame arrived */
  remoteCloseCode: number | null
  /** a close handshake, not a dropped connection */
  wasClean: boolean
  /** Autobahn, not the testee, started the close */
  closedByMe: boolean
  /** one of the case's expected outcomes has a message from the testee: an echo */
  expectsEcho: boolean
  /** what the testee sent, in order: ['message', payload, binary], ['pong', payload], ... */
  received: unknown[][]
  /** Autobahn's timers that ran out: the case's kill or close timer, the close handshake's, the TCP drop's */
  timeouts: string[]
}

interface CaseReport {
  id: string
  description: string
  behavior: string
  behaviorClose: string
  remoteCloseCode: number | null
  wasClean: boolean
  closedByMe: boolean
  expected: Record<string, unknown[][]>
  received: unknown[][]
  wirelog: unknown[][]
  wasCloseHandshakeTimeout: boolean
  wasServerConnectionDropTimeout: boolean
}

/** One testee's outcomes, by case id, in Autobahn's case order. */
export function readOutcomes (reportsDir: string, agent: string): Map<string, CaseOutcome> {
  const dir = join(reportsDir, agent)
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Record<string, { reportfile: string }>
  const outcomes = new Map<string, CaseOutcome>()
  for (const id of Object.keys(index).sort(byCaseId)) {
    const r = JSON.parse(readFileSync(join(dir, index[id]!.reportfile), 'utf8')) as CaseReport
    outcomes.set(id, {
      id,
      description: r.description,
      behavior: r.behavior,
      behaviorClose: r.behaviorClose,
      remoteCloseCode: r.remoteCloseCode,
      wasClean: r.wasClean,
      closedByMe: r.closedByMe,
      expectsEcho: Object.values(r.expected).some(events => events.some(e => e[0] === 'message')),
      received: r.received,
      timeouts: [
        // KLE, TIE: the wire log's marks for the case's killAfter and closeAfter run out
        ...r.wirelog.some(e => e[0] === 'KLE') ? ['kill'] : [],
        ...r.wirelog.some(e => e[0] === 'TIE') ? ['close'] : [],
        ...r.wasCloseHandshakeTimeout ? ['close handshake'] : [],
        ...r.wasServerConnectionDropTimeout ? ['server drop'] : []
      ]
    })
  }
  return outcomes
}

export function byCaseId (a: string, b: string): number {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1)
    if (d !== 0) return d
  }
  return 0
}

// How a connection ends is compared in every case: who closed, the code sent, a handshake or a drop
const CLOSE_FIELDS = ['behaviorClose', 'remoteCloseCode', 'wasClean', 'closedByMe'] as const

export interface Difference {
  id: string
  field: string
  bare: unknown
  route: unknown
  expectsEcho: boolean
  /** set when the difference is one the comparison allows: why */
  allowed?: string
  /** one of Autobahn's timers ran out on one side only: that side was late, maybe only loaded */
  late?: boolean
}

/** Messages aside, the events the testee sent (pongs, in order). */
function controlEvents (received: unknown[][]): string {
  return JSON.stringify(received.filter(e => e[0] !== 'message'))
}

/**
 * Where a route's outcome differs from bare ws. Closing: every case, every
 * field of CLOSE_FIELDS. Behaviour: every case, except that in a case that
 * expects an echo, the route may answer the test's message with its error
 * frame (the routes read JSON; Autobahn sends text such as "Hello, world!"),
 * where bare ws says nothing: allowed when messages are the only difference.
 */
export function differences (bare: Map<string, CaseOutcome>, route: Map<string, CaseOutcome>): Difference[] {
  const found: Difference[] = []
  for (const [id, b] of bare) {
    const r = route.get(id)
    if (!r) {
      found.push({ id, field: 'ran', bare: true, route: false, expectsEcho: b.expectsEcho })
      continue
    }
    const late = r.timeouts.some(x => !b.timeouts.includes(x)) || b.timeouts.some(x => !r.timeouts.includes(x)) ? { late: true } : {}
    for (const field of CLOSE_FIELDS) {
      if (b[field] !== r[field]) found.push({ id, field, bare: b[field], route: r[field], expectsEcho: b.expectsEcho, ...late })
    }
    if (b.behavior !== r.behavior) {
      const d: Difference = { id, field: 'behavior', bare: b.behavior, route: r.behavior, expectsEcho: b.expectsEcho, ...late }
      const extra = r.received.filter(e => e[0] === 'message').length - b.received.filter(e => e[0] === 'message').length
      if (b.expectsEcho && extra > 0 && controlEvents(b.received) === controlEvents(r.received)) {
        d.allowed = `the route answered the test's message with ${extra === 1 ? 'an error frame' : `${extra} error frames`}; bare ws, echoing nothing, sent none`
      }
      found.push(d)
    }
  }
  for (const id of route.keys()) if (!bare.has(id)) found.push({ id, field: 'ran', bare: false, route: true, expectsEcho: false })
  return found
}

export const BEHAVIOURS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED'] as const
const CLOSE_BEHAVIOURS = ['OK', 'INFORMATIONAL', 'WRONG CODE', 'UNCLEAN', 'FAILED BY CLIENT', 'FAILED'] as const

export const GROUPS: Array<[string, string]> = [
  ['1', 'framing'],
  ['2', 'pings and pongs'],
  ['3', 'reserved bits'],
  ['4', 'opcodes'],
  ['5', 'fragmentation'],
  ['6', 'UTF-8 handling'],
  ['7', 'close handling'],
  ['9', 'limits and performance'],
  ['10', 'miscellaneous (auto-fragmentation)']
]

export interface Column {
  title: string
  outcomes: Map<string, CaseOutcome>
}

function counts (outcomes: CaseOutcome[], field: 'behavior' | 'behaviorClose', names: readonly string[]): string {
  const tally = new Map<string, number>()
  for (const o of outcomes) tally.set(o[field], (tally.get(o[field]) ?? 0) + 1)
  const known = names.filter(n => tally.has(n)).map(n => `${n} ${tally.get(n)}`)
  const other = [...tally.keys()].filter(n => !names.includes(n)).map(n => `${n} ${tally.get(n)}`)
  return [...known, ...other].join(', ')
}

function table (columns: Column[], field: 'behavior' | 'behaviorClose', names: readonly string[]): string {
  const lines = [
    `| group | cases | ${columns.map(c => c.title).join(' | ')} |`,
    `| --- | ---: | ${columns.map(() => '---').join(' | ')} |`
  ]
  const groups = [...GROUPS, ['all', 'every case run'] as [string, string]]
  for (const [group, name] of groups) {
    const of = (c: Column): CaseOutcome[] => [...c.outcomes.values()].filter(o => group === 'all' || o.id.split('.')[0] === group)
    const n = of(columns[0]!).length
    if (n === 0) continue
    const label = group === 'all' ? '**all**' : `${group}.* ${name}`
    lines.push(`| ${label} | ${n} | ${columns.map(c => counts(of(c), field, names)).join(' | ')} |`)
  }
  return lines.join('\n')
}

export interface ReportMeta {
  autobahnVersion: string
  wsVersion: string
  excluded: string[]
  /** wall time of the run, if known */
  seconds?: number
  /** the cases run again because one of Autobahn's timers ran out on one side only, per rerun */
  reruns?: string[][]
}

/** docs/conformance.md: the side-by-side tables and every difference, with its reason. */
export function conformanceMarkdown (bare: Column, routes: Column[], meta: ReportMeta): string {
  const columns = [bare, ...routes]
  const diffs = routes.map(r => ({ title: r.title, list: differences(bare.outcomes, r.outcomes) }))
  const unexplained = diffs.flatMap(d => d.list.filter(x => !x.allowed).map(x => ({ ...x, title: d.title })))
  const explained = new Map<string, { reason: string, routes: string[], bare: unknown, route: unknown }>()
  for (const d of diffs) {
    for (const x of d.list) {
      if (!x.allowed) continue
      const entry = explained.get(x.id) ?? { reason: x.allowed, routes: [], bare: x.bare, route: x.route }
      entry.routes.push(d.title)
      explained.set(x.id, entry)
    }
  }
  const out: string[] = []
  out.push(`# WebSocket conformance (Autobahn|Testsuite)

Generated by \`node test/conformance/autobahn.ts report\` from the reports of
\`node test/conformance/autobahn.ts run\` (test/conformance/autobahn.test.ts runs the same
and asserts what this page shows). Do not edit by hand.

Autobahn|Testsuite ${meta.autobahnVersion} runs as a fuzzing client, side by side, against:

- **bare ws**: a \`ws\` ${meta.wsVersion} server (the version the gateway runs) with the routes'
  limits (\`maxPayload\` 1 MiB, permessage-deflate off) that reads every message and
  answers none;
- **/v1/stream** and **/v2/broker/** of a real gateway (\`buildApp\`, default
  configuration but for a plan and an upgrade rate limit far above the run's
  ~300 connections per route, a JWT in \`?access_token=\`: the fuzzing client
  cannot set headers).

Neither the routes nor bare ws echo: a case that expects an echo reports
FAILED or NON-STRICT for all three alike. The routes answer a text or binary
message they cannot read (Autobahn's payloads are not JSON) with an error frame,
which Autobahn counts as a wrong echo: those are the only differences allowed,
and only in cases that expect an echo.

Not run: ${meta.excluded.map(c => `\`${c}\``).join(', ')}. 12.* and 13.* test
permessage-deflate, which the routes do not offer; the 9.* cases whose message
fits the 1 MiB limit time echo round trips and, with nothing echoed, only wait
out Autobahn's timer (10 to 100 s each). The 9.* cases over the limit run: they
test the 1009 close.${meta.seconds === undefined ? '' : ` The run took ${meta.seconds.toFixed(0)} s.`}

A case where one of Autobahn's timers ran out on one side only (0.5 s to fail
a connection on invalid UTF-8, 1 s elsewhere; 1 s for the close handshake)
runs again, twice at most: on a loaded machine either side can be late once.
A difference that persists counts, and so does every other difference. Run again in this
run: ${(meta.reruns ?? []).length === 0 ? 'none' : meta.reruns!.map(ids => ids.join(', ')).join('; then ')}.

Reading the tables: most FAILED and WRONG CODE counts are the same for all
three and come from the test design, not from a fault. A case that expects an
echo and gets none reports \`behavior\` FAILED (NON-STRICT where no echo is
also allowed); when its timer runs out Autobahn closes with 1001 (going away),
the testee answers 1001, and a case that expects 1000 reports \`behaviorClose\`
WRONG CODE (1.*, the valid UTF-8 cases of 6.*, 7.1.1, 10.1.1). The 9.* cases
that run send 4 to 16 MiB: every testee closes with 1009 at the 1 MiB limit,
where the case expects the message echoed and Autobahn to close: FAILED.

## What the testee sent (\`behavior\`)

${table(columns, 'behavior', BEHAVIOURS)}

## How the connection ended (\`behaviorClose\`)

${table(columns, 'behaviorClose', CLOSE_BEHAVIOURS)}

## Differences from bare ws

Compared per case: \`behaviorClose\`, the close code the testee sent, whether
the close was a handshake, and who started it, in every case; \`behavior\` in
every case, except as said above.

`)
  if (unexplained.length === 0) {
    out.push('Framing and closing: **no case differs** from bare ws on either route.\n')
  } else {
    out.push('Cases where a route differs from bare ws:\n')
    out.push('| case | route | what | bare ws | route |\n| --- | --- | --- | --- | --- |')
    for (const x of unexplained) out.push(`| ${x.id} | ${x.title} | ${x.field} | ${String(x.bare)} | ${String(x.route)} |`)
    out.push('')
  }
  out.push(`\nCases that expect an echo, where a route's \`behavior\` differs only by its error frames (${explained.size}):\n`)
  out.push('| case | routes | bare ws | routes | why |\n| --- | --- | --- | --- | --- |')
  for (const [id, e] of [...explained].sort((a, b) => byCaseId(a[0], b[0]))) {
    out.push(`| ${id} | ${e.routes.join(', ')} | ${String(e.bare)} | ${String(e.route)} | ${e.reason} |`)
  }
  out.push('')
  return out.join('\n')
}
