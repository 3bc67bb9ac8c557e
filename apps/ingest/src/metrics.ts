// The connector's Prometheus metrics, one series per feed. Values are read from
// the feeds when /metrics is scraped (prom-client `collect`), so the hot path
// (one frame) only bumps plain counters on the feed.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Feed, FeedStats } from './feed.ts'

type Read = (feed: Feed) => number

/** Registers every metric on the app's registry; returns them (prom-client registers on construction). */
export function registerIngestMetrics (registry: Registry, feeds: Feed[]): Array<Counter | Gauge> {
  const counter = (name: string, help: string, read: Read): Counter => {
    return new Counter({
      name,
      help,
      labelNames: ['feed'],
      registers: [registry],
      collect () {
        this.reset()
        for (const feed of feeds) this.inc({ feed: feed.name }, read(feed))
      }
    })
  }
  const gauge = (name: string, help: string, read: Read): Gauge => {
    return new Gauge({
      name,
      help,
      labelNames: ['feed'],
      registers: [registry],
      collect () {
        for (const feed of feeds) this.set({ feed: feed.name }, read(feed))
      }
    })
  }
  const stat = (key: keyof FeedStats): Read => feed => feed.stats[key]

  const dropped = new Counter({
    name: 'sluice_ingest_dropped_total',
    help: 'Records discarded: buffer_full (the overflow policy) or too_large (over the frame limit or refused by Kafka)',
    labelNames: ['feed', 'reason'],
    registers: [registry],
    collect () {
      this.reset()
      for (const feed of feeds) {
        this.inc({ feed: feed.name, reason: 'buffer_full' }, feed.stats.droppedOverflow)
        this.inc({ feed: feed.name, reason: 'too_large' }, feed.stats.droppedTooLarge)
      }
    }
  })
  return [
    counter('sluice_ingest_received_total', 'Frames received from the feed', stat('received')),
    counter('sluice_ingest_produced_total', 'Records acknowledged by Kafka', stat('produced')),
    dropped,
    gauge('sluice_ingest_queue_size', 'Records waiting in the buffer', feed => feed.queueSize),
    gauge('sluice_ingest_queue_bytes', 'Bytes waiting in the buffer', feed => feed.queueBytes),
    gauge('sluice_ingest_queue_capacity', 'The buffer\'s capacity in records', feed => feed.queueCapacity),
    gauge('sluice_ingest_in_flight', 'Records sent to Kafka and not yet acknowledged', feed => feed.inFlight),
    gauge('sluice_ingest_connected', '1 while the feed socket is open', feed => feed.connected ? 1 : 0),
    gauge('sluice_ingest_paused', '1 while reading from the feed is paused because Kafka is behind', feed => feed.paused ? 1 : 0),
    gauge('sluice_ingest_failed', '1 once the feed gave up reconnecting', feed => feed.state === 'failed' ? 1 : 0),
    counter('sluice_ingest_reconnects_total', 'Reconnect attempts', stat('reconnects')),
    counter('sluice_ingest_pauses_total', 'Times reading was paused for Kafka', stat('pauses')),
    gauge('sluice_ingest_ms_since_last_message', 'Milliseconds since the last frame (-1 before the first)', feed => feed.msSinceLastMessage),
    counter('sluice_ingest_sequence_gaps_total', 'Jumps in the feed\'s sequence field', feed => feed.sequence.stats.gaps),
    counter('sluice_ingest_sequence_missing_total', 'Sequence numbers the feed skipped', feed => feed.sequence.stats.missing),
    counter('sluice_ingest_sequence_regressions_total', 'Sequence numbers not above the previous one (replays, restarts)', feed => feed.sequence.stats.regressions),
    counter('sluice_ingest_key_missing_total', 'Records sent without a key: the key pointer found nothing', stat('keyMissing')),
    counter('sluice_ingest_unparsable_total', 'Text frames that were not JSON although a key or sequence pointer is set', stat('unparsable')),
    counter('sluice_ingest_produce_errors_total', 'Failed produce requests (each retried)', stat('produceErrors'))
  ]
}
