import createError from '@fastify/error'

// The portal's error catalogue.
export const PortalNotFoundError = createError('SLUICE_PORTAL_NOT_FOUND', 'No portal file "%s"', 404)
// sign-in (src/sign-in.ts): each refusal says what to do next
export const PortalSignInDisabledError = createError('SLUICE_PORTAL_SIGN_IN_DISABLED', 'This gateway has no portal sign-in (portal.oidc is not configured)', 404)
export const PortalIssuerUnavailableError = createError('SLUICE_PORTAL_ISSUER_UNAVAILABLE', 'The sign-in provider %s could not be reached: %s', 502)
export const PortalSignInStateError = createError('SLUICE_PORTAL_SIGN_IN_STATE', 'This sign-in cannot be completed (%s): start again from the portal\'s Sign in', 400)
export const PortalSignInFailedError = createError('SLUICE_PORTAL_SIGN_IN_FAILED', 'The sign-in provider\'s answer was refused: %s', 401)
export const PortalSessionInvalidError = createError('SLUICE_PORTAL_SESSION_INVALID', 'The portal session cookie is %s: sign in again', 401)
export const PortalCrossOriginError = createError('SLUICE_PORTAL_CROSS_ORIGIN', 'A request with the portal session must come from the portal\'s origin %s (it came from %s)', 403)
