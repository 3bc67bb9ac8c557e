// A refused in-band renewal ({"op":"auth","token":"x"}) answered INTERNAL, wrote
// a ~1.2 KB error line with a stack per frame, and did not count against the
// invalid-frame allowance (2,000 such frames: 2.4 MB of error log, socket still
// open). It is the client's mistake: UNAUTHORIZED, one short line, and a flood
// closes the socket with 1008 like any flood of bad frames.
import { test } from 'tap'
import { JwksServer, nowSeconds } from '../jwks-server.ts'
import { liveGateway } from '../harness/live-route.ts'

test('a refused renewal is UNAUTHORIZED, logs one short line, and a flood of them closes with 1008', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const key = idp.addKey('RS256')
  const gw = await liveGateway({
    captureLogs: true,
    config: { auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: idp.issuer, algorithms: ['RS256'], jwksUri: idp.jwksUri }] } } }
  })
  t.teardown(() => gw.app.close())
  const token = idp.token(key, { sub: 'alice', roles: ['reader'], scope: 'prices', exp: nowSeconds() + 600 })
  const client = gw.wsAt('/v1/stream', '', { protocols: ['sluice.v1'], headers: { authorization: `Bearer ${token}` } })
  await client.opened

  const before = gw.logs.length
  for (const id of ['r1', 'r2', 'r3']) {
    client.send({ op: 'auth', id, token: 'x' })
    t.match(await client.next(f => f.id === id), { op: 'error', code: 'UNAUTHORIZED' }, `${id}: UNAUTHORIZED, not INTERNAL`)
  }
  const lines = gw.logs.slice(before).filter(line => /renewal|stream frame failed/.test(line))
  t.equal(lines.length, 3, 'one line per refusal')
  for (const line of lines) {
    const entry = JSON.parse(line) as { level: number, err?: unknown }
    t.ok(entry.level < 50, 'below error level')
    t.equal(entry.err, undefined, 'no error object, so no stack')
    t.ok(line.length < 400, `short (${line.length} bytes)`)
  }

  // the invalid-frame allowance (a burst of 20) counts them: a flood ends the socket
  for (let i = 0; i < 30; i++) client.send({ op: 'auth', id: `f${i}`, token: 'x' })
  const closed = await client.closed
  t.equal(closed.code, 1008, 'closed as a policy violation')
})
