// Writing framed batches to sockets, as far as each socket's queue room and
// delivery budget reach: the live dispatch (one batch of one partition to
// every subscriber of a feed, never waiting) and the write used by readers that
// serve one socket and wait for it instead (window replay, catch-up).
//
// A write to an empty queue takes frames larger than the bound whatever their
// size, and does not count them against it: such a frame would otherwise never
// fit (records up to 1 MiB by Kafka's default message.max.bytes, a 256 KiB
// queue by default), and a socket that keeps up would hear `lagging` for it and
// for its neighbours in the batch. What this lets past the bound is bounded by
// the batch (Kafka's max.partition.fetch.bytes).
import type { RecordBatch } from '@sluice/kafka'
import { noteHighWatermark, offsetsOf, type Subscription, type TopicFeed } from './feed.ts'
import { frameBatch, type FramedBatch } from './framed-batch.ts'
import type { Held, Outlet } from './outlet.ts'
import type { HubStats } from './stats.ts'

/**
 * The hot path: one batch of one partition to every subscriber, synchronously.
 * The batch's frames are built once per protocol and encoding and joined into
 * one buffer; each socket gets one write of that buffer, or of the part of it
 * from its own position on (a view, no copy). One write per socket and batch
 * is one send to the kernel, and no per-frame stream bookkeeping. A socket the
 * batch does not wholly fit goes to `overflow` with the count it lost.
 */
export function dispatch (feed: TopicFeed, batch: RecordBatch, stats: HubStats, overflow: (sub: Subscription, dropped: number) => void): void {
  const records = batch.records
  const count = records.length
  if (count === 0) return
  const p = batch.partition
  noteHighWatermark(feed, batch)
  const offsets = offsetsOf(batch)
  const end = offsets[count - 1]! + 1n
  // the batch framed per protocol and encoding, built on first need and shared by every socket
  const framed = new Map<string, FramedBatch>()

  for (const sub of feed.subs) {
    if (sub.catchingUp.has(p)) continue
    const next = sub.next.get(p) ?? 0n
    if (sub.lag) {
      // lost too, until the socket hears `lagging`: counted in the notice and in the drops metric alike
      for (let i = 0; i < count; i++) {
        if (offsets[i]! >= next) {
          sub.lag.dropped++
          stats.drops++
        }
      }
      continue
    }
    if (next >= end) continue
    const outlet = sub.outlet
    let batchFrames = framed.get(sub.cacheKey)
    if (!batchFrames) {
      batchFrames = frameBatch(records, outlet.format, sub.terms.encoding)
      framed.set(sub.cacheKey, batchFrames)
    }
    const { joined, starts } = batchFrames
    let first = 0
    while (offsets[first]! < next) first++
    // how far this socket's queue room and delivery budget reach, frame by frame
    const queued = outlet.queuedBytes()
    const room = outlet.maxQueueBytes - queued
    const admit = outlet.admit
    const from = starts[first]!
    let stop = count
    // the usual case, no delivery budget and room for the rest of the batch, needs no walk over its frames
    if (admit !== undefined || joined.length - from > room) {
      // frames over the bound, written to an empty queue, are not counted against it (top of file)
      let credit = 0
      for (let i = first; i < count; i++) {
        const bytes = starts[i + 1]! - starts[i]!
        if (bytes === 0) continue // filtered out: nothing to send, the position still moves past it
        if (queued === 0 && bytes > outlet.maxQueueBytes) credit += bytes
        const fits = starts[i + 1]! - from - credit <= room
        if (!fits || (admit !== undefined && !admit(bytes))) {
          stop = i
          break
        }
      }
    }
    const to = starts[stop]!
    if (to > from) {
      outlet.write(from === 0 && to === joined.length ? joined : joined.subarray(from, to))
      const frames = batchFrames.framesBefore[stop]! - batchFrames.framesBefore[first]!
      stats.deliveries += frames
      outlet.delivered?.(frames, to - from)
    }
    if (stop < count) {
      sub.next.set(p, offsets[stop]!)
      overflow(sub, count - stop)
    } else {
      sub.next.set(p, end)
    }
  }
  // kept for resumes, with the frames built for the live sockets (the window skips what it has)
  feed.window.append(p, records, offsets, framed)
  // never backwards: a reader moved back (out of range, a leader's truncated log) may repeat records the subscriptions already have
  if (end > (feed.live.get(p) ?? 0n)) feed.live.set(p, end)
}

/**
 * For a socket that waits instead of dropping (a window replay, a catch-up reader): writes frames
 * [first, end) of a framed batch in one write, as far as the socket's queue room and delivery
 * budget reach (the live dispatch's rule: a frame larger than the bound goes to an empty queue).
 * Returns the first frame not written (end when all were) and, if one was held, what held it.
 */
export function writeHeld (outlet: Outlet, framed: FramedBatch, first: number, end: number, stats: HubStats): { stop: number, held?: Held } {
  const { joined, starts, framesBefore } = framed
  const admit = outlet.admit
  const queued = outlet.queuedBytes()
  const room = outlet.maxQueueBytes - queued
  const from = starts[first]!
  let stop = end
  let held: Held | undefined
  let credit = 0
  for (let i = first; i < end; i++) {
    const bytes = starts[i + 1]! - starts[i]!
    if (bytes === 0) continue
    if (queued === 0 && bytes > outlet.maxQueueBytes) credit += bytes
    if (starts[i + 1]! - from - credit > room) held = { bytes, admit: false }
    else if (admit !== undefined && !admit(bytes)) held = { bytes, admit: true }
    if (held) {
      stop = i
      break
    }
  }
  const to = starts[stop]!
  if (to > from) {
    outlet.write(from === 0 && to === joined.length ? joined : joined.subarray(from, to))
    const frames = framesBefore[stop]! - framesBefore[first]!
    stats.deliveries += frames
    outlet.delivered?.(frames, to - from)
  }
  return { stop, held }
}
