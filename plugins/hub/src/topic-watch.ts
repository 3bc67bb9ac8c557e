// The topic list, and who watches it for new topics: pattern subscriptions
// (a socket subscribed to `prices.*` is given `prices.eth` once it appears).
// One list read per node per refresh period, however many sockets watch.
import type { KafkaClient, Logger } from '@sluice/kafka'

/** Told the topics that appeared since the topic list was last read. */
export type TopicWatcher = (added: string[]) => void

export class TopicWatch {
  readonly #kafka: KafkaClient
  readonly #log: Logger
  readonly #refreshMs: number
  readonly #watchers = new Set<TopicWatcher>()
  #known: Set<string> | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor (kafka: KafkaClient, log: Logger, refreshMs: number) {
    this.#kafka = kafka
    this.#log = log
    this.#refreshMs = refreshMs
  }

  /**
   * The topics Kafka has now. Every read also tells the watchers which topics
   * appeared since the previous read, so that a watcher registered before it
   * reads the list misses no topic created after that read.
   */
  async names (): Promise<string[]> {
    const names = await this.#kafka.listTopics()
    const known = this.#known
    this.#known = new Set(names)
    if (known && this.#watchers.size > 0) {
      const added = names.filter(name => !known.has(name))
      if (added.length > 0) {
        for (const watcher of [...this.#watchers]) {
          try {
            watcher(added)
          } catch (err) {
            this.#log.warn({ err }, 'a topic watcher failed')
          }
        }
      }
    }
    return names
  }

  /** Reads the topic list every refresh period while anyone watches; returns the way to stop watching. */
  watch (watcher: TopicWatcher): () => void {
    this.#watchers.add(watcher)
    if (!this.#timer && !this.#closed) this.#poll()
    return () => {
      this.#watchers.delete(watcher)
      if (this.#watchers.size === 0) {
        clearTimeout(this.#timer)
        this.#timer = undefined
      }
    }
  }

  #poll (): void {
    const timer: NodeJS.Timeout = setTimeout(() => {
      this.names().catch(err => this.#log.warn({ err }, 'could not read the topic list for pattern subscriptions'))
        .finally(() => {
          // the same loop only: watchers that all left and came back started another
          if (this.#timer === timer && this.#watchers.size > 0 && !this.#closed) this.#poll()
        })
    }, this.#refreshMs)
    this.#timer = timer
  }

  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#watchers.clear()
  }
}
