import createError from '@fastify/error'

// The ingest connector's error catalogue. Codes are never reused; tests assert
// on `code`. Messages never carry a feed's URL query, headers, token or
// subscription messages: they name the feed, and the feed's host at most.
export const FeedHandshakeRejectedError = createError('SLUICE_INGEST_HANDSHAKE_REJECTED', 'Feed "%s" refused the WebSocket upgrade with HTTP %s', 502)
export const FeedConnectTimeoutError = createError('SLUICE_INGEST_CONNECT_TIMEOUT', 'Feed "%s" did not complete the opening handshake within %d ms', 504)
export const FeedConnectionError = createError('SLUICE_INGEST_CONNECTION_FAILED', 'Feed "%s": connection failed: %s', 502)
export const FeedFrameTooLargeError = createError('SLUICE_INGEST_FRAME_TOO_LARGE', 'Feed "%s" sent a frame over the %d-byte limit', 413)
export const FeedReconnectExhaustedError = createError('SLUICE_INGEST_RECONNECT_EXHAUSTED', 'Feed "%s" gave up after %d reconnect attempts', 503)
export const FeedReconnectDisabledError = createError('SLUICE_INGEST_RECONNECT_DISABLED', 'Feed "%s" closed and reconnecting is disabled', 503)
export const RecordTooLargeError = createError('SLUICE_INGEST_RECORD_TOO_LARGE', 'Kafka refused a record of feed "%s" as too large (%d bytes); it was dropped', 413)
export const FlushDeadlineError = createError('SLUICE_INGEST_FLUSH_DEADLINE', 'Feed "%s": %d records were not flushed to Kafka within %d ms', 503)
