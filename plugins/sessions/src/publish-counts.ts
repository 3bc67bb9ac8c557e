// Fastify-free: what became of the publishes of each WebSocket route, as plain
// numbers that /metrics reads when it is scraped. A publish makes no metric
// call (no label hashing on the hot path): it adds one to a field.

export class RoutePublishes {
  /** records Kafka acknowledged */
  acks = 0
  /** publishes refused, before Kafka (ACL, rate limit, bad value) or by it, by the route's error code */
  readonly errors = new Map<string, number>()

  /** `codes`: the route's catalogue, shown at 0 before the first error of each */
  constructor (codes: readonly string[] = []) {
    for (const code of codes) this.errors.set(code, 0)
  }

  /** client frames whose handling failed inside the per-frame boundary: each answered INTERNAL, each a bug of ours */
  frameFailures = 0

  frameFailed (): void {
    this.frameFailures++
  }

  acked (records = 1): void {
    this.acks += records
  }

  failed (code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
  }
}

export class PublishCounts {
  readonly #routes = new Map<string, RoutePublishes>()

  /** The counts of one route, made on first use; a route plugin asks once and keeps it. */
  route (route: string, codes?: readonly string[]): RoutePublishes {
    let counts = this.#routes.get(route)
    if (!counts) {
      counts = new RoutePublishes(codes)
      this.#routes.set(route, counts)
    }
    return counts
  }

  entries (): IterableIterator<[string, RoutePublishes]> {
    return this.#routes.entries()
  }
}
