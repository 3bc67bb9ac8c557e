import createError from '@fastify/error'

// The gateway process's own catalogue (its plugins have theirs).
export const DevPortInUseError = createError('SLUICE_DEV_PORT_IN_USE', 'port %d is in use (another sluice dev, or another server): stop it, or run `sluice dev --port <a free port>`', 500)

// What Node's HTTP parser refuses before any route sees the request (client-errors.ts): the same body as every
// other refusal, `{"error":{"code","message"}}`, where Fastify's default answered `{"error","message","statusCode"}`
export const MalformedRequestError = createError('SLUICE_HTTP_MALFORMED', 'The request is not valid HTTP/1.1 (%s)', 400)
export const HeadersTooLargeError = createError('SLUICE_HTTP_HEADERS_TOO_LARGE', 'The request line and headers exceed %d bytes', 431)
export const RequestTimeoutError = createError('SLUICE_HTTP_REQUEST_TIMEOUT', 'The request did not arrive within %d ms', 408)
export const BadHandshakeError = createError('SLUICE_HTTP_BAD_HANDSHAKE', 'The WebSocket handshake is malformed: %s', 400)
