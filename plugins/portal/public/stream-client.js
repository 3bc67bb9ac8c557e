// The console's protocol client: one WebSocket to this gateway's /v1/stream
// with the reader's own credential, and what the frames it reads say about
// the socket: the topics and patterns it holds (and the topics each pattern
// reached), and the reader's own resume cursor. No DOM: the console
// (console.js) shows what this hears through its hooks.
import { isObject, text } from './dom.js'
import { matches } from './catalogue.js'

// The gateway refuses credentials over 8 KiB (plugins/auth: MAX_CREDENTIAL_LENGTH).
export const MAX_CREDENTIAL_LENGTH = 8192
// The gateway takes at most 100 topics per frame (plugins/stream: MAX_TOPICS_PER_FRAME).
export const MAX_TOPICS = 100
// What a WebSocket subprotocol may hold (RFC 6455 §4.1: an RFC 7230 token).
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/
// A pattern /v1/stream takes in subscribe and unsubscribe (plugins/stream/README.md "Patterns"):
// `*` within one dot-separated segment, `**` across dots
const PATTERN = /^[A-Za-z0-9._*-]{1,249}$/

/**
 * @typedef {{ op: string, id?: string, [field: string]: unknown }} Frame
 * @typedef {'auto' | 'subprotocol' | 'access_token' | 'api_key'} CredentialMode
 */

/**
 * Why `topic` is not something the gateway takes in a frame, or '' when it is.
 * Subscribe and unsubscribe take patterns with the gateway's own rules: at
 * most one `**` in a pattern, one wildcard between two dots, no `***`.
 * @param {string} topic
 * @param {boolean} patterns
 */
export function topicProblem (topic, patterns) {
  if (topic.includes('{')) return `"${topic.slice(0, 64)}": {sub} and other {claims} are filled from your credential (orders.{sub} is orders.<your subject>); connect and the console fills them in`
  if (TOPIC.test(topic)) return ''
  if (!patterns) return `"${topic.slice(0, 64)}": publish takes one topic name, 1 to 249 of A-Z a-z 0-9 . _ -${topic.includes('*') ? ', not a pattern' : ''}`
  if (!PATTERN.test(topic)) return `"${topic.slice(0, 64)}": topic names are 1 to 249 of A-Z a-z 0-9 . _ -, and patterns add * (one segment) and ** (any characters)`
  if ((topic.match(/\*\*/g) ?? []).length > 1) return `"${topic.slice(0, 64)}": at most one ** in a pattern`
  if (/\*{3}/.test(topic)) return `"${topic.slice(0, 64)}": at most two * in a row`
  if (topic.split('.').some(segment => (segment.match(/\*+/g) ?? []).length > 1)) return `"${topic.slice(0, 64)}": at most one wildcard between two dots`
  return ''
}

/**
 * How the credential travels. Browsers cannot set headers on a WebSocket: a
 * token goes in the `bearer.<token>` subprotocol (kept out of URLs and so out
 * of proxies' logs), an API key (`sk_…`) in the `api_key` query parameter.
 * @param {string} credential
 * @param {CredentialMode} mode
 * @returns {{ mode: Exclude<CredentialMode, 'auto'>, url: URL, protocols: string[] }}
 */
export function streamRequest (credential, mode) {
  const url = new URL('/v1/stream', window.location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  let chosen = mode
  if (chosen === 'auto') {
    if (credential.startsWith('sk_')) chosen = 'api_key'
    else chosen = SUBPROTOCOL_TOKEN.test(credential) ? 'subprotocol' : 'access_token'
  }
  if (chosen === 'subprotocol') return { mode: chosen, url, protocols: ['sluice.v1', `bearer.${credential}`] }
  url.searchParams.set(chosen, credential)
  return { mode: chosen, url, protocols: ['sluice.v1'] }
}

/**
 * The topics of a comma-separated list, each once.
 * @param {string} value
 */
export function topicsOf (value) {
  return [...new Set(value.split(',').map(t => t.trim()).filter(Boolean))]
}

/**
 * @param {unknown} value
 * @returns {string[]}
 */
export function stringList (value) {
  return Array.isArray(value) ? value.filter(v => typeof v === 'string') : []
}

export class StreamClient {
  /** @type {WebSocket | undefined} */
  #ws
  #opened = false
  #frameId = 0
  /** messages received since the page loaded */
  received = 0
  /** the topics and patterns this socket holds */
  /** @type {Set<string>} */
  subscriptions = new Set()
  /** next offset per topic, per partition: the reader's own resume cursor */
  /** @type {Map<string, Map<number, bigint>>} */
  positions = new Map()
  /** per pattern subscribed, the topics it reached */
  /** @type {Map<string, Set<string>>} */
  reached = new Map()
  /** the credential of the last connect, and how it travelled */
  /** @type {{ credential: string, mode: Exclude<CredentialMode, 'auto'> } | undefined} */
  last
  /** the socket opened */
  /** @type {(ws: WebSocket) => void} */
  onOpen = () => {}
  /** the socket closed; `opened`: whether it had opened (else the upgrade was refused) */
  /** @type {(event: CloseEvent, opened: boolean) => void} */
  onClose = () => {}
  /** a frame read, once its bookkeeping is done */
  /** @type {(frame: Frame) => void} */
  onFrame = () => {}
  /** a frame that is not one of the protocol's: what it was, and its start */
  /** @type {(title: string, words: string) => void} */
  onStrangeFrame = () => {}

  /** the socket of the current connection, if any: an answer about an earlier one is stale */
  get socket () {
    return this.#ws
  }

  /**
   * Opens a socket with `credential`, as `request` says it travels; closes the one before. Throws what
   * the WebSocket constructor throws (a subprotocol it refuses).
   * @param {string} credential
   * @param {ReturnType<typeof streamRequest>} request
   */
  connect (credential, request) {
    this.disconnect()
    const ws = new WebSocket(request.url, request.protocols)
    this.#ws = ws
    this.#opened = false
    this.last = { credential, mode: request.mode }
    ws.addEventListener('open', () => {
      if (this.#ws !== ws) return
      this.#opened = true
      this.onOpen(ws)
    })
    ws.addEventListener('message', event => {
      if (this.#ws !== ws) return
      this.#receive(event.data)
    })
    ws.addEventListener('close', event => {
      if (this.#ws !== ws) return
      this.#ws = undefined
      this.subscriptions.clear()
      this.reached.clear()
      this.onClose(event, this.#opened)
    })
  }

  disconnect () {
    const ws = this.#ws
    if (!ws) return
    // the close event still comes, and says 1000
    ws.close(1000, 'closed in the console')
  }

  /** @param {string} prefix */
  nextId (prefix) {
    this.#frameId++
    return `${prefix}${this.#frameId}`
  }

  /**
   * Sends a frame; false when there is no open socket to send it on.
   * @param {Frame} frame
   */
  send (frame) {
    const ws = this.#ws
    if (!ws || ws.readyState !== WebSocket.OPEN) return false
    ws.send(JSON.stringify(frame))
    return true
  }

  /** The reader's resume cursor: where each topic's partitions go on, in the gateway's cursor syntax. */
  cursor () {
    const parts = []
    for (const [topic, partitions] of this.positions) {
      parts.push(`${topic}@${[...partitions].sort((a, b) => a[0] - b[0]).map(([p, next]) => `${p}:${next}`).join(',')}`)
    }
    return parts.join(';')
  }

  /**
   * Headers that carry the last credential over plain HTTP, as the upgrade took it.
   * @returns {Record<string, string>}
   */
  credentialHeaders () {
    const last = this.last
    if (!last) return {}
    return last.mode === 'api_key' ? { 'x-api-key': last.credential } : { authorization: `Bearer ${last.credential}` }
  }

  /**
   * A topic the gateway stopped (lagging, a policy change): gone from the list, and from the pattern that reached it.
   * @param {string} topic
   */
  #forget (topic) {
    this.subscriptions.delete(topic)
    for (const reached of this.reached.values()) reached.delete(topic)
  }

  /**
   * The frame's partition is next read at `next` (a gap's end never moves it back).
   * @param {Frame} frame
   * @param {bigint} next
   */
  #advance (frame, next) {
    const partition = Number(frame.partition)
    if (!Number.isInteger(partition)) return
    const topic = text(frame.topic)
    let partitions = this.positions.get(topic)
    if (!partitions) this.positions.set(topic, (partitions = new Map()))
    if (frame.op === 'message' || (partitions.get(partition) ?? 0n) < next) partitions.set(partition, next)
  }

  /** @param {unknown} data */
  #receive (data) {
    if (typeof data !== 'string') return this.onStrangeFrame('A binary frame', '/v1/stream sends only text frames; this one is ignored.')
    /** @type {unknown} */
    let parsed
    try {
      parsed = JSON.parse(data)
    } catch {
      return this.onStrangeFrame('A frame that is not JSON', data.slice(0, 200))
    }
    if (!isObject(parsed) || typeof parsed.op !== 'string') return this.onStrangeFrame('A frame without op', data.slice(0, 200))
    const frame = /** @type {Frame} */ (parsed)
    switch (frame.op) {
      case 'message': {
        this.received++
        const offset = text(frame.offset)
        if (/^\d{1,20}$/.test(offset)) this.#advance(frame, BigInt(offset) + 1n)
        break
      }
      case 'subscribed': {
        const topics = stringList(frame.topics)
        const pattern = text(frame.pattern)
        if (pattern) {
          // a topic created later that a pattern of this socket reaches
          for (const topic of topics) this.reached.get(pattern)?.add(topic)
          break
        }
        const matched = stringList(frame.matched)
        for (const topic of topics) {
          this.subscriptions.add(topic)
          if (topic.includes('*')) this.reached.set(topic, new Set(matched.filter(m => matches(m, topic))))
        }
        break
      }
      case 'unsubscribed':
        for (const topic of stringList(frame.topics)) {
          this.subscriptions.delete(topic)
          this.reached.delete(topic)
        }
        break
      case 'gap': {
        // records Kafka no longer holds: the cursor moves past them, as past a message
        const to = text(frame.to)
        if (/^\d{1,20}$/.test(to)) this.#advance(frame, BigInt(to))
        break
      }
      case 'lagging':
        this.#forget(text(frame.topic))
        break
      case 'error':
        // a policy change withdrew these: the gateway ended their subscriptions
        for (const topic of stringList(frame.topics)) this.#forget(topic)
        break
    }
    this.onFrame(frame)
  }
}
