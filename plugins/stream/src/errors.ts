import createError from '@fastify/error'
import type { WireErrorCode } from '@sluice/sessions'

// The stream API's error catalogue. `wire` is the code a client sees in an
// `error` frame (docs/design.md's list); the SLUICE_ code names the exact cause.
export const BadRequestError = createError('SLUICE_STREAM_BAD_REQUEST', '%s', 400)
export const ForbiddenTopicError = createError('SLUICE_STREAM_FORBIDDEN', 'Not allowed to %s "%s": %s', 403)
export const RateLimitedError = createError('SLUICE_STREAM_RATE_LIMITED', 'Rate limited: wait retryAfterMs before publishing again', 429)
export const GroupModeError = createError('SLUICE_STREAM_GROUP_MODE', 'A group session subscribes to the topics it opened with; open another socket for other topics', 400)

const BY_CODE: Record<string, WireErrorCode> = {
  SLUICE_STREAM_BAD_REQUEST: 'BAD_REQUEST',
  SLUICE_STREAM_GROUP_MODE: 'BAD_REQUEST',
  SLUICE_HUB_BAD_CURSOR: 'BAD_REQUEST',
  SLUICE_STREAM_FORBIDDEN: 'FORBIDDEN',
  SLUICE_STREAM_RATE_LIMITED: 'RATE_LIMITED',
  SLUICE_KAFKA_UNKNOWN_TOPIC: 'UNKNOWN_TOPIC',
  SLUICE_KAFKA_TOO_LARGE: 'TOO_LARGE',
  SLUICE_KAFKA_UNAVAILABLE: 'UNAVAILABLE',
  SLUICE_KAFKA_TIMEOUT: 'UNAVAILABLE',
  SLUICE_KAFKA_CLOSED: 'UNAVAILABLE',
  SLUICE_HUB_CLOSED: 'UNAVAILABLE'
}

// Any other catalogued error (a SLUICE_ code from @fastify/error, with its HTTP status) is
// the client's or a dependency's, by its status: only an uncatalogued throw is INTERNAL.
const BY_STATUS: Record<number, WireErrorCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'UNKNOWN_TOPIC',
  413: 'TOO_LARGE',
  429: 'RATE_LIMITED',
  503: 'UNAVAILABLE'
}

export function wireCode (err: unknown): WireErrorCode {
  const code = (err as { code?: string })?.code
  if (code && BY_CODE[code]) return BY_CODE[code]
  if (code === 'FST_ERR_RATE_LIMITED') return 'RATE_LIMITED'
  if (typeof code === 'string' && code.startsWith('SLUICE_')) return BY_STATUS[(err as { statusCode?: number }).statusCode ?? 0] ?? 'INTERNAL'
  return 'INTERNAL'
}
