// Dev mode's and the tests' OpenID Connect provider: oidc-provider (a
// certified OP) on a loopback port, with one client, the portal, and one
// developer, demo@sluice.dev. Its login page is oidc-provider's development
// one, which takes any password: this provider exists only where everything
// else is local too (`npm run dev`, the test suites), never in a deployment.
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import Provider from 'oidc-provider'

export const DEMO_DEVELOPER = { email: 'demo@sluice.dev', name: 'Demo Developer' }
export const DEV_CLIENT_ID = 'sluice-portal'

export interface DevIssuer {
  /** the issuer URL, http://127.0.0.1:<port> */
  issuer: string
  /** the password to print: the development login page takes any */
  password: string
  close (): Promise<void>
}

export interface DevIssuerOptions {
  /** the portal's callback, e.g. http://localhost:8080/portal/callback */
  redirectUrl: string
  /** 0: a free port */
  port?: number
}

/** Starts the provider; resolves once it listens. */
export async function startDevIssuer (options: DevIssuerOptions): Promise<DevIssuer> {
  const { createServer } = await import('node:http')
  // the port is part of the issuer, which must be known before the provider is built: bind first
  const server: Server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const provider = new Provider(issuer, {
    clients: [{
      client_id: DEV_CLIENT_ID,
      // a public client: PKCE binds the code to the browser that started the sign-in
      token_endpoint_auth_method: 'none',
      redirect_uris: [options.redirectUrl],
      grant_types: ['authorization_code'],
      response_types: ['code']
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // the one developer; any other login is refused by the provider ("account not found")
    async findAccount (_ctx, sub) {
      if (sub !== DEMO_DEVELOPER.email) return undefined
      return {
        accountId: sub,
        async claims () {
          return { sub, email: DEMO_DEVELOPER.email, email_verified: true, name: DEMO_DEVELOPER.name }
        }
      }
    },
    // the portal is this organisation's own application: no consent page after the login
    async loadExistingGrant (ctx) {
      const existing = ctx.oidc.session?.grantIdFor(ctx.oidc.client!.clientId)
      if (existing) return ctx.oidc.provider.Grant.find(existing)
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! })
      grant.addOIDCScope('openid email profile')
      await grant.save()
      return grant
    },
    // fresh keys each start: nothing signed by a previous run is trusted
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true }
  })
  server.on('request', provider.callback())
  return {
    issuer,
    password: 'any',
    close: () => new Promise<void>(resolve => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}
