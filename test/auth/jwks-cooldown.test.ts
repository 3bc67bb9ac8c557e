// An OAuth issuer's JWKS is fetched at most once per cooldown however many
// unknown kids arrive (1,000 random ones here), concurrent lookups share one
// fetch, valid tokens keep verifying meanwhile, and a rotated key works after
// exactly one refetch. A real JWKS server counts the fetches.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { JwksServer } from '../jwks-server.ts'
import { liveGateway, WHOAMI_PATH } from '../harness/live-route.ts'

const COOLDOWN_MS = 2000
// The JWKS server shares this process's event loop with the gateway, so under a
// 1,000-request storm it notes a fetch up to a few hundred ms after the gateway
// started it; gaps between its timestamps carry that error.
const CLOCK_SLACK_MS = 750
const STORM = 1000
const BATCH = 100

test('unknown kids cannot make the gateway hammer the JWKS', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const key = idp.addKey('RS256')
  const gw = await liveGateway({
    config: {
      auth: {
        jwt: {
          audience: ['sluice'],
          issuers: [{ issuer: idp.issuer, algorithms: ['RS256', 'ES256'], jwksUri: idp.jwksUri }],
          // generous: the JWKS server shares this process, which a storm keeps busy
          jwks: { cooldownMs: COOLDOWN_MS, timeoutMs: 10_000 }
        }
      }
    }
  })
  t.teardown(() => gw.app.close())

  const call = (token: string) => gw.app.inject({ method: 'GET', url: WHOAMI_PATH, headers: { authorization: `Bearer ${token}` } })
  const gapsRespectCooldown = () => idp.fetchTimes.every((at, i) => i === 0 || at - idp.fetchTimes[i - 1]! >= COOLDOWN_MS - CLOCK_SLACK_MS)

  const runStarted = performance.now()
  const first = await call(idp.token(key))
  t.equal(first.statusCode, 200, 'a valid token verifies')
  t.equal(idp.fetches, 1, 'the first token fetched the JWKS once')

  // Tokens are signed before they are sent: 1,000 RSA signatures block the
  // event loop for seconds on a busy machine, which would stall the gateway's
  // own JWKS fetch (same process) rather than test it.
  const unknownKids = (n: number) => Array.from({ length: n }, () => idp.token(key, {}, { kid: randomBytes(8).toString('hex') }))

  // a storm of unknown kids, with valid tokens in between, in the first cooldown and past it
  async function storm (): Promise<{ elapsed: number, refused: Set<string>, valid: number[] }> {
    const tokens = unknownKids(STORM)
    const goods = Array.from({ length: STORM / BATCH }, () => idp.token(key))
    const started = performance.now()
    const refused = new Set<string>()
    const valid: number[] = []
    for (let i = 0; i < STORM; i += BATCH) {
      const batch = tokens.slice(i, i + BATCH).map(call)
      const good = call(goods[i / BATCH]!)
      for (const res of await Promise.all(batch)) refused.add(`${res.statusCode} ${res.json().error?.code}`)
      valid.push((await good).statusCode)
    }
    return { elapsed: performance.now() - started, refused, valid }
  }

  const before = idp.fetches
  const one = await storm()
  t.same([...one.refused], ['401 SLUICE_AUTH_UNKNOWN_KEY'], 'every unknown kid is refused')
  t.ok(one.valid.every(s => s === 200), 'valid tokens kept verifying during the storm')
  t.ok(idp.fetches - before <= Math.ceil(one.elapsed / COOLDOWN_MS), `at most one fetch per cooldown: ${idp.fetches - before} fetches in ${Math.round(one.elapsed)} ms`)
  t.ok(gapsRespectCooldown(), 'no two fetches closer than the cooldown')

  // past the cooldown, 1,000 concurrent unknown kids share a single fetch
  const concurrent = unknownKids(STORM)
  await new Promise(resolve => setTimeout(resolve, COOLDOWN_MS + 100))
  const concurrentBefore = idp.fetches
  const started = performance.now()
  const all = await Promise.all(concurrent.map(call))
  const elapsed = performance.now() - started
  t.ok(all.every(r => r.statusCode === 401), 'all refused')
  t.ok(idp.fetches - concurrentBefore >= 1, 'the cooldown had passed: one refetch')
  t.ok(idp.fetches - concurrentBefore <= Math.ceil(elapsed / COOLDOWN_MS), `single-flight: ${idp.fetches - concurrentBefore} fetches for ${STORM} concurrent lookups in ${Math.round(elapsed)} ms`)
  t.ok(gapsRespectCooldown(), 'no two fetches closer than the cooldown')

  // key rotation: the IdP publishes a new key and retires the old
  const rotated = idp.addKey('ES256')
  idp.removeKey(key.kid)
  const rotationBefore = idp.fetches
  let status = 0
  const deadline = Date.now() + COOLDOWN_MS * 3
  while (status !== 200 && Date.now() < deadline) {
    status = (await call(idp.token(rotated))).statusCode
    if (status !== 200) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.equal(status, 200, 'a token signed with the rotated key verifies')
  t.equal(idp.fetches - rotationBefore, 1, 'after exactly one refetch')
  const again = await Promise.all(Array.from({ length: 20 }, () => call(idp.token(rotated))))
  t.ok(again.every(r => r.statusCode === 200), 'the rotated key keeps verifying')
  t.equal(idp.fetches - rotationBefore, 1, 'and no more fetches for the now-known key')
  t.equal((await call(idp.token(key))).json().error.code, 'SLUICE_AUTH_UNKNOWN_KEY', 'the retired key no longer verifies')
  const run = performance.now() - runStarted
  t.ok(gapsRespectCooldown(), 'no two fetches closer than the cooldown, over the whole run')
  t.ok(idp.fetches <= 1 + Math.ceil(run / COOLDOWN_MS), `${idp.fetches} fetches in ${Math.round(run)} ms, ${2 * STORM + 30} tokens: at most one per cooldown`)
})
