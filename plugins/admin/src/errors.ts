import createError from '@fastify/error'

// The admin API's error catalogue. Codes are never reused; tests assert on `code`.
export const AdminUnauthorizedError = createError('SLUICE_ADMIN_UNAUTHORIZED', 'The admin API needs Authorization: Bearer <admin token>', 401)
export const AdminBadRequestError = createError('SLUICE_ADMIN_BAD_REQUEST', 'Bad request: %s', 400)
export const AdminNotFoundError = createError('SLUICE_ADMIN_NOT_FOUND', '%s not found', 404)
export const AdminApiKeysUnavailableError = createError('SLUICE_ADMIN_API_KEYS_UNAVAILABLE', 'API keys need Redis: configure redis.url', 503)
export const AdminRedisUnavailableError = createError('SLUICE_ADMIN_REDIS_UNAVAILABLE', 'Redis did not answer; retry later', 503)
export const AdminUnknownProductError = createError('SLUICE_ADMIN_UNKNOWN_PRODUCT', 'The policy has no product "%s"', 422)
export const AdminUnknownPlanError = createError('SLUICE_ADMIN_UNKNOWN_PLAN', 'Product "%s" offers no plan "%s"', 422)
export const AdminTopicNotInProductError = createError('SLUICE_ADMIN_TOPIC_NOT_IN_PRODUCT', 'No product of the policy has these topics: %s (add them to a product first)', 422)
export const AdminInternalError = createError('SLUICE_ADMIN_INTERNAL', 'Internal error', 500)
