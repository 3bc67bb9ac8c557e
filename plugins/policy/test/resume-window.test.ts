// A product's `resume`: how much of its topics' recent records each node keeps
// for resumes. Validated with path and line like every other term; the policy
// tells the hub, per topic, the `resume` of every product that serves it.
import { test } from 'tap'
import { compilePolicy } from '../src/compile.ts'
import { MAX_RESUME_WINDOW_BYTES, MAX_RESUME_WINDOW_MS } from '../src/schema.ts'

const LIMITS = '{ connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }'

/** a policy with products `market` (prices.*, both.*) and `archive` (archive.*, both.*), each with the `resume` given (YAML) */
function policyText (market?: string, archive?: string): string {
  return `
plans:
  free: { limits: ${LIMITS} }
products:
  market:
    plans: [free]
    topics: [{ pattern: prices.* }, { pattern: both.* }]
${market ? `    resume: ${market}\n` : ''}  archive:
    plans: [free]
    topics: [{ pattern: archive.* }, { pattern: both.* }]
${archive ? `    resume: ${archive}\n` : ''}rules:
  - { name: r, product: market, plan: free, subscribe: ['prices.*'] }
`
}

test('a product\'s resume window: the resume of each product serving a topic', async t => {
  const { policy, problems } = compilePolicy([{ file: 'p.yaml', text: policyText('{ windowBytes: 65536, windowMs: 5000 }', '{ windowBytes: 0 }') }])
  t.same(problems, [])
  t.same(policy!.resumeWindows('prices.btc'), [{ windowBytes: 65536, windowMs: 5000 }])
  t.same(policy!.resumeWindows('archive.2024'), [{ windowBytes: 0 }], '0: none kept, the age left to the gateway')
  t.same(policy!.resumeWindows('both.x'), [{ windowBytes: 65536, windowMs: 5000 }, { windowBytes: 0 }], 'a topic of two products: both, the hub takes the largest')
  t.same(policy!.resumeWindows('news.x'), [], 'no product serves it: the gateway\'s defaults')

  const partly = compilePolicy([{ file: 'p.yaml', text: policyText('{ windowMs: 1000 }') }]).policy!
  t.same(partly.resumeWindows('both.x'), [{ windowMs: 1000 }, {}], 'a product that sets none counts, with the gateway\'s bounds')
  t.same(compilePolicy([{ file: 'p.yaml', text: policyText() }]).policy!.resumeWindows('both.x'), [], 'no product sets one: nothing to look up')
  t.same(compilePolicy([{ file: 'p.yaml', text: policyText(`{ windowBytes: ${MAX_RESUME_WINDOW_BYTES}, windowMs: ${MAX_RESUME_WINDOW_MS} }`) }]).problems, [], 'the maximums themselves are valid')
})

test('bad resume windows: every problem at once, with its path and line', async t => {
  const cases: Array<[string, string, string, string]> = [
    ['{ windowBytes: -1 }', '/products/market/resume/windowBytes', 'p.yaml:8', '>= 0'],
    ['{ windowMs: 1.5 }', '/products/market/resume/windowMs', 'p.yaml:8', 'integer'],
    ['{ windowBytes: "1MiB" }', '/products/market/resume/windowBytes', 'p.yaml:8', 'integer'],
    [`{ windowBytes: ${MAX_RESUME_WINDOW_BYTES + 1} }`, '/products/market/resume/windowBytes', 'p.yaml:8', `<= ${MAX_RESUME_WINDOW_BYTES}`],
    [`{ windowMs: ${MAX_RESUME_WINDOW_MS + 1} }`, '/products/market/resume/windowMs', 'p.yaml:8', `<= ${MAX_RESUME_WINDOW_MS}`],
    ['{ bytes: 100 }', '/products/market/resume/bytes', 'p.yaml:8', 'unknown key'],
    ['1024', '/products/market/resume', 'p.yaml:8', 'object']
  ]
  for (const [resume, path, source, message] of cases) {
    const { policy, problems } = compilePolicy([{ file: 'p.yaml', text: policyText(resume) }])
    t.equal(policy, undefined, `resume: ${resume} refused`)
    t.ok(problems.some(p => p.path === path && p.source === source && p.message.includes(message)), `${path} (${source}): ${message}`, { problems })
  }
  const both = compilePolicy([{ file: 'p.yaml', text: policyText('{ windowBytes: -1 }', '{ windowMs: -5 }') }])
  t.same(both.problems.map(p => p.path).sort(), ['/products/archive/resume/windowMs', '/products/market/resume/windowBytes'], 'both products\' problems in one pass')
})
