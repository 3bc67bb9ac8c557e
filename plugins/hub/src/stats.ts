// The hub's counters: plain numbers bumped on the hot path, read by the
// metrics plugin at scrape time (no metric call per frame).

export interface HubStats {
  deliveries: number
  drops: number
  evictions: number
  laggingNotices: number
  catchUps: number
  /** resumes and `earliest` served from a feed's window, wholly or in part */
  windowReplays: number
  /** feeds a resume started that read its gap into their window first, whole (hub.ts #backfill) */
  backfills: number
  /** the same, where a partition was not read to its end in time, or its gap outgrew the window: its resumes read from Kafka */
  backfillsCut: number
  groupSessions: number
  /** records a resume asked for that Kafka no longer held (retention, DeleteRecords): its socket was told */
  recordsGone: number
}

/** A topic with a live consumer on this node, and how far its readers are behind its high watermark. */
export interface TopicLag {
  topic: string
  /** records in Kafka the live consumer has not dispatched yet, summed over partitions */
  live: number
  /** records in Kafka that catch-up readers (resumes, `earliest`) have not yet written to their socket, summed */
  catchUp: number
}

export function newStats (): HubStats {
  return { deliveries: 0, drops: 0, evictions: 0, laggingNotices: 0, catchUps: 0, windowReplays: 0, backfills: 0, backfillsCut: 0, groupSessions: 0, recordsGone: 0 }
}
