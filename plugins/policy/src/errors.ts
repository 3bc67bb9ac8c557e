import createError from '@fastify/error'

// The policy plugin's error catalogue. Codes are never reused; tests assert on `code`.
export const PolicyInvalidError = createError('SLUICE_POLICY_INVALID', 'The policy is invalid: %d problem(s)', 422)
export const PolicyNotLoadedError = createError('SLUICE_POLICY_NOT_LOADED', 'No valid policy loaded from %s%s', 503)
// at start only: a directory that vanishes later (a ConfigMap swap) keeps the last good policy instead
export const PolicyDirMissingError = createError('SLUICE_POLICY_DIR_MISSING', 'No policy directory at %s: %s. Set policy.dir (SLUICE_POLICY_DIR) to the directory of the *.yaml policy files', 500)
