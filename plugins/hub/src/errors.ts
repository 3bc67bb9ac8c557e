import createError from '@fastify/error'

// The hub's error catalogue. Codes are never reused; tests assert on `code`.
export const BadCursorError = createError('SLUICE_HUB_BAD_CURSOR', 'Invalid cursor: %s', 400)
export const HubClosedError = createError('SLUICE_HUB_CLOSED', 'The hub is closing', 503)
