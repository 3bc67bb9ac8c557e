// A resume writes a socket four times in a few turns: the 101, the subscribed
// frame, the window's replay (on the next turn, so that subscribed goes first)
// and the first live records. Each write of an uncorked socket is a syscall of
// its own, which on loopback also runs the receiver's TCP path: in a profile of
// 5,000 clients resuming on one node (bench/drain-resume.ts) the 101, subscribed
// and the replays took 9.5 % of the node's busy time in writes. Holding the
// socket's writes from the upgrade's last check until the turn after the
// subscribed frame sends them in one writev. The subscribe may wait turns for
// Redis (the subject's first delivery lease): the 101 is held until the
// session's open settles, whatever its outcome, so that it still leaves with
// the frames that follow it.
import type { Duplex } from 'node:stream'

/**
 * Corks `raw` now and uncorks it in this loop's check phase (setImmediate), after the immediates
 * scheduled before this call: what the socket is written meanwhile leaves in one writev. Corks
 * nest (Node counts them): a socket held twice is written once both were let go.
 */
export function holdWrites (raw: Duplex): void {
  raw.cork()
  setImmediate(() => { raw.uncork() })
}

// How long an upgrade's 101 may wait for the session's open: longer is a slower
// handshake for the client. An open that waits on Kafka (a new topic's
// metadata, a group join: 3 s on Kafka's default settings) lets it go after
// 50-100 ms; one that waits on Redis (a few ms) keeps it. One sweep timer for
// all held sockets, running only while there are some.
export const MAX_HOLD_MS = 50

let holding = new Set<Duplex>()
let held = new Set<Duplex>()
let sweeper: NodeJS.Timeout | undefined

function sweep (): void {
  for (const raw of held) raw.uncork()
  held = holding
  holding = new Set()
  if (held.size === 0) {
    clearInterval(sweeper)
    sweeper = undefined
  }
}

function letGo (raw: Duplex): void {
  if (holding.delete(raw) || held.delete(raw)) raw.uncork()
}

/**
 * Corks `raw` until releaseWritesAfter lets go of it, or for 50-100 ms at most: taken before the
 * upgrade, by the route's last hook.
 */
export function holdUpgrade (raw: Duplex): void {
  raw.cork()
  holding.add(raw)
  if (!sweeper) {
    sweeper = setInterval(sweep, MAX_HOLD_MS)
    sweeper.unref()
  }
}

/**
 * Lets go of holdUpgrade's cork once `opened` settles (resolved or not), in that turn's check
 * phase: after the replay and the subscribed frame's own hold, so that the 101 leaves with them.
 */
export function releaseWritesAfter (raw: Duplex, opened: Promise<unknown>): void {
  const release = (): void => { setImmediate(() => { letGo(raw) }) }
  opened.then(release, release)
}
