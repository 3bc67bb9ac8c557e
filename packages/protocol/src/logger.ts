// What a Fastify-free module needs of a logger: pino's (Fastify's) four levels,
// object first. Fastify's logger satisfies it, and so does a test's fake.
export interface Logger {
  debug (obj: object, msg?: string): void
  info (obj: object, msg?: string): void
  warn (obj: object, msg?: string): void
  error (obj: object, msg?: string): void
}
