// A resume writes a socket four times in a few turns: the 101, the subscribed
// frame, the window's replay (on the next turn, so that subscribed goes first)
// and the first live records. Each write of an uncorked socket is a syscall of
// its own, which on loopback also runs the receiver's TCP path: in a profile of
// 5,000 clients resuming on one node (bench/drain-resume.ts) the 101, subscribed
// and the replays took 9.5 % of the node's busy time in writes. Holding the
// socket's writes from the upgrade's last check until the turn after the
// subscribed frame sends them in one writev.
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
