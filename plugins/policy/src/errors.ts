import createError from '@fastify/error'

// The policy plugin's error catalogue. Codes are never reused; tests assert on `code`.
export const PolicyInvalidError = createError('SLUICE_POLICY_INVALID', 'The policy is invalid: %d problem(s)', 422)
export const PolicyNotLoadedError = createError('SLUICE_POLICY_NOT_LOADED', 'No valid policy is loaded', 503)
