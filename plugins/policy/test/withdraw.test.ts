// After a reload, which live sessions are unsubscribed and which closed:
// pure logic over fake sessions (live sockets: test/policy/hot-reload.test.ts).
import { test } from 'tap'
import type { Identity } from '@sluice/protocol/identity'
import { compilePolicy } from '../src/compile.ts'
import { withdrawAccess, type PolicySession } from '../src/withdraw.ts'

const LIMITS = '{ connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }'
const policy = compilePolicy([{
  file: 'p.yaml',
  text: `
plans: { free: { limits: ${LIMITS} } }
products: { m: { plans: [free], topics: [{ pattern: 'a.*' }, { pattern: 'b.*' }] } }
rules:
  - { name: gold, product: m, plan: free, match: { claims: { tier: gold } }, subscribe: ['a.*'] }
`
}]).policy!

function session (claims: Record<string, unknown>, topics: string[]) {
  const log: unknown[] = []
  const s: PolicySession & { log: unknown[] } = {
    identity: { kind: 'jwt', subject: String(claims.sub), claims } as Identity,
    log,
    topics: () => topics,
    unsubscribe: (t, code, message) => { log.push(['unsubscribe', t, code, message]) },
    close: (code, reason) => { log.push(['close', code, reason]) }
  }
  return s
}

test('withdrawal', async t => {
  const keeps = session({ sub: 'a', tier: 'gold' }, ['a.1'])
  const loses = session({ sub: 'b', tier: 'gold' }, ['a.1', 'b.1'])
  const nothing = session({ sub: 'c' }, ['a.1'])
  const idle = session({ sub: 'd' }, [])
  t.same(withdrawAccess([keeps, loses, nothing, idle], policy), { closed: 2, unsubscribed: 1 })
  t.same(keeps.log, [])
  t.same(loses.log, [['unsubscribe', ['b.1'], 'FORBIDDEN', 'access withdrawn by a policy change']])
  t.same(nothing.log, [['close', 4003, 'access withdrawn by a policy change']])
  t.same(idle.log, [['close', 4003, 'access withdrawn by a policy change']], 'no access at all, even with nothing subscribed')
})
