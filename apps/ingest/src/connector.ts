// The connector: every configured feed, sharing one Kafka producer. Starting
// and stopping them together, and saying whether they serve (readiness).
import type { Logger } from '@sluice/kafka'
import type { FeedConfig } from './config.ts'
import { Feed } from './feed.ts'
import type { Producer } from './produce-loop.ts'

export interface ConnectorOptions {
  feeds: FeedConfig[]
  kafka: Producer
  logger: Logger
  random?: () => number
}

export class Connector {
  readonly feeds: Feed[]
  /** records left unacknowledged by the last stop(): 0 after a clean flush */
  unflushed = 0
  #stopped: Promise<number> | undefined

  constructor (options: ConnectorOptions) {
    this.feeds = options.feeds.map(config => new Feed({
      config,
      kafka: options.kafka,
      logger: options.logger,
      random: options.random
    }))
  }

  feed (name: string): Feed | undefined {
    return this.feeds.find(f => f.name === name)
  }

  start (): void {
    for (const feed of this.feeds) feed.start()
  }

  /** Stops every feed and flushes all buffers in parallel within `deadlineMs`; resolves with the records left over. */
  stop (deadlineMs: number): Promise<number> {
    this.#stopped ??= Promise.all(this.feeds.map(f => f.stop(deadlineMs))).then(counts => {
      this.unflushed = counts.reduce((a, b) => a + b, 0)
      return this.unflushed
    })
    return this.#stopped
  }

  /** Throws naming the feeds that do not serve: not connected, given up, or unable to produce. */
  async check (): Promise<void> {
    const problems: string[] = []
    for (const feed of this.feeds) {
      if (feed.state === 'failed') problems.push(`${feed.name}: gave up (${(feed.lastError as { code?: string } | undefined)?.code ?? 'closed'})`)
      else if (!feed.connected) problems.push(`${feed.name}: not connected${feed.lastError ? ` (${(feed.lastError as { code?: string }).code})` : ''}`)
      if (feed.lastProduceError) problems.push(`${feed.name}: Kafka refuses its records (${(feed.lastProduceError as { code?: string }).code ?? 'error'})`)
    }
    if (problems.length > 0) throw new Error(problems.join('; '))
  }
}
