import createError from '@fastify/error'

// The rate-limit plugin's error catalogue. Codes are never reused; tests
// assert on `code`. Refusals before the upgrade carry a Retry-After header.
export const RateTooManyConnectionsError = createError('SLUICE_RATE_CONNECTIONS', 'Too many concurrent connections for this subject and plan (%s); close one or retry later', 429)
export const RateConnectsPerMinuteError = createError('SLUICE_RATE_CONNECTS', 'Too many new connections per minute for this subject and plan (%s); retry later', 429)
export const RateHttpLimitedError = createError('SLUICE_RATE_HTTP', 'Too many requests; retry in %s', 429)
export const RateUnavailableError = createError('SLUICE_RATE_UNAVAILABLE', 'Rate limits cannot be checked now and this gateway fails closed; retry later', 503)
