import createError from '@fastify/error'

// The apps plugin's error catalogue (developer API and its admin routes). Codes are never reused; tests assert on `code`.
export const AppsDeveloperRequiredError = createError('SLUICE_APPS_DEVELOPER_REQUIRED', 'The developer API needs a developer\'s credential (a JWT of a trusted issuer), not %s', 403)
export const AppsBadRequestError = createError('SLUICE_APPS_BAD_REQUEST', 'Bad request: %s', 400)
export const AppsNotFoundError = createError('SLUICE_APPS_NOT_FOUND', '%s not found', 404)
export const AppsUnavailableError = createError('SLUICE_APPS_UNAVAILABLE', 'Applications need Redis: configure redis.url', 503)
export const AppsRedisUnavailableError = createError('SLUICE_APPS_REDIS_UNAVAILABLE', 'Redis did not answer; retry later', 503)
export const AppsUnknownProductError = createError('SLUICE_APPS_UNKNOWN_PRODUCT', 'The policy has no product "%s"', 422)
export const AppsUnknownPlanError = createError('SLUICE_APPS_UNKNOWN_PLAN', 'Product "%s" offers no plan "%s"', 422)
export const AppsAlreadySubscribedError = createError('SLUICE_APPS_ALREADY_SUBSCRIBED', 'The application already has plan "%s" of product "%s"', 409)
export const AppsSubscriptionPendingError = createError('SLUICE_APPS_SUBSCRIPTION_PENDING', 'A subscription to product "%s" is already waiting for approval', 409)
export const AppsNoActiveSubscriptionError = createError('SLUICE_APPS_NO_ACTIVE_SUBSCRIPTION', 'The application has no active subscription%s: subscribe it to a plan first (a manual plan waits for an admin\'s approval)', 409)
export const AppsProductRequiredError = createError('SLUICE_APPS_PRODUCT_REQUIRED', 'The application is subscribed to several products: name the key\'s product', 422)
export const AppsTooManyApplicationsError = createError('SLUICE_APPS_TOO_MANY_APPLICATIONS', 'A developer has at most %s applications', 409)
export const AppsTooManyKeysError = createError('SLUICE_APPS_TOO_MANY_KEYS', 'An application has at most %s keys: revoke one first', 409)
export const AppsNotPendingError = createError('SLUICE_APPS_NOT_PENDING', 'Subscription %s is %s, not pending', 409)
export const AppsUsageDisabledError = createError('SLUICE_APPS_USAGE_DISABLED', 'Usage is not metered on this gateway (usage.enabled, and Redis)', 404)
export const AppsInternalError = createError('SLUICE_APPS_INTERNAL', 'Internal error', 500)
