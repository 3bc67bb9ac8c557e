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

interface InflightLike {
  sentAt: number | null
  requestTimeout: number
  timeoutRequest: () => void
}

interface RequestQueueLike {
  pending: unknown[]
  inflight: Map<number, InflightLike>
  throttledUntil: number
  requestTimeout: number
  enforceRequestTimeout: boolean
  isConnected: () => boolean
  scheduleCheckPendingRequests: () => void
  scheduleRequestTimeoutCheck: () => void
  push: (request: unknown) => void
  destroy: () => void
  /** ours: the request-timeout check is armed (the connection is up); it runs only while a request waits */
  sluiceTimeoutArmed?: boolean
  /** ours: the running check, while a request is pending or in flight */
  sluiceTimeoutCheck?: NodeJS.Timeout
}

const require = createRequire(import.meta.url)
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueueLike }
const schedule = RequestQueue.prototype.scheduleCheckPendingRequests
const push = RequestQueue.prototype.push
const destroy = RequestQueue.prototype.destroy

if (!(schedule as { sluiceIdle?: true }).sluiceIdle) {
  const idle = function scheduleCheckPendingRequests (this: RequestQueueLike): void {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return
    schedule.call(this)
  }
  Object.defineProperty(idle, 'sluiceIdle', { value: true })
  RequestQueue.prototype.scheduleCheckPendingRequests = idle
}

// The same queue checks its requests for a timeout every min(requestTimeout, 100) ms from the moment its
// connection is up until it closes, requests or none: 10 wakeups a second for each idle connection, for good
// (the admin's and the producer's: 220 of an idle gateway's timer callbacks in 30 s, its largest JavaScript
// timer; bench/README.md, idle-topics). Here the check is armed when the connection is up, as before, but
// runs only while a request is pending or in flight: a push starts it, and it stops itself once the queue is
// empty. A request is timed out as before: the check runs at the same period from its push until its answer.
if (!(RequestQueue.prototype.scheduleRequestTimeoutCheck as { sluiceIdle?: true }).sluiceIdle) {
  const stopCheck = (queue: RequestQueueLike): void => {
    clearInterval(queue.sluiceTimeoutCheck)
    queue.sluiceTimeoutCheck = undefined
  }
  const startCheck = (queue: RequestQueueLike): void => {
    queue.sluiceTimeoutCheck = setInterval(() => {
      // kafkajs's own check, as it was
      queue.inflight.forEach(request => {
        if (request.sentAt !== null && Date.now() - request.sentAt > request.requestTimeout) request.timeoutRequest()
      })
      if (!queue.isConnected()) {
        queue.destroy()
        return
      }
      if (queue.inflight.size === 0 && queue.pending.length === 0) stopCheck(queue)
    }, Math.min(queue.requestTimeout, 100))
  }
  const arm = function scheduleRequestTimeoutCheck (this: RequestQueueLike): void {
    if (!this.enforceRequestTimeout) return
    this.destroy()
    this.sluiceTimeoutArmed = true
  }
  Object.defineProperty(arm, 'sluiceIdle', { value: true })
  RequestQueue.prototype.scheduleRequestTimeoutCheck = arm
  RequestQueue.prototype.push = function (this: RequestQueueLike, request: unknown): void {
    if (this.sluiceTimeoutArmed && this.sluiceTimeoutCheck === undefined) startCheck(this)
    push.call(this, request)
  }
  RequestQueue.prototype.destroy = function (this: RequestQueueLike): void {
    this.sluiceTimeoutArmed = false
    stopCheck(this)
    destroy.call(this)
  }
}
