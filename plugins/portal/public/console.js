// The live console: one WebSocket to this gateway's /v1/stream with the
// reader's own credential. It subscribes, shows messages as they arrive,
// publishes, and explains every error frame and close code in words.
import { el, append, count, plural, isObject, text } from './dom.js'
import { ERROR_CODES, CLOSE_CODES, REFUSAL_CODES, explain, duration } from './explain.js'
import { limitsInWords, matches } from './catalogue.js'

// What the console keeps on screen. A feed of a few messages a second fills
// this in about a minute; more rows than a reader can follow only slow the tab.
export const MAX_MESSAGES = 200
// The events log (acks, errors, closes): replies to what the reader did, rarer than messages.
export const MAX_EVENTS = 100
// A value longer than this is cut in its row (the whole frame is in the browser's devtools).
const MAX_VALUE_CHARS = 2000
// The gateway refuses credentials over 8 KiB (plugins/auth: MAX_CREDENTIAL_LENGTH).
const MAX_CREDENTIAL_LENGTH = 8192
// The gateway takes at most 100 topics per frame (plugins/stream: MAX_TOPICS_PER_FRAME).
const MAX_TOPICS = 100
// What a WebSocket subprotocol may hold (RFC 6455 §4.1: an RFC 7230 token).
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/
// A pattern /v1/stream takes in subscribe and unsubscribe (plugins/stream/README.md "Patterns"):
// `*` within one dot-separated segment, `**` across dots
const PATTERN = /^[A-Za-z0-9._*-]{1,249}$/
// A claim value that fills a `{claim}` of a rule (plugins/policy: a plain segment)
const CLAIM_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/

/** How the console names a credential's kind. */
const KIND_WORDS = { dev: 'the dev credential', jwt: 'a JWT', 'api-key': 'an API key' }

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
 * @typedef {{ op: string, id?: string, [field: string]: unknown }} Frame
 * @typedef {'auto' | 'subprotocol' | 'access_token' | 'api_key'} CredentialMode
 */

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
 * A list of at most `max` rows, newest first: the oldest goes when a new one comes.
 * @param {HTMLElement} list
 * @param {HTMLElement} row
 * @param {number} max
 */
export function prepend (list, row, max) {
  list.insertBefore(row, list.firstChild)
  while (list.children.length > max) list.lastElementChild?.remove()
}

/**
 * @param {string} value
 */
function topicsOf (value) {
  return [...new Set(value.split(',').map(t => t.trim()).filter(Boolean))]
}

/**
 * @param {unknown} value
 */
function shortJson (value) {
  let out
  try {
    out = JSON.stringify(value) ?? String(value)
  } catch {
    out = String(value)
  }
  return out.length > MAX_VALUE_CHARS ? out.slice(0, MAX_VALUE_CHARS) + ` … (${out.length - MAX_VALUE_CHARS} more characters)` : out
}

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function byId (id) {
  const node = document.getElementById(id)
  if (!node) throw new Error(`the page has no #${id}`)
  return node
}

export class StreamConsole {
  /** @type {WebSocket | undefined} */
  #ws
  #opened = false
  #frameId = 0
  #received = 0
  /** @type {Set<string>} */
  #subscriptions = new Set()
  /** next offset per topic, per partition: the reader's own resume cursor */
  /** @type {Map<string, Map<number, bigint>>} */
  #positions = new Map()
  /** @type {{ credential: string, mode: Exclude<CredentialMode, 'auto'> } | undefined} */
  #last
  /** per pattern subscribed, the topics it reached */
  /** @type {Map<string, Set<string>>} */
  #reached = new Map()
  /** who the credential is to the gateway (GET /v1/me), once connected */
  /** @type {import('./catalogue.js').Reader | undefined} */
  reader
  /** hears the reader once the console knows them (the catalogue marks their plan) */
  /** @type {(reader: import('./catalogue.js').Reader) => void} */
  onReader = () => {}

  constructor () {
    this.credential = /** @type {HTMLInputElement} */ (byId('credential'))
    this.mode = /** @type {HTMLSelectElement} */ (byId('credential-mode'))
    this.connectButton = /** @type {HTMLButtonElement} */ (byId('connect'))
    this.disconnectButton = /** @type {HTMLButtonElement} */ (byId('disconnect'))
    this.status = byId('connection-status')
    this.subscribeTopic = /** @type {HTMLInputElement} */ (byId('subscribe-topic'))
    this.subscribeFrom = /** @type {HTMLInputElement} */ (byId('subscribe-from'))
    this.subscriptionList = byId('subscriptions')
    this.publishTopic = /** @type {HTMLInputElement} */ (byId('publish-topic'))
    this.publishKey = /** @type {HTMLInputElement} */ (byId('publish-key'))
    this.publishValue = /** @type {HTMLTextAreaElement} */ (byId('publish-value'))
    this.publishResult = byId('publish-result')
    this.events = byId('events')
    this.messages = byId('messages')
    this.messageCount = byId('message-count')
    this.cursor = byId('cursor')
    this.identity = byId('identity')

    byId('connect-form').addEventListener('submit', event => { event.preventDefault(); this.connect() })
    this.disconnectButton.addEventListener('click', () => this.disconnect())
    byId('subscribe-form').addEventListener('submit', event => { event.preventDefault(); this.subscribe() })
    byId('unsubscribe').addEventListener('click', () => this.unsubscribe(topicsOf(this.subscribeTopic.value)))
    byId('publish-form').addEventListener('submit', event => { event.preventDefault(); this.publish() })
    byId('clear-messages').addEventListener('click', () => { this.messages.replaceChildren(); this.#showCount() })
    byId('use-cursor').addEventListener('click', () => { this.subscribeFrom.value = this.cursor.textContent ?? '' })
    this.#setConnected(false)
    this.#showCount()
  }

  /** Fills the subscribe form (the catalogue's "try it" buttons). */
  fillSubscribe (/** @type {string} */ topic) {
    this.subscribeTopic.value = topic
    this.subscribeTopic.focus()
  }

  /** Fills the publish form. */
  fillPublish (/** @type {string} */ topic, /** @type {unknown} */ value) {
    this.publishTopic.value = topic
    if (value !== undefined) this.publishValue.value = JSON.stringify(value, null, 2)
    this.publishTopic.focus()
  }

  connect () {
    const credential = this.credential.value.trim()
    if (!credential) return this.#event('error', 'No credential', 'Paste a token (a JWT, or the dev credential that `npm run dev` prints) or an API key (sk_…).')
    if (credential.length > MAX_CREDENTIAL_LENGTH) return this.#event('error', 'Credential too long', `The gateway refuses credentials over ${count(MAX_CREDENTIAL_LENGTH)} characters.`)
    if (/\s/.test(credential)) return this.#event('error', 'Credential has spaces', 'Paste the token alone, without "Bearer " and without line breaks.')
    this.disconnect()
    const request = streamRequest(credential, /** @type {CredentialMode} */ (this.mode.value))
    let ws
    try {
      ws = new WebSocket(request.url, request.protocols)
    } catch (err) {
      return this.#event('error', 'Cannot open a WebSocket', `${/** @type {Error} */ (err).message}. Try sending the credential as a query parameter instead.`)
    }
    this.#ws = ws
    this.#opened = false
    this.#last = { credential, mode: request.mode }
    // another credential may be someone else: shown again once the gateway says
    this.identity.hidden = true
    this.#setStatus('connecting', `Connecting (credential sent as ${request.mode === 'subprotocol' ? 'the bearer.<token> subprotocol' : `the ${request.mode} query parameter`})…`)
    this.connectButton.disabled = true
    this.disconnectButton.disabled = false
    ws.addEventListener('open', () => {
      if (this.#ws !== ws) return
      this.#opened = true
      this.#setConnected(true)
      this.#setStatus('connected', `Connected to /v1/stream (protocol ${ws.protocol || 'none'}).`)
      this.#whoAmI(ws)
    })
    ws.addEventListener('message', event => {
      if (this.#ws !== ws) return
      this.#onFrame(event.data)
    })
    ws.addEventListener('close', event => {
      if (this.#ws !== ws) return
      this.#ws = undefined
      const opened = this.#opened
      this.#setConnected(false)
      this.#subscriptions.clear()
      this.#reached.clear()
      this.#showSubscriptions()
      const code = event.code
      const what = explain(CLOSE_CODES, code, code >= 4000 ? 'A code of this gateway the console does not know.' : 'A WebSocket close code the console does not know.')
      this.#setStatus('closed', `Closed: ${code}${event.reason ? ` "${event.reason}"` : ''}.`)
      this.#event('close', `Closed with ${code}${event.reason ? `: ${event.reason}` : ''}`, what, { code })
      if (!opened) this.#diagnose()
    })
  }

  disconnect () {
    const ws = this.#ws
    if (!ws) return
    // the close event still comes, and says 1000
    ws.close(1000, 'closed in the console')
  }

  subscribe () {
    const topics = topicsOf(this.subscribeTopic.value)
    if (!this.#checkTopics(topics, true)) return
    const from = this.subscribeFrom.value.trim() || 'latest'
    this.#send({ op: 'subscribe', id: this.#nextId('s'), topics, from })
  }

  /** @param {string[]} topics */
  unsubscribe (topics) {
    if (!this.#checkTopics(topics, true)) return
    this.#send({ op: 'unsubscribe', id: this.#nextId('u'), topics })
  }

  publish () {
    const topic = this.publishTopic.value.trim()
    if (!this.#checkTopics([topic], false)) return
    const raw = this.publishValue.value
    let value
    try {
      value = JSON.parse(raw)
    } catch (err) {
      this.publishResult.textContent = ''
      return this.#event('error', 'The value is not JSON', `${/** @type {Error} */ (err).message}. A text topic takes a JSON string, e.g. "hello".`)
    }
    const key = this.publishKey.value
    /** @type {Frame} */
    const frame = { op: 'publish', id: this.#nextId('p'), topic, value }
    if (key) frame.key = key
    if (this.#send(frame)) this.publishResult.replaceChildren(el('span', { class: 'pending' }, `Publishing ${frame.id}…`))
  }

  /** @param {string} prefix */
  #nextId (prefix) {
    this.#frameId++
    return `${prefix}${this.#frameId}`
  }

  /**
   * @param {string[]} topics
   * @param {boolean} patterns whether the frame takes patterns (subscribe, unsubscribe)
   */
  #checkTopics (topics, patterns) {
    if (topics.length === 0) {
      this.#event('error', 'No topic', 'Name a topic (or several, separated by commas).')
      return false
    }
    if (topics.length > MAX_TOPICS) {
      this.#event('error', 'Too many topics', `At most ${MAX_TOPICS} per frame.`)
      return false
    }
    for (const topic of topics) {
      const problem = topicProblem(topic, patterns)
      if (problem) {
        this.#event('error', patterns ? 'Not a topic name or pattern' : 'Not a topic name', `${problem}.`)
        return false
      }
    }
    return true
  }

  /** @param {Frame} frame */
  #send (frame) {
    const ws = this.#ws
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.#event('error', 'Not connected', 'Connect first.')
      return false
    }
    ws.send(JSON.stringify(frame))
    this.#event('sent', `Sent ${frame.op}${frame.id ? ` ${frame.id}` : ''}`, shortJson(frame))
    return true
  }

  /** @param {unknown} data */
  #onFrame (data) {
    if (typeof data !== 'string') return this.#event('error', 'A binary frame', '/v1/stream sends only text frames; this one is ignored.')
    /** @type {unknown} */
    let parsed
    try {
      parsed = JSON.parse(data)
    } catch {
      return this.#event('error', 'A frame that is not JSON', data.slice(0, 200))
    }
    if (!isObject(parsed) || typeof parsed.op !== 'string') return this.#event('error', 'A frame without op', data.slice(0, 200))
    const frame = /** @type {Frame} */ (parsed)
    const id = text(frame.id)
    switch (frame.op) {
      case 'message': return this.#onMessage(frame)
      case 'subscribed': {
        const topics = stringList(frame.topics)
        const pattern = text(frame.pattern)
        if (pattern) {
          // a topic created later that a pattern of this socket reaches
          for (const topic of topics) this.#reached.get(pattern)?.add(topic)
          this.#showSubscriptions()
          return this.#event('subscribed', `Subscribed to ${topics.join(', ')}`, `A new topic that ${pattern} reaches.`)
        }
        const matched = stringList(frame.matched)
        for (const topic of topics) {
          this.#subscriptions.add(topic)
          if (topic.includes('*')) this.#reached.set(topic, new Set(matched.filter(m => matches(m, topic))))
        }
        this.#showSubscriptions()
        const reach = Array.isArray(frame.matched)
          ? `; the ${topics.length === 1 ? 'pattern reaches' : 'patterns reach'} ${matched.length ? matched.join(', ') : 'no topic yet (one created later is subscribed as it appears)'}`
          : ''
        return this.#event('subscribed', `Subscribed ${id}`, `to ${topics.join(', ')}${reach}`)
      }
      case 'unsubscribed': {
        for (const topic of stringList(frame.topics)) {
          this.#subscriptions.delete(topic)
          this.#reached.delete(topic)
        }
        this.#showSubscriptions()
        return this.#event('unsubscribed', `Unsubscribed ${id}`, `from ${stringList(frame.topics).join(', ')}`)
      }
      case 'ack': {
        const where = `topic ${text(frame.topic)}, partition ${Number(frame.partition)}, offset ${text(frame.offset)}`
        this.publishResult.replaceChildren(el('span', { class: 'ok' }, `Acked ${id}: ${where}`))
        return this.#event('ack', `Acked ${id}`, `Kafka wrote it: ${where}.`, { partition: Number(frame.partition), offset: text(frame.offset) })
      }
      case 'lagging': {
        const topic = text(frame.topic)
        this.#forget(topic)
        const resume = text(frame.resume)
        const row = this.#event('lagging', `Lagging on ${topic}: ${plural(Number(frame.dropped), 'message')} dropped`,
          'This socket did not read fast enough, so the gateway dropped messages for it and ended the subscription. Subscribe again from the resume cursor to replay exactly what was missed.')
        append(row, [el('button', { type: 'button', onclick: () => { this.subscribeTopic.value = topic; this.subscribeFrom.value = resume } }, 'Resume from ', el('code', {}, resume))])
        return
      }
      case 'error': {
        const code = text(frame.code, 'unknown')
        const topics = stringList(frame.topics)
        for (const topic of topics) this.#forget(topic)
        let words = explain(ERROR_CODES, code, 'An error code the console does not know.')
        if (typeof frame.retryAfterMs === 'number') words += ` Retry after ${duration(frame.retryAfterMs)}.`
        if (topics.length > 0) words += ` Not about a frame of yours: a policy change withdrew ${topics.join(', ')}, and the gateway ended those subscriptions.`
        if (id && id.startsWith('p')) this.publishResult.replaceChildren(el('span', { class: 'bad' }, `Refused ${id}: ${code}`))
        return this.#event('error', `${code}${id ? ` (${id})` : ''}: ${text(frame.message)}`, words, { code })
      }
      case 'pong': return this.#event('pong', `Pong ${id}`, 'The gateway answered a ping.')
      case 'authenticated': return this.#event('authenticated', `Renewed ${id}`, typeof frame.expiresAt === 'number' ? `The credential now expires at ${new Date(frame.expiresAt).toISOString()}.` : '')
      default: return this.#event('unknown', `Frame "${frame.op.slice(0, 40)}"`, shortJson(frame))
    }
  }

  /** @param {Frame} frame */
  #onMessage (frame) {
    this.#received++
    const topic = text(frame.topic)
    const partition = Number(frame.partition)
    const offset = text(frame.offset)
    if (/^\d{1,20}$/.test(offset) && Number.isInteger(partition)) {
      let partitions = this.#positions.get(topic)
      if (!partitions) this.#positions.set(topic, (partitions = new Map()))
      partitions.set(partition, BigInt(offset) + 1n)
      this.#showCursor()
    }
    const encoding = text(frame.valueEncoding)
    const value = shortJson(frame.value)
    // one line a message, so that a screen holds many; the whole value is the row's tooltip
    const row = el('li', { class: 'message', 'data-topic': topic, 'data-partition': partition, 'data-offset': offset, title: value },
      // what a reader scans first comes first; the key and the time may be cut off at the row's end
      el('span', { class: 'where' }, `${topic} #${partition} @${offset}`),
      encoding ? el('span', { class: 'encoding' }, `${encoding}: not what the topic declares, shown as sent`) : null,
      el('code', { class: 'value' }, value),
      frame.key !== undefined && frame.key !== null ? el('span', { class: 'key' }, ` key ${shortJson(frame.key)}`) : null,
      typeof frame.timestamp === 'number' ? el('time', { datetime: new Date(frame.timestamp).toISOString() }, new Date(frame.timestamp).toISOString().slice(11, 23)) : null)
    prepend(this.messages, row, MAX_MESSAGES)
    this.#showCount()
  }

  #showCount () {
    const shown = this.messages.children.length
    this.messageCount.textContent = `${plural(this.#received, 'message')} received, the last ${count(shown)} shown (at most ${MAX_MESSAGES})`
  }

  #showCursor () {
    const parts = []
    for (const [topic, partitions] of this.#positions) {
      parts.push(`${topic}@${[...partitions].sort((a, b) => a[0] - b[0]).map(([p, next]) => `${p}:${next}`).join(',')}`)
    }
    this.cursor.textContent = parts.join(';')
  }

  /**
   * A topic the gateway stopped (lagging, a policy change): gone from the list, and from the pattern that reached it.
   * @param {string} topic
   */
  #forget (topic) {
    this.#subscriptions.delete(topic)
    for (const reached of this.#reached.values()) reached.delete(topic)
    this.#showSubscriptions()
  }

  #showSubscriptions () {
    this.subscriptionList.replaceChildren(...[...this.#subscriptions].sort().map(topic => {
      const reached = this.#reached.get(topic)
      return el('li', { 'data-topic': topic }, el('code', {}, topic), ' ',
        reached ? el('span', { class: 'tag' }, 'pattern') : null, ' ',
        el('button', { type: 'button', class: 'small', onclick: () => this.unsubscribe([topic]) }, 'Unsubscribe'),
        reached ? el('span', { class: 'reached' }, reached.size ? ` reaches ${[...reached].sort().join(', ')}` : ' reaches no topic yet') : null)
    }))
    if (this.#subscriptions.size === 0) this.subscriptionList.replaceChildren(el('li', { class: 'none' }, 'No subscription.'))
  }

  /**
   * Headers that carry the last credential over plain HTTP, as the upgrade took it.
   * @returns {Record<string, string>}
   */
  #credentialHeaders () {
    const last = this.#last
    if (!last) return {}
    return last.mode === 'api_key' ? { 'x-api-key': last.credential } : { authorization: `Bearer ${last.credential}` }
  }

  /**
   * Asks the gateway who this credential is (GET /v1/me, decided by the
   * policy that authorizes every frame) and shows it: the subject, the plan,
   * what it may subscribe to and publish on.
   * @param {WebSocket} ws the socket this is for: a later connect makes the answer stale
   */
  async #whoAmI (ws) {
    /** @type {unknown} */
    let me
    try {
      const response = await fetch('/v1/me', { headers: { accept: 'application/json', ...this.#credentialHeaders() }, cache: 'no-store', credentials: 'omit' })
      me = await response.json()
      if (!response.ok) throw new Error(`HTTP ${response.status}${isObject(me) && isObject(me.error) ? ` ${text(me.error.code)}` : ''}`)
    } catch (err) {
      if (this.#ws !== ws) return
      this.identity.hidden = false
      this.identity.replaceChildren(el('p', { class: 'bad' }, `Could not ask the gateway who you are: ${/** @type {Error} */ (err).message}`))
      return
    }
    if (this.#ws !== ws || !isObject(me) || typeof me.subject !== 'string' || !Array.isArray(me.products)) return
    const reader = /** @type {import('./catalogue.js').Reader} */ (me)
    this.reader = reader
    this.#showReader(reader)
    // a topic filled in before the reader was known: {sub} is their subject
    if (this.publishTopic.value.includes('{sub}') && CLAIM_SEGMENT.test(reader.subject)) {
      this.publishTopic.value = this.publishTopic.value.replaceAll('{sub}', reader.subject)
    }
    this.onReader(reader)
  }

  /** @param {import('./catalogue.js').Reader} reader */
  #showReader (reader) {
    const plan = reader.plan
    /** @param {string[]} topics */
    const codes = topics => topics.length ? topics.flatMap((t, i) => [i > 0 ? ', ' : '', el('code', {}, t)]) : ['nothing']
    const products = reader.products.slice(0, 100)
    this.identity.hidden = false
    this.identity.replaceChildren()
    append(this.identity, [
      el('p', { class: 'who' }, 'You are ', el('strong', { id: 'identity-subject' }, reader.subject),
        ` (${explain(KIND_WORDS, reader.kind, reader.kind)}), on plan `,
        el('strong', { id: 'identity-plan', 'data-plan': plan?.name }, plan ? plan.title : 'none'),
        plan ? '' : ': no access rule grants this credential anything'),
      plan ? el('details', { class: 'plan-limits' }, el('summary', {}, `What plan ${plan.title} allows you`), el('ul', { class: 'limits' }, limitsInWords(plan.limits))) : null,
      el('ul', { class: 'grants' }, products.map(p => el('li', { 'data-product': p.name },
        el('strong', {}, p.title), ': subscribe ', ...codes(p.subscribe), '; publish ', ...codes(p.publish))))])
  }

  /** @param {boolean} connected */
  #setConnected (connected) {
    this.connectButton.disabled = connected
    this.disconnectButton.disabled = !connected
    for (const id of ['subscribe-submit', 'unsubscribe', 'publish-submit']) {
      /** @type {HTMLButtonElement} */ (byId(id)).disabled = !connected
    }
  }

  /**
   * @param {string} state
   * @param {string} words
   */
  #setStatus (state, words) {
    this.status.dataset.state = state
    this.status.textContent = words
  }

  /**
   * A row in the events log: what happened, and what it means.
   * @param {string} kind
   * @param {string} title
   * @param {string} words
   * @param {Record<string, string | number>} [data]
   */
  #event (kind, title, words, data = {}) {
    const row = el('li', { class: `event event-${kind}` },
      el('time', {}, new Date().toISOString().slice(11, 19)),
      el('strong', {}, title),
      words ? el('p', { class: 'explain' }, words) : null)
    for (const [name, value] of Object.entries(data)) row.dataset[name] = String(value)
    prepend(this.events, row, MAX_EVENTS)
    return row
  }

  /**
   * The upgrade was refused and the browser will not say why (it shows 1006
   * only): ask the gateway over plain HTTP with the same credential in a
   * header. It answers the credential's refusal, or 426 when the credential
   * passes (then the Origin or a connection limit refused the socket).
   */
  async #diagnose () {
    if (!this.#last) return
    const headers = this.#credentialHeaders()
    try {
      const response = await fetch('/v1/stream', { headers, cache: 'no-store', credentials: 'omit' })
      /** @type {unknown} */
      const body = await response.json().catch(() => undefined)
      const error = isObject(body) && isObject(body.error) ? body.error : {}
      const code = text(error.code)
      if (response.status === 426) {
        return this.#event('diagnosis', 'The credential is valid', 'The gateway accepts this credential, yet refused the WebSocket: most likely this page\'s Origin is not in its allow-list (auth.origins), or your plan\'s connections are all in use (try again in a minute).')
      }
      this.#event('diagnosis', `Refused before the upgrade: HTTP ${response.status}${code ? ` ${code}` : ''}`,
        `${explain(REFUSAL_CODES, code, 'The gateway refused the connection.')}${text(error.message) ? ` The gateway says: "${text(error.message).slice(0, 300)}"` : ''}`, { status: response.status, code })
    } catch (err) {
      this.#event('diagnosis', 'The gateway does not answer', `${/** @type {Error} */ (err).message}: it may be down or unreachable from here.`)
    }
  }
}

/**
 * @param {unknown} value
 * @returns {string[]}
 */
function stringList (value) {
  return Array.isArray(value) ? value.filter(v => typeof v === 'string') : []
}
