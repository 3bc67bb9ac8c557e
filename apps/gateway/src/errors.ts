import createError from '@fastify/error'

// The gateway process's own catalogue (its plugins have theirs).
export const DevPortInUseError = createError('SLUICE_DEV_PORT_IN_USE', 'port %d is in use (another sluice dev, or another server): stop it, or run `sluice dev --port <a free port>`', 500)
