// Shared by the integration suites: where the run's Kafka and Redis are
// (test/run.ts starts them and passes their addresses), and unique names.
import { randomBytes } from 'node:crypto'

export function kafkaBrokers (): string[] {
  const brokers = process.env.KAFKA_BROKERS
  if (!brokers) throw new Error('KAFKA_BROKERS is not set: run the suites through `npm test`, which starts Kafka')
  return brokers.split(',')
}

export function redisUrl (): string {
  const url = process.env.REDIS_URL
  if (!url) throw new Error('REDIS_URL is not set: run the suites through `npm test`, which starts Redis')
  return url
}

/** A topic or group name no other suite uses (suites run in parallel on one broker). */
export function unique (prefix: string): string {
  return `${prefix}.${randomBytes(4).toString('hex')}`
}

/** Polls `check` until it returns true, failing after `timeoutMs`. Not a timing assertion: a bound on waiting. */
export async function eventually (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
