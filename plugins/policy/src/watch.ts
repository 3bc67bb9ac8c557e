// Fastify-free: reloads the policy when its directory changes. Three ways a
// file changes, and what sees each:
//   - in-place write (an editor, `cat >`):       inotify "change" on the file
//   - atomic rename (write a temp file, rename):  inotify "rename" in the directory
//   - symlink swap (Kubernetes ConfigMap: `..data` -> `..2024_..` replaced by rename):
//                                                inotify "rename" of `..data`
// fs.watch sees all three when the directory itself stays put; a poll catches
// what it cannot (the directory path is itself a swapped symlink, a network
// filesystem without inotify, a watcher that died). A reload whose files did
// not change costs one read of the files and does nothing else.
import { watch, type FSWatcher } from 'node:fs'
import { gatewayDefaults } from '@sluice/config/gateway'

// an editor writes a file in several syscalls; 100 ms lets it finish before we read
export const DEFAULT_DEBOUNCE_MS = 100
// docs/design.md: a withdrawal reaches live sockets within 2 s; a 1 s poll keeps that
// bound even when no inotify event arrives (policy.pollIntervalMs)
export const DEFAULT_POLL_INTERVAL_MS = gatewayDefaults.policy.pollIntervalMs

export interface PolicyWatcherOptions {
  dir: string
  reload (): Promise<unknown>
  debounceMs?: number
  pollIntervalMs?: number
  onError? (err: Error): void
}

export class PolicyWatcher {
  readonly #options: PolicyWatcherOptions
  #watcher: FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #poll: NodeJS.Timeout | undefined
  #stopped = true

  constructor (options: PolicyWatcherOptions) {
    this.#options = options
  }

  start (): void {
    if (!this.#stopped) return
    this.#stopped = false
    this.#watch()
    this.#poll = setInterval(() => {
      if (!this.#watcher) this.#watch()
      this.#reload()
    }, this.#options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS)
    this.#poll.unref()
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#poll)
    clearTimeout(this.#debounce)
    this.#watcher?.close()
    this.#watcher = undefined
  }

  #watch (): void {
    try {
      const watcher = watch(this.#options.dir, { persistent: false }, () => this.#schedule())
      watcher.on('error', () => {
        // e.g. the directory was removed; the poll recreates the watcher when it is back
        watcher.close()
        if (this.#watcher === watcher) this.#watcher = undefined
      })
      this.#watcher = watcher
    } catch {
      this.#watcher = undefined
    }
  }

  #schedule (): void {
    if (this.#stopped) return
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => this.#reload(), this.#options.debounceMs ?? DEFAULT_DEBOUNCE_MS)
    this.#debounce.unref()
  }

  #reload (): void {
    if (this.#stopped) return
    this.#options.reload().catch(err => this.#options.onError?.(err as Error))
  }
}
