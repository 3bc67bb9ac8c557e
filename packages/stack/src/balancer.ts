// A small layer-4 (TCP) load balancer for running several gateway nodes on one
// machine, as the cluster suites do: round robin over the backends, skipping
// one that refuses the connection, and taking out of rotation a backend whose
// health check (GET /readyz) does not answer 200, as a cloud or Kubernetes
// balancer does with a draining node. Bytes are piped both ways with
// backpressure; an error on either side closes both.
//
//   deploy/local/node.sh deploy/local/balancer.ts --port 8080 127.0.0.1:8081 127.0.0.1:8082 127.0.0.1:8083
import net from 'node:net'

export interface Backend {
  host: string
  port: number
}

export interface BalancerOptions {
  backends: Backend[]
  host?: string
  /** 0: any free port */
  port?: number
  /** the health check's path; false: none, every backend is in rotation */
  healthPath?: string | false
  /** between two rounds of health checks; cloud balancers use 5 to 30 s, tests want a drain noticed quickly */
  healthIntervalMs?: number
  healthTimeoutMs?: number
  /** a backend that has not accepted the connection by then is skipped */
  connectTimeoutMs?: number
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  healthPath: '/readyz',
  healthIntervalMs: 1000,
  // a probe slower than 1 s counts as failed (Kubernetes' default probe timeout)
  healthTimeoutMs: 1000,
  connectTimeoutMs: 2000
}

export class Balancer {
  readonly #options: Required<BalancerOptions>
  readonly #server: net.Server
  readonly #healthy: boolean[]
  readonly #accepted: number[]
  readonly #open = new Set<net.Socket>()
  #next = 0
  #timer: NodeJS.Timeout | undefined
  #address: { host: string, port: number } | undefined

  constructor (options: BalancerOptions) {
    if (options.backends.length === 0) throw new Error('a balancer needs at least one backend')
    this.#options = { ...DEFAULTS, ...options }
    // every backend starts in rotation; the first round of checks runs before start() resolves
    this.#healthy = options.backends.map(() => true)
    this.#accepted = options.backends.map(() => 0)
    // half-open on both sides: a peer's FIN travels through as a FIN, and what the other side still sends gets through
    this.#server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, client => this.#accept(client))
  }

  get address (): { host: string, port: number } {
    if (!this.#address) throw new Error('the balancer is not started')
    return this.#address
  }

  /** connections each backend accepted from this balancer, in the order of `backends` */
  get accepted (): number[] {
    return [...this.#accepted]
  }

  /** whether each backend is in rotation now */
  get healthy (): boolean[] {
    return [...this.#healthy]
  }

  async start (): Promise<{ host: string, port: number }> {
    await this.checkHealth()
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#options.port, this.#options.host, () => resolve())
    })
    const address = this.#server.address() as net.AddressInfo
    this.#address = { host: this.#options.host, port: address.port }
    if (this.#options.healthPath !== false) this.#scheduleChecks()
    return this.#address
  }

  async stop (): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const socket of this.#open) socket.destroy()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }

  /** One round of health checks, all backends at once. */
  async checkHealth (): Promise<void> {
    const path = this.#options.healthPath
    if (path === false) return
    await Promise.all(this.#options.backends.map(async (backend, i) => {
      try {
        const res = await fetch(`http://${backend.host}:${backend.port}${path}`, { signal: AbortSignal.timeout(this.#options.healthTimeoutMs) })
        await res.body?.cancel()
        this.#healthy[i] = res.status === 200
      } catch {
        this.#healthy[i] = false
      }
    }))
  }

  #scheduleChecks (): void {
    this.#timer = setTimeout(() => {
      this.checkHealth().finally(() => {
        if (this.#timer) this.#scheduleChecks()
      })
    }, this.#options.healthIntervalMs)
    this.#timer.unref()
  }

  /** The backends to try for one connection: the healthy ones from the round-robin position on; none healthy, all of them (fail open, as cloud balancers do). */
  #candidates (): number[] {
    const n = this.#options.backends.length
    const start = this.#next
    this.#next = (this.#next + 1) % n
    const order = Array.from({ length: n }, (_v, k) => (start + k) % n)
    const healthy = order.filter(i => this.#healthy[i])
    return healthy.length > 0 ? healthy : order
  }

  #accept (client: net.Socket): void {
    this.#open.add(client)
    client.once('close', () => this.#open.delete(client))
    // until it is piped, an error just closes it
    client.on('error', () => client.destroy())
    this.#connect(client, this.#candidates())
  }

  #connect (client: net.Socket, candidates: number[]): void {
    const index = candidates.shift()
    if (index === undefined || client.destroyed) {
      client.destroy()
      return
    }
    const backend = this.#options.backends[index]!
    const upstream = net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true })
    upstream.setTimeout(this.#options.connectTimeoutMs)
    const skip = () => {
      upstream.destroy()
      this.#connect(client, candidates)
    }
    upstream.once('timeout', skip)
    upstream.once('error', skip)
    upstream.once('connect', () => {
      if (client.destroyed) {
        upstream.destroy()
        return
      }
      upstream.setTimeout(0)
      upstream.off('timeout', skip)
      upstream.off('error', skip)
      this.#accepted[index]!++
      this.#splice(client, upstream)
    })
  }

  #splice (client: net.Socket, upstream: net.Socket): void {
    this.#open.add(upstream)
    upstream.once('close', () => this.#open.delete(upstream))
    // pipe() pauses the source while the destination's buffer is full, and ends the destination when the source ends
    client.pipe(upstream)
    upstream.pipe(client)
    client.resume()
    // a reset (or any error) on one side is a reset on the other: nothing more can be delivered either way
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
    client.once('close', hadError => { if (hadError || upstream.writableFinished) upstream.destroy() })
    upstream.once('close', hadError => { if (hadError || client.writableFinished) client.destroy() })
  }
}

function parseBackend (text: string): Backend {
  const match = /^([^\s:]+):(\d{1,5})$/.exec(text)
  if (!match) throw new Error(`a backend is host:port, not "${text}"`)
  return { host: match[1]!, port: Number(match[2]) }
}

/** The CLI (deploy/local/balancer.ts): `--port 8080 host:port host:port ...`, until SIGINT or SIGTERM. */
export function main (argv: string[]): void {
  const args = [...argv]
  const portAt = args.indexOf('--port')
  const port = portAt >= 0 ? Number(args.splice(portAt, 2)[1]) : 8080
  const balancer = new Balancer({ backends: args.map(parseBackend), port })
  balancer.start().then(address => {
    process.stdout.write(`balancing ${args.join(', ')} on ${address.host}:${address.port}\n`)
  }, err => {
    process.stderr.write(`balancer: ${(err as Error).message}\n`)
    process.exit(1)
  })
  process.once('SIGINT', () => { balancer.stop().then(() => process.exit(0), () => process.exit(1)) })
  process.once('SIGTERM', () => { balancer.stop().then(() => process.exit(0), () => process.exit(1)) })
}
