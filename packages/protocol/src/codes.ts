// The codes every WebSocket route and whoever closes its sockets share
// (docs/design.md): the error codes clients see, and the close codes.

/** docs/design.md's error codes, as clients see them in `error` frames. */
export type WireErrorCode = 'BAD_REQUEST' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'UNKNOWN_TOPIC' | 'RATE_LIMITED' | 'TOO_LARGE' | 'UNAVAILABLE' | 'INTERNAL'
export const WIRE_CODES: readonly WireErrorCode[] = ['BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'UNKNOWN_TOPIC', 'RATE_LIMITED', 'TOO_LARGE', 'UNAVAILABLE', 'INTERNAL']

/** Close codes (docs/design.md). */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  TOO_LARGE: 1009,
  INTERNAL: 1011,
  TRY_LATER: 1013,
  CREDENTIALS: 4001,
  ACCESS_WITHDRAWN: 4003,
  TOO_SLOW: 4008,
  RATE_LIMITED: 4029
} as const
