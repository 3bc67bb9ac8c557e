// Each request's logger (request.log, reply.log), made only when the request
// logs at a level that is on. Fastify makes every request a pino child with
// its request id; with the gateway's redaction that child parses the redact
// paths and copies its bindings: 1.3-2.5 µs and 1.5 KB a request
// (a throwaway script, 20,000 children), and in a burst of 5,000 resumes on
// one node the children's redaction alone (parsePath) allocated 4.0 of 384 MiB
// (bench/drain-resume.ts --alloc-profile). Most requests log nothing at the
// gateway's default level (warn): an upgrade that is let in, a health check,
// a scrape. This one holds the parent, the bindings and the options, and
// makes the same child the first time a message at an enabled level comes,
// so what is written is what the child would have written.
import type { FastifyBaseLogger } from 'fastify'

type Bindings = Parameters<FastifyBaseLogger['child']>[0]
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>

type Method = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type LogFn = (...args: unknown[]) => void

/** The parts of a pino logger this needs: its level names and values. */
interface Levels {
  levels?: { values: Record<string, number> }
  isLevelEnabled?: (level: string) => boolean
}

export class LazyRequestLogger {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Bindings
  readonly #options: ChildLoggerOptions
  #child: FastifyBaseLogger | undefined

  constructor (parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
  }

  /** The child Fastify would have made, made now. */
  #made (): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  /** Whether a message at `method` would be written: the child's own level once made, else its options' or its parent's. */
  #enabled (method: Method): boolean {
    if (this.#child) return true
    const wanted = this.#options.level
    const parent = this.#parent as unknown as Levels
    if (wanted === undefined) return parent.isLevelEnabled ? parent.isLevelEnabled(method) : true
    const values = parent.levels?.values
    if (!values || values[wanted] === undefined || values[method] === undefined) return true
    return values[method] >= values[wanted]
  }

  #log (method: Method, args: unknown[]): void {
    if (!this.#enabled(method)) return
    ;(this.#made()[method] as LogFn)(...args)
  }

  fatal (...args: unknown[]): void { this.#log('fatal', args) }
  error (...args: unknown[]): void { this.#log('error', args) }
  warn (...args: unknown[]): void { this.#log('warn', args) }
  info (...args: unknown[]): void { this.#log('info', args) }
  debug (...args: unknown[]): void { this.#log('debug', args) }
  trace (...args: unknown[]): void { this.#log('trace', args) }
  silent (): void {}

  get level (): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level
  }

  set level (level: string) {
    this.#made().level = level
  }

  isLevelEnabled (level: string): boolean {
    return this.#child ? (this.#child as unknown as Levels).isLevelEnabled?.(level) ?? true : this.#enabled(level as Method)
  }

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#made().child(bindings, options)
  }

  /** Whether the child was made (tests read it). */
  get made (): boolean {
    return this.#child !== undefined
  }
}

/** Fastify's `childLoggerFactory`: a request's logger that makes its child on first use. */
export function lazyRequestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyRequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger
}
