import createError from '@fastify/error'
import type { WireErrorCode } from '@sluice/sessions'
import { wireCode } from '@sluice/stream'

// The compatibility route's error catalogue. Codes are never reused; tests
// assert on `code`. After the upgrade a client hears them in an error frame,
// {"error":{"code":"SLUICE_COMPAT_...","message":"..."}}, always a text frame
// (see README.md: why an old client ignores it safely).

// ---- refusals before the upgrade (HTTP) ----
export const WebSocketOnlyError = createError('SLUICE_COMPAT_WEBSOCKET_ONLY', '/v2/broker/ speaks WebSocket only', 426)
export const UnauthorizedError = createError('SLUICE_COMPAT_UNAUTHORIZED', 'Credentials required', 401)
export const BadQueryError = createError('SLUICE_COMPAT_BAD_QUERY', '%s', 400)
export const UnavailableError = createError('SLUICE_COMPAT_UNAVAILABLE', '%s', 503)

// ---- client frames ----
export const NotJsonError = createError('SLUICE_COMPAT_NOT_JSON', 'A kafka-text frame is a JSON object, {"topic":"t","message":"..."}: %s', 400)
export const MissingFieldError = createError('SLUICE_COMPAT_MISSING_FIELD', 'The frame has no "%s": a kafka-text frame is {"topic":"t","message":"..."}, with an optional "key"', 400)
export const BadFieldError = createError('SLUICE_COMPAT_BAD_FIELD', '"%s" must be %s', 400)
export const BadTopicError = createError('SLUICE_COMPAT_BAD_TOPIC', '"%s" is not a topic name ([a-zA-Z0-9._-], 1 to 249 characters)', 400)
export const ShortFrameError = createError('SLUICE_COMPAT_SHORT_FRAME', 'A kafka-binary frame is [1 byte: topic length][topic UTF-8][payload]; this one has %d bytes, fewer than its 1-byte header', 400)
export const LengthBeyondFrameError = createError('SLUICE_COMPAT_LENGTH_BEYOND_FRAME', 'The topic length byte says %d bytes but only %d follow it', 400)
export const BadBase64Error = createError('SLUICE_COMPAT_BAD_BASE64', 'Topic "%s" carries binary values: "message" must be base64', 400)

// ---- publishing ----
// subscribe (before the upgrade, or withdrawn by a policy change) or publish
export const ForbiddenError = createError('SLUICE_COMPAT_FORBIDDEN', '%s', 403)
export const RateLimitedError = createError('SLUICE_COMPAT_RATE_LIMITED', 'Rate limited: wait retryAfterMs before publishing again', 429)

// ---- transforms ----
export const TransformFailedError = createError('SLUICE_COMPAT_TRANSFORM_FAILED', 'The %s transform failed on this message: %s', 500)
export const TransformSlowError = createError('SLUICE_COMPAT_TRANSFORM_SLOW', 'The %s transform took %s ms on this message, over its budget of %d ms: the message is skipped', 503)
export const TransformDisabledError = createError('SLUICE_COMPAT_TRANSFORM_DISABLED', 'The %s transform is disabled for %d s after running over its time budget too often: its messages are skipped', 503)

// ---- delivery ----
// a kafka-binary frame names its topic in one length byte: a longer topic (only an output transform can make one) cannot be framed
export const TopicTooLongError = createError('SLUICE_COMPAT_TOPIC_TOO_LONG', 'Topic "%s" is %d bytes in UTF-8; a kafka-binary frame holds at most 255: the record is not sent', 500)
export const LaggingError = createError('SLUICE_COMPAT_LAGGING', 'This socket fell behind on "%s": %d records were skipped; it receives the topic live again from now on', 503)

export const InternalError = createError('SLUICE_COMPAT_INTERNAL', 'internal error', 500)

// publish refusals of this catalogue as docs/design.md's codes, so that /metrics counts both routes' errors alike
const WIRE: Record<string, WireErrorCode> = {
  SLUICE_COMPAT_BAD_BASE64: 'BAD_REQUEST',
  SLUICE_COMPAT_FORBIDDEN: 'FORBIDDEN',
  SLUICE_COMPAT_RATE_LIMITED: 'RATE_LIMITED',
  SLUICE_COMPAT_TRANSFORM_FAILED: 'INTERNAL',
  SLUICE_COMPAT_TRANSFORM_SLOW: 'UNAVAILABLE',
  SLUICE_COMPAT_TRANSFORM_DISABLED: 'UNAVAILABLE'
}

/** A publish refusal's code among docs/design.md's (the Kafka module's codes map as on /v1/stream). */
export function publishWireCode (err: unknown): WireErrorCode {
  const code = (err as { code?: unknown })?.code
  return (typeof code === 'string' && WIRE[code]) || wireCode(err)
}

/**
 * The codes an error frame may carry as they are: this catalogue's, the Kafka module's, and
 * any other catalogued SLUICE_ code that is not a 500 (a rate limiter failing closed, a hub
 * closing, a policy not loaded): those are conditions, not bugs. undefined: a bug (INTERNAL).
 */
export function frameCode (err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code
  if (typeof code !== 'string') return undefined
  if (code.startsWith('SLUICE_COMPAT_') || code.startsWith('SLUICE_KAFKA_')) return code
  const status = (err as { statusCode?: unknown }).statusCode
  return code.startsWith('SLUICE_') && typeof status === 'number' && status !== 500 ? code : undefined
}
