// Every error code and close code a client of /v1/stream can meet, in words
// (docs/design.md, plugins/stream/README.md, plugins/auth/README.md). The console
// shows the code and the gateway's own message beside these.

/** `code` of an `error` frame → what it means and what to do. */
export const ERROR_CODES = {
  BAD_REQUEST: 'The frame was not understood: not JSON, an unknown op, a bad topic name or cursor, a missing field, or more than 100 topics. Fix the frame and send it again.',
  UNAUTHORIZED: 'The credential is missing, invalid, or a renewal was refused (a renewed token must keep the same subject and claims).',
  FORBIDDEN: 'Your credential does not allow this on this topic. The policy\'s access rules decide who may subscribe to and publish on which topics: see the product\'s "who may do what" list.',
  UNKNOWN_TOPIC: 'Kafka has no topic of this name. Check the spelling; topics are created by the operator, not by clients.',
  RATE_LIMITED: 'Your plan\'s rate limit was reached (messages per second, bytes per second or the daily quota). Wait for the time given before trying again.',
  TOO_LARGE: 'The record is larger than Kafka accepts. Send a smaller value.',
  UNAVAILABLE: 'Kafka did not answer in time. A publish refused this way may still be written once Kafka answers (unacked is not lost): a client that must not write twice carries its own id in headers.',
  INTERNAL: 'An unexpected error in the gateway. Try again; if it goes on, tell the gateway\'s operator.'
}

/** WebSocket close code → what happened and what to do. */
export const CLOSE_CODES = {
  1000: 'Closed normally: by you, or by the gateway after 5 minutes with no subscription and no frame.',
  1001: 'The gateway is going away (a restart or a deploy). Reconnect, and resume with your cursor to miss nothing.',
  1005: 'Closed without a status code.',
  1006: 'The connection ended without a close frame: the network or a proxy dropped it, or the gateway refused the upgrade (a browser is not told the HTTP status; the console asks the gateway why, below).',
  1008: 'Policy violation: too many invalid frames in a row, or an administrator closed this session.',
  1009: 'A frame was larger than the gateway accepts (1 MiB unless the operator changed it).',
  1011: 'An internal error in the gateway. Reconnect; if it goes on, tell the operator.',
  1013: 'The gateway could not subscribe to the topics named when the socket opened. Try again later.',
  4001: 'Your credential expired or was revoked. Get a fresh token or key and reconnect.',
  4003: 'A policy change withdrew your access to everything this socket was subscribed to.',
  4008: 'Too slow: the socket did not read fast enough and this topic\'s product evicts slow clients. Reconnect with your cursor to replay what you missed.',
  4029: 'Rate limited: your plan\'s limits were exceeded. Wait, then reconnect.'
}

/** The gateway's refusals before the upgrade (HTTP), by their code. */
export const REFUSAL_CODES = {
  SLUICE_AUTH_MISSING: 'No credential reached the gateway. Paste a token or an API key.',
  SLUICE_AUTH_AMBIGUOUS: 'More than one credential was sent; the gateway takes exactly one.',
  SLUICE_AUTH_MALFORMED: 'The credential is malformed: empty, over 8 KiB, or in another scheme than Bearer.',
  SLUICE_AUTH_INVALID_TOKEN: 'The token is not valid here: not a JWT or the dev token, a bad signature or algorithm, or the wrong audience or issuer.',
  SLUICE_AUTH_EXPIRED: 'The credential has expired. Get a fresh one.',
  SLUICE_AUTH_UNTRUSTED_ISSUER: 'The token\'s issuer (iss) is not one this gateway trusts.',
  SLUICE_AUTH_UNKNOWN_KEY: 'The token was signed with a key its issuer does not publish (unknown kid).',
  SLUICE_AUTH_KEYS_UNAVAILABLE: 'The issuer\'s signing keys cannot be fetched right now. Try again later.',
  SLUICE_AUTH_INVALID_API_KEY: 'The API key is unknown, expired or revoked.',
  SLUICE_AUTH_API_KEYS_DISABLED: 'This gateway takes no API keys (it runs without Redis). Use a token.',
  SLUICE_AUTH_UNAVAILABLE: 'The gateway cannot check credentials right now. Try again later.',
  SLUICE_AUTH_ORIGIN_FORBIDDEN: 'This page\'s Origin is not in the gateway\'s allow-list (auth.origins). The operator must add it.',
  SLUICE_RATE_CONNECTIONS: 'Your plan\'s concurrent connections are all in use. Close another socket, or wait.',
  SLUICE_RATE_CONNECTS: 'Too many new connections this minute for your plan. Wait a minute.',
  SLUICE_RATE_HTTP: 'Too many requests. Wait, then try again.',
  SLUICE_RATE_UNAVAILABLE: 'Rate limits cannot be checked right now and this gateway then refuses connections. Try again later.',
  BAD_REQUEST: 'The request was malformed (a bad topic name, cursor or parameter).',
  FORBIDDEN: 'Your credential does not allow a topic named at open.',
  UNKNOWN_TOPIC: 'A topic named at open does not exist.',
  UNAVAILABLE: 'Kafka cannot say which topics exist right now. Try again shortly.'
}

/**
 * @param {Record<string, string>} table
 * @param {string | number | undefined} code
 * @param {string} fallback
 */
export function explain (table, code, fallback) {
  return (code !== undefined && Object.hasOwn(table, code)) ? table[code] : fallback
}

/**
 * @param {number} ms
 */
export function duration (ms) {
  if (!Number.isFinite(ms)) return String(ms)
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
}
