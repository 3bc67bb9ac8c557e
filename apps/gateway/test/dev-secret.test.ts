// The credentials `sluice dev` makes up and prints: a developer pastes them after an option
// (`sluice keys issue --admin-token <admin>`), so none may read as an option itself.
import { test } from 'tap'
import { parseArgs } from 'node:util'
import { devSecret } from '../src/dev.ts'

test('a dev credential never begins with "-", and goes after --admin-token as the CLI parses it', async t => {
  const seen = new Set<string>()
  let refused = 0
  let notHex = 0
  // in base64url one in 64 began with "-": 10,000 of them all pass by chance with a probability near e^-156
  for (let i = 0; i < 10_000; i++) {
    const secret = devSecret()
    seen.add(secret)
    if (!/^[0-9a-f]{48}$/.test(secret)) notHex++
    try {
      const { values } = parseArgs({ args: ['--admin-token', secret], options: { 'admin-token': { type: 'string' } } })
      if (values['admin-token'] !== secret) refused++
    } catch {
      refused++
    }
  }
  t.equal(refused, 0, 'parseArgs took every one as the option\'s value')
  t.equal(notHex, 0, '48 hex digits each')
  t.equal(seen.size, 10_000, '192 random bits each: no two alike')
})
