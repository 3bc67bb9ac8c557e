// A session's id: 128 random bits as 32 hex characters. Drawn from a pool the
// CSPRNG fills 256 ids at a time: randomBytes(16) for each socket set up a
// crypto job of its own, about 5 µs, 1.4 % of a node's busy time while 5,000
// clients resumed on it at once (bench/drain-resume.ts). The bits are the same
// CSPRNG's, and each is handed out once.
import { randomFillSync } from 'node:crypto'

const ID_BYTES = 16
const POOL_IDS = 256

const pool = Buffer.alloc(ID_BYTES * POOL_IDS)
let at = pool.length

/** 32 hex characters, a flat string (Buffer#toString: randomUUID() returns a rope of ~15 pieces, 480 bytes a socket). */
export function sessionId (): string {
  if (at === pool.length) {
    randomFillSync(pool)
    at = 0
  }
  const id = pool.toString('hex', at, at + ID_BYTES)
  at += ID_BYTES
  return id
}
