// The live console's page: its forms and lists, on a protocol client
// (stream-client.js) that holds one WebSocket to this gateway's /v1/stream with
// the reader's own credential. It subscribes, shows messages as they arrive,
// publishes, and explains every error frame and close code in words.
import { el, append, count, plural, isObject, text } from './dom.js'
import { ERROR_CODES, CLOSE_CODES, REFUSAL_CODES, explain, duration } from './explain.js'
import { limitsInWords } from './catalogue.js'
import { MAX_CREDENTIAL_LENGTH, MAX_TOPICS, StreamClient, streamRequest, stringList, topicProblem, topicsOf } from './stream-client.js'

// What the console keeps on screen. A feed of a few messages a second fills
// this in about a minute; more rows than a reader can follow only slow the tab.
export const MAX_MESSAGES = 200
// The events log (acks, errors, closes): replies to what the reader did, rarer than messages.
export const MAX_EVENTS = 100
// A value longer than this is cut in its row (the whole frame is in the browser's devtools).
const MAX_VALUE_CHARS = 2000
// A claim value that fills a `{claim}` of a rule (plugins/policy: a plain segment)
const CLAIM_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/

/** How the console names a credential's kind. */
const KIND_WORDS = { dev: 'the dev credential', jwt: 'a JWT', 'api-key': 'an API key' }

/**
 * @typedef {import('./stream-client.js').Frame} Frame
 * @typedef {import('./stream-client.js').CredentialMode} CredentialMode
 */

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
  #client = new StreamClient()
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
    this.#client.onOpen = ws => {
      this.#setConnected(true)
      this.#setStatus('connected', `Connected to /v1/stream (protocol ${ws.protocol || 'none'}).`)
      this.#whoAmI(ws)
    }
    this.#client.onFrame = frame => this.#onFrame(frame)
    this.#client.onStrangeFrame = (title, words) => { this.#event('error', title, words) }
    this.#client.onClose = (event, opened) => {
      this.#setConnected(false)
      this.#showSubscriptions()
      const code = event.code
      const what = explain(CLOSE_CODES, code, code >= 4000 ? 'A code of this gateway the console does not know.' : 'A WebSocket close code the console does not know.')
      this.#setStatus('closed', `Closed: ${code}${event.reason ? ` "${event.reason}"` : ''}.`)
      this.#event('close', `Closed with ${code}${event.reason ? `: ${event.reason}` : ''}`, what, { code })
      if (!opened) this.#diagnose()
    }
    this.#setConnected(false)
    this.#showCount()
  }

  /** Asks the gateway again who the connected reader is: a plan an admin approved since shows, on the same socket. */
  refreshIdentity () {
    const ws = this.#client.socket
    if (ws && ws.readyState === WebSocket.OPEN) this.#whoAmI(ws)
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
    const request = streamRequest(credential, /** @type {CredentialMode} */ (this.mode.value))
    try {
      this.#client.connect(credential, request)
    } catch (err) {
      return this.#event('error', 'Cannot open a WebSocket', `${/** @type {Error} */ (err).message}. Try sending the credential as a query parameter instead.`)
    }
    // another credential may be someone else: shown again once the gateway says
    this.identity.hidden = true
    this.#setStatus('connecting', `Connecting (credential sent as ${request.mode === 'subprotocol' ? 'the bearer.<token> subprotocol' : `the ${request.mode} query parameter`})…`)
    this.connectButton.disabled = true
    this.disconnectButton.disabled = false
  }

  disconnect () {
    this.#client.disconnect()
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
    return this.#client.nextId(prefix)
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
    if (!this.#client.send(frame)) {
      this.#event('error', 'Not connected', 'Connect first.')
      return false
    }
    this.#event('sent', `Sent ${frame.op}${frame.id ? ` ${frame.id}` : ''}`, shortJson(frame))
    return true
  }

  /**
   * A frame the client read, its bookkeeping done (stream-client.js): shown.
   * @param {Frame} frame
   */
  #onFrame (frame) {
    const id = text(frame.id)
    switch (frame.op) {
      case 'message': return this.#onMessage(frame)
      case 'subscribed': {
        const topics = stringList(frame.topics)
        const pattern = text(frame.pattern)
        if (pattern) {
          // a topic created later that a pattern of this socket reaches
          this.#showSubscriptions()
          return this.#event('subscribed', `Subscribed to ${topics.join(', ')}`, `A new topic that ${pattern} reaches.`)
        }
        const matched = stringList(frame.matched)
        this.#showSubscriptions()
        const reach = Array.isArray(frame.matched)
          ? `; the ${topics.length === 1 ? 'pattern reaches' : 'patterns reach'} ${matched.length ? matched.join(', ') : 'no topic yet (one created later is subscribed as it appears)'}`
          : ''
        return this.#event('subscribed', `Subscribed ${id}`, `to ${topics.join(', ')}${reach}`)
      }
      case 'unsubscribed': {
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
        this.#showSubscriptions()
        const resume = text(frame.resume)
        const row = this.#event('lagging', `Lagging on ${topic}: ${plural(Number(frame.dropped), 'message')} dropped`,
          'This socket did not read fast enough, so the gateway dropped messages for it and ended the subscription. Subscribe again from the resume cursor to replay exactly what was missed.')
        append(row, [el('button', { type: 'button', onclick: () => { this.subscribeTopic.value = topic; this.subscribeFrom.value = resume } }, 'Resume from ', el('code', {}, resume))])
        return
      }
      case 'gap': {
        // the client moved its cursor past the records gone
        this.cursor.textContent = this.#client.cursor()
        const where = `${text(frame.topic)}, partition ${Number(frame.partition)}`
        return this.#event('gap', `Gap on ${where}: offsets ${text(frame.from)} to ${text(frame.to)} (not included) are gone`,
          'Kafka no longer holds these records (retention, or records deleted) so the replay cannot bring them; it goes on from the next record Kafka holds.')
      }
      case 'error': {
        const code = text(frame.code, 'unknown')
        const topics = stringList(frame.topics)
        if (topics.length > 0) this.#showSubscriptions()
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
    const topic = text(frame.topic)
    const partition = Number(frame.partition)
    const offset = text(frame.offset)
    if (/^\d{1,20}$/.test(offset) && Number.isInteger(partition)) this.cursor.textContent = this.#client.cursor()
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
    this.messageCount.textContent = `${plural(this.#client.received, 'message')} received, the last ${count(shown)} shown (at most ${MAX_MESSAGES})`
  }

  #showSubscriptions () {
    const { subscriptions, reached: reachedBy } = this.#client
    this.subscriptionList.replaceChildren(...[...subscriptions].sort().map(topic => {
      const reached = reachedBy.get(topic)
      return el('li', { 'data-topic': topic }, el('code', {}, topic), ' ',
        reached ? el('span', { class: 'tag' }, 'pattern') : null, ' ',
        el('button', { type: 'button', class: 'small', onclick: () => this.unsubscribe([topic]) }, 'Unsubscribe'),
        reached ? el('span', { class: 'reached' }, reached.size ? ` reaches ${[...reached].sort().join(', ')}` : ' reaches no topic yet') : null)
    }))
    if (subscriptions.size === 0) this.subscriptionList.replaceChildren(el('li', { class: 'none' }, 'No subscription.'))
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
      const response = await fetch('/v1/me', { headers: { accept: 'application/json', ...this.#client.credentialHeaders() }, cache: 'no-store', credentials: 'omit' })
      me = await response.json()
      if (!response.ok) throw new Error(`HTTP ${response.status}${isObject(me) && isObject(me.error) ? ` ${text(me.error.code)}` : ''}`)
    } catch (err) {
      if (this.#client.socket !== ws) return
      this.identity.hidden = false
      this.identity.replaceChildren(el('p', { class: 'bad' }, `Could not ask the gateway who you are: ${/** @type {Error} */ (err).message}`))
      return
    }
    if (this.#client.socket !== ws || !isObject(me) || typeof me.subject !== 'string' || !Array.isArray(me.products)) return
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
    if (!this.#client.last) return
    const headers = this.#client.credentialHeaders()
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
