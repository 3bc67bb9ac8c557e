// The servers Autobahn's fuzzing client tests side by side:
// - a bare `ws` server, the same ws the gateway runs, with the routes' limits
//   (maxPayload = stream.maxFrameBytes, 1 MiB; permessage-deflate off), that
//   reads and discards every message: the routes echo nothing either, so the
//   cases that expect an echo fail alike and the rest compare like for like;
// - the real gateway (buildApp) with a JWT issuer, whose /v1/stream and
//   /v2/broker/ are reached with `?access_token=<jwt>`: the fuzzing client
//   cannot set headers.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { startGateway } from '../harness/gateway.ts'
import { nowSeconds, signJwt } from '../jwks-server.ts'
import { AGENTS } from './autobahn-report.ts'

/** the gateway's default stream.maxFrameBytes (apps/gateway/src/config.ts) */
export const MAX_PAYLOAD = 1024 * 1024

export interface Testee {
  /** the agent name in Autobahn's reports */
  agent: string
  url: string
}

export interface Testees {
  testees: Testee[]
  close: () => Promise<void>
}

export async function bareWs (): Promise<{ url: string, close: () => Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX_PAYLOAD, perMessageDeflate: false })
  server.on('connection', socket => {
    socket.on('message', () => {})
    // ws closes with the error's code by itself; a listener keeps the error from being thrown
    socket.on('error', () => {})
  })
  await new Promise<void>(resolve => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () => new Promise<void>(resolve => {
      for (const client of server.clients) client.terminate()
      server.close(() => resolve())
    })
  }
}

const SECRET = 'autobahn-conformance-hs256-secret-0123456789'
const SUBJECT = 'autobahn'
// one fuzzing run opens about 500 sockets per route within two minutes: far from any plan's real limits,
// and the suite is about framing, not about limits
const POLICY = `
version: 1
plans:
  conformance:
    limits: { connections: 1000, connectsPerMinute: 100000, deliveredPerSecond: 100000, publishedPerSecond: 100000, bytesPerSecond: 1000000000, dailyQuota: 1000000000 }
products:
  conformance:
    plans: [conformance]
    topics:
      - pattern: autobahn.*
        encoding: json
rules:
  - name: conformance
    product: conformance
    plan: conformance
    subscribe: ['autobahn.*']
    publish: ['autobahn.*']
`

/** The gateway as built for production, with a JWT issuer and the policy above; everything else at its defaults. */
export async function gateway (): Promise<{ url: string, token: string, close: () => Promise<void> }> {
  const policyDir = await mkdtemp(join(tmpdir(), 'sluice-autobahn-'))
  await writeFile(join(policyDir, 'policy.yaml'), POLICY)
  const { app, wsUrl } = await startGateway({
    policyDir,
    config: {
      auth: { jwt: { audience: ['sluice'], issuers: [{ issuer: 'conformance', algorithms: ['HS256'], secret: SECRET }] } },
      rateLimit: { http: { upgrade: { max: 100_000 } } }
    }
  })
  // an hour: the run takes minutes
  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { iss: 'conformance', aud: 'sluice', sub: SUBJECT, exp: nowSeconds() + 3600 }, SECRET)
  return {
    url: wsUrl,
    token,
    close: async () => {
      await app.close()
      await rm(policyDir, { recursive: true, force: true })
    }
  }
}

/** The three testees, started; `close` stops them. */
export async function startTestees (): Promise<Testees> {
  const bare = await bareWs()
  let gw
  try {
    gw = await gateway()
  } catch (err) {
    await bare.close()
    throw err
  }
  const credential = `access_token=${encodeURIComponent(gw.token)}`
  return {
    testees: [
      { agent: AGENTS.bare, url: `${bare.url}/` },
      { agent: AGENTS.stream, url: `${gw.url}/v1/stream?${credential}` },
      { agent: AGENTS.broker, url: `${gw.url}/v2/broker/?${credential}` }
    ],
    close: async () => {
      await gw.close()
      await bare.close()
    }
  }
}
