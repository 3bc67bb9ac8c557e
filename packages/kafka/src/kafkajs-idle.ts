// kafkajs 2.2.4 (its last release) keeps every connection that has answered one request busy for good:
// after each answer its request queue schedules a check of pending requests at `throttledUntil - now`,
// which is negative when nothing is throttled (throttledUntil starts at -1), so Node runs it after 1 ms
// (with a TimeoutNegativeWarning), and the check schedules the next one. Measured here: a KafkaClient idle
// for 5 s after one listTopics() created 4,062 timers and spent 134.7 ms of CPU (2.7 % of a core, per
// connection), against 1 timer and 0.3 ms without the request. Upstream: tulios/kafkajs#1704 and #1751,
// fixes open since 2025 (#1755, #1768), unmerged. Until the admin moves to @platformatic/kafka, the check
// is not scheduled when nothing is pending and nothing is throttled: a request pushed later sends itself
// or, if it has to wait, schedules the check again (push() and fulfillRequest() both do), and a throttle
// still gets its timer.
import { createRequire } from 'node:module'

interface RequestQueueLike {
  pending: unknown[]
  throttledUntil: number
  scheduleCheckPendingRequests: () => void
}

const require = createRequire(import.meta.url)
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueueLike }
const schedule = RequestQueue.prototype.scheduleCheckPendingRequests

if (!(schedule as { sluiceIdle?: true }).sluiceIdle) {
  const idle = function scheduleCheckPendingRequests (this: RequestQueueLike): void {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return
    schedule.call(this)
  }
  Object.defineProperty(idle, 'sluiceIdle', { value: true })
  RequestQueue.prototype.scheduleCheckPendingRequests = idle
}
