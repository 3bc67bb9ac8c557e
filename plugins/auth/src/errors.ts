import createError from '@fastify/error'

// The auth plugin's error catalogue. Codes are never reused; tests assert on
// `code`. Messages are generic on purpose: the reason a token failed goes to the
// log (without the token), not to the client.
export const AuthMissingError = createError('SLUICE_AUTH_MISSING', 'Credentials are required: Authorization: Bearer, X-API-Key, the bearer.<token> subprotocol, or access_token / api_key', 401)
export const AuthAmbiguousError = createError('SLUICE_AUTH_AMBIGUOUS', 'More than one credential was presented; send exactly one', 401)
export const AuthMalformedError = createError('SLUICE_AUTH_MALFORMED', 'The credential is malformed', 401)
export const AuthInvalidTokenError = createError('SLUICE_AUTH_INVALID_TOKEN', 'The token is invalid', 401)
export const AuthExpiredError = createError('SLUICE_AUTH_EXPIRED', 'The credential has expired', 401)
export const AuthUntrustedIssuerError = createError('SLUICE_AUTH_UNTRUSTED_ISSUER', 'The token issuer is not trusted', 401)
export const AuthUnknownKeyError = createError('SLUICE_AUTH_UNKNOWN_KEY', 'The token was signed with a key the issuer does not publish', 401)
export const AuthKeysUnavailableError = createError('SLUICE_AUTH_KEYS_UNAVAILABLE', 'The issuer keys cannot be fetched now; retry later', 503)
export const AuthInvalidApiKeyError = createError('SLUICE_AUTH_INVALID_API_KEY', 'The API key is invalid, expired or revoked', 401)
export const AuthApiKeysDisabledError = createError('SLUICE_AUTH_API_KEYS_DISABLED', 'API keys are not available on this gateway: it has no Redis configured', 401)
export const AuthUnavailableError = createError('SLUICE_AUTH_UNAVAILABLE', 'Credentials cannot be checked now; retry later', 503)
export const AuthOriginForbiddenError = createError('SLUICE_AUTH_ORIGIN_FORBIDDEN', 'This Origin is not allowed', 403)
export const AuthRenewRefusedError = createError('SLUICE_AUTH_RENEW_REFUSED', 'Token renewal refused: %s', 401)

/** Errors of this catalogue carry a `SLUICE_AUTH_` code and an HTTP status. */
export function isAuthError (err: unknown): err is Error & { code: string, statusCode: number } {
  const code = (err as { code?: unknown } | undefined)?.code
  return err instanceof Error && typeof code === 'string' && code.startsWith('SLUICE_AUTH_')
}
