// What both apps' process entries share: where the config file is named, a
// close bounded by a deadline, and the exit codes (78 for bad config, as
// sysexits.h's EX_CONFIG, so supervisors can tell it from a crash).
import { ConfigError } from './load.ts'

interface Closable {
  close (): Promise<unknown>
  log: { info (obj: object, msg: string): void, error (obj: object, msg: string): void }
}

/** `--config FILE`, else SLUICE_CONFIG. */
export function configFileFrom (argv: string[], env: Record<string, string | undefined>): string | undefined {
  const index = argv.indexOf('--config')
  return index >= 0 ? argv[index + 1] : env.SLUICE_CONFIG
}

/** Closes `app`; resolves true if it closed before `deadlineMs`, false if the deadline passed first. Called again, it returns the same promise. */
export function closeWithin (app: Closable, deadlineMs: number): (signal?: string) => Promise<boolean> {
  let closing: Promise<boolean> | undefined
  return (signal = 'shutdown') => {
    closing ??= (async () => {
      app.log.info({ signal, deadlineMs }, 'closing')
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<boolean>(resolve => {
        timer = setTimeout(() => resolve(false), deadlineMs)
      })
      const closed = app.close().then(() => true, err => {
        app.log.error({ err }, 'error while closing')
        return true
      })
      const inTime = await Promise.race([closed, deadline])
      clearTimeout(timer)
      if (!inTime) app.log.error({ deadlineMs }, 'shutdown deadline passed')
      return inTime
    })()
    return closing
  }
}

/**
 * Runs a process entry: loads the config (a ConfigError exits 78 with every
 * problem), starts, and on SIGTERM/SIGINT exits 0 when `shutdown` resolves
 * true, 1 otherwise.
 */
export function runEntry<C> (name: string, load: () => C, start: (config: C) => Promise<{ shutdown (signal: string): Promise<boolean> }>): void {
  const fail = (err: unknown) => {
    process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  }
  let config: C
  try {
    config = load()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`)
      process.exit(78)
    }
    return fail(err)
  }
  start(config).then(running => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        running.shutdown(signal).then(clean => process.exit(clean ? 0 : 1), () => process.exit(1))
      })
    }
  }, fail)
}
