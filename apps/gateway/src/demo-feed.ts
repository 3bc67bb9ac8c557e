// The demo feed of dev mode: a synthetic market ticker that writes JSON ticks
// to `demo.ticks` a few times a second, keyed by symbol so that each symbol's
// ticks stay in order on one partition.
import type { KafkaClient, OutgoingRecord } from '@sluice/kafka'

export const DEMO_TOPIC = 'demo.ticks'
// 4 batches a second: visibly live in a terminal, and light on a laptop
const TICK_INTERVAL_MS = 250

const START_PRICES: Record<string, number> = { 'BTC-USD': 97_000, 'ETH-USD': 3_600, 'SOL-USD': 240 }

export interface Tick {
  symbol: string
  price: number
  size: number
  side: 'buy' | 'sell'
  seq: number
  ts: number
}

export class DemoTicker {
  readonly #kafka: KafkaClient
  readonly #topic: string
  readonly #prices = new Map(Object.entries(START_PRICES))
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  #inFlight: Promise<void> | undefined
  onError: (err: Error) => void = () => {}

  constructor (kafka: KafkaClient, topic = DEMO_TOPIC) {
    this.#kafka = kafka
    this.#topic = topic
  }

  /** One tick per symbol: a random walk of at most ±0.1 % per tick. */
  nextTicks (now = Date.now()): Tick[] {
    const ticks: Tick[] = []
    for (const [symbol, price] of this.#prices) {
      const next = Math.max(0.01, price * (1 + (Math.random() - 0.5) * 0.002))
      this.#prices.set(symbol, next)
      ticks.push({
        symbol,
        price: Math.round(next * 100) / 100,
        size: Math.round(Math.random() * 10_000) / 10_000,
        side: Math.random() < 0.5 ? 'buy' : 'sell',
        seq: ++this.#seq,
        ts: now
      })
    }
    return ticks
  }

  start (): void {
    if (this.#timer) return
    this.#timer = setInterval(() => {
      // a slow broker skips ticks rather than piling up produce requests
      if (this.#inFlight) return
      const records: OutgoingRecord[] = this.nextTicks().map(t => ({ key: t.symbol, value: JSON.stringify(t) }))
      this.#inFlight = this.#kafka.produceBatch(this.#topic, records)
        .catch(err => this.onError(err as Error))
        .finally(() => { this.#inFlight = undefined })
    }, TICK_INTERVAL_MS)
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#inFlight
  }
}
