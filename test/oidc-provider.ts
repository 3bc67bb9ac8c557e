// The local OpenID Connect provider for the suites, the one dev mode runs
// (@sluice/portal/dev-issuer: oidc-provider, client sluice-portal, one
// developer demo@sluice.dev), on a free loopback port, closed with the test.
import type { Test } from 'tap'
import { DEMO_DEVELOPER, DEV_CLIENT_ID, startDevIssuer, type DevIssuer } from '@sluice/portal/dev-issuer'

export { DEMO_DEVELOPER, DEV_CLIENT_ID }

/** A provider whose one client redirects to `redirectUrl` (the gateway's /portal/callback). */
export async function oidcProvider (t: Test, redirectUrl: string): Promise<DevIssuer> {
  const issuer = await startDevIssuer({ redirectUrl })
  t.teardown(() => issuer.close())
  return issuer
}

/** The gateway's portal.oidc section for that provider. */
export function portalOidc (issuer: DevIssuer, redirectUrl: string, cookieSecret: string): Record<string, unknown> {
  return { issuer: issuer.issuer, clientId: DEV_CLIENT_ID, redirectUrl, cookieSecret }
}
