import createError from '@fastify/error'

// The portal's error catalogue.
export const PortalNotFoundError = createError('SLUICE_PORTAL_NOT_FOUND', 'No portal file "%s"', 404)
