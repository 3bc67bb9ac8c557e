import createError from '@fastify/error'

// The docs' error catalogue. Codes are never reused; tests assert on `code`.
// SLUICE_DOCS_NOT_FOUND is the public catalogue's contract with the portal (issue 8).
export const NotFoundError = createError('SLUICE_DOCS_NOT_FOUND', '%s not found', 404)
