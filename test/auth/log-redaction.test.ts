// A credential passed in the query (as browsers must) never reaches the logs:
// every log line of the gateway, at trace level, is captured and searched for
// the tokens and for their signatures, on accepted and refused upgrades alike.
import { test } from 'tap'
import { JwksServer, nowSeconds } from '../jwks-server.ts'
import { liveGateway } from '../harness/live-route.ts'
import { refusal } from '../harness/client.ts'

const DEV_TOKEN = 'dev-token-that-must-not-be-logged-0123456789'

test('query-string credentials never appear in the logs', async t => {
  const idp = await new JwksServer().start()
  t.teardown(() => idp.stop())
  const key = idp.addKey('RS256')
  const gw = await liveGateway({
    captureLogs: true,
    config: {
      dev: { token: DEV_TOKEN },
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: idp.issuer, algorithms: ['RS256'], jwksUri: idp.jwksUri }] } }
    }
  })
  t.teardown(() => gw.app.close())

  const valid = idp.token(key)
  const expired = idp.token(key, { iat: nowSeconds() - 600, exp: nowSeconds() - 60 })
  const forged = idp.token(key, { aud: 'someone-else' })
  const apiKey = 'sk_0123456789abcdef_' + 'S'.repeat(43)
  const secrets = [valid, expired, forged, DEV_TOKEN, apiKey]

  const accepted = gw.ws(`?topics=prices.btc&access_token=${valid}`)
  await accepted.opened
  await accepted.next(f => f.op === 'welcome')
  const dev = gw.ws(`?access_token=${DEV_TOKEN}&from=latest`)
  await dev.opened
  t.equal((await refusal(gw.ws(`?access_token=${expired}`))).body.error?.code, 'SLUICE_AUTH_EXPIRED')
  t.equal((await refusal(gw.ws(`?access_token=${forged}`))).body.error?.code, 'SLUICE_AUTH_INVALID_TOKEN')
  t.equal((await refusal(gw.ws(`?api_key=${apiKey}`))).body.error?.code, 'SLUICE_AUTH_API_KEYS_DISABLED')
  t.equal((await refusal(gw.ws(`?access_token=${valid}&access_token=${expired}`))).body.error?.code, 'SLUICE_AUTH_AMBIGUOUS')
  // the subprotocol and header forms, for completeness
  const viaProtocol = gw.wsAt(gw.protocolPath, '', { protocols: ['sluice.v1', `bearer.${valid}`] })
  await viaProtocol.opened
  t.equal((await refusal(gw.ws('', { protocols: ['sluice.v1', `bearer.${forged}`] }))).status, 401)
  accepted.close()
  dev.close()
  viaProtocol.close()
  await Promise.all([accepted.closed, dev.closed, viaProtocol.closed])

  const logs = gw.logs.join('\n')
  t.ok(gw.logs.length > 10, `the logs were captured (${gw.logs.length} lines)`)
  t.match(logs, 'access_token=[REDACTED]', 'the request lines are there, redacted')
  t.match(logs, 'SLUICE_AUTH_EXPIRED', 'refusals are logged with their code')
  for (const secret of secrets) {
    t.notOk(logs.includes(secret), 'a credential is not in the logs')
    // a JWT's signature (or the key's secret part) alone would be enough to replay it
    const tail = secret.slice(secret.lastIndexOf(secret.startsWith('sk_') ? '_' : '.') + 1)
    if (tail.length >= 16) t.notOk(logs.includes(tail), 'nor its signature / secret part')
  }
})
