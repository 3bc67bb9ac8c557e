// The catalogue: the products of GET /v1/products (plans, topics, who may do
// what) and each product's AsyncAPI document (/asyncapi/<name>.json) rendered
// for reading: channels, the operations allowed, payload schemas, examples.
import { el, jsonBlock, prose, count, bytes, isObject, text } from './dom.js'

// A product's asyncapi path as the catalogue gives it; anything else is not fetched.
const ASYNCAPI_PATH = /^\/asyncapi\/[A-Za-z0-9._-]{1,128}\.json$/
// A catalogue or document bigger than this is not what this gateway serves: refuse to render it.
const MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
// More than a reader scrolls through; the rest is counted, not shown.
const MAX_PRODUCTS = 100
const MAX_ITEMS = 200

/**
 * @typedef {{ fillSubscribe (topic: string): void, fillPublish (topic: string, value: unknown): void }} ConsoleHooks
 */

/**
 * GET a JSON document of this gateway, bounded in size.
 * @param {string} path
 * @returns {Promise<unknown>}
 */
async function getJson (path) {
  const response = await fetch(path, { headers: { accept: 'application/json' }, credentials: 'omit', cache: 'no-cache' })
  const body = await response.text()
  if (body.length > MAX_DOCUMENT_BYTES) throw new Error(`${path}: larger than ${bytes(MAX_DOCUMENT_BYTES)}`)
  let parsed
  try {
    parsed = JSON.parse(body)
  } catch {
    throw new Error(`${path}: HTTP ${response.status}, not JSON`)
  }
  if (!response.ok) {
    const error = isObject(parsed) && isObject(parsed.error) ? parsed.error : {}
    throw new Error(`${path}: HTTP ${response.status}${text(error.code) ? ` ${text(error.code)}` : ''}${text(error.message) ? `: ${text(error.message)}` : ''}`)
  }
  return parsed
}

/**
 * @param {unknown} value
 * @returns {unknown[]}
 */
function list (value) {
  return Array.isArray(value) ? value.slice(0, MAX_ITEMS) : []
}

/**
 * @param {unknown} value
 * @returns {Array<[string, unknown]>}
 */
function entries (value) {
  return isObject(value) ? Object.entries(value).slice(0, MAX_ITEMS) : []
}

/** A plan's limits in words. */
const LIMIT_WORDS = {
  connections: (/** @type {number} */ n) => `${count(n)} concurrent connection${n === 1 ? '' : 's'}`,
  connectsPerMinute: (/** @type {number} */ n) => `${count(n)} new connection${n === 1 ? '' : 's'} a minute`,
  deliveredPerSecond: (/** @type {number} */ n) => `${count(n)} message${n === 1 ? '' : 's'} delivered a second`,
  publishedPerSecond: (/** @type {number} */ n) => n === 0 ? 'no publishing' : `${count(n)} message${n === 1 ? '' : 's'} published a second`,
  bytesPerSecond: (/** @type {number} */ n) => `${bytes(n)} delivered a second`,
  dailyQuota: (/** @type {number} */ n) => `${count(n)} message${n === 1 ? '' : 's'} delivered a day (UTC)`
}

/**
 * @param {unknown} limits
 */
export function limitsInWords (limits) {
  return entries(limits).map(([name, value]) => {
    const words = Object.hasOwn(LIMIT_WORDS, name) && typeof value === 'number'
      ? LIMIT_WORDS[/** @type {keyof typeof LIMIT_WORDS} */ (name)](value)
      : `${name}: ${String(value)}`
    return el('li', { 'data-limit': name }, words)
  })
}

const ENCODING_WORDS = {
  json: 'JSON: the value is the record\'s JSON as written',
  text: 'text: the value is a JSON string of the record\'s UTF-8 text',
  base64: 'binary: the value is the record\'s bytes in base64'
}

const SLOW_CLIENT_WORDS = {
  lagging: 'a slow client is told what it missed (lagging, with a resume cursor)',
  evict: 'a slow client is disconnected (4008) rather than skip messages'
}

/**
 * @param {Record<string, string>} table
 * @param {unknown} key
 */
function word (table, key) {
  const name = text(key)
  return Object.hasOwn(table, name) ? table[name] : name
}

/** An exact topic name (not a pattern or template): one the console can subscribe to as it is. */
const EXACT_TOPIC = /^[A-Za-z0-9._-]{1,249}$/

/**
 * Whether two topic patterns (`*`, `**`, `{claim}`) may name a common topic,
 * segment by segment. Only decides which buttons to show: the gateway decides
 * what is allowed.
 * @param {string} a
 * @param {string} b
 */
export function mayOverlap (a, b) {
  if (a.includes('**') || b.includes('**')) return true
  const sa = a.split('.')
  const sb = b.split('.')
  return sa.length === sb.length && sa.every((s, i) => s === sb[i] || /[*{]/.test(s) || /[*{]/.test(sb[i] ?? ''))
}

/**
 * @param {Record<string, unknown>} topic
 * @param {Set<string>} publishable patterns some rule lets publish
 * @param {ConsoleHooks} hooks
 */
function topicItem (topic, publishable, hooks) {
  const pattern = text(topic.pattern)
  const buttons = []
  buttons.push(el('button', { type: 'button', class: 'small', onclick: () => hooks.fillSubscribe(pattern) }, 'Subscribe in the console'))
  const publishTo = [...publishable].find(p => mayOverlap(p, pattern))
  if (publishTo !== undefined) {
    // an exact topic as it is; else the rule's pattern, whose {sub} the reader fills in
    const target = EXACT_TOPIC.test(pattern) ? pattern : publishTo
    buttons.push(el('button', { type: 'button', class: 'small', onclick: () => hooks.fillPublish(target, topic.example) }, 'Publish the example'))
  }
  return el('li', { class: 'topic', 'data-topic': pattern },
    el('h5', {}, el('code', {}, pattern), EXACT_TOPIC.test(pattern) ? null : el('span', { class: 'tag' }, 'pattern')),
    topic.description ? el('p', {}, text(topic.description)) : null,
    el('ul', { class: 'facts' },
      el('li', { 'data-encoding': text(topic.encoding) }, 'Encoding: ', word(ENCODING_WORDS, topic.encoding)),
      el('li', {}, 'Slow clients: ', word(SLOW_CLIENT_WORDS, topic.slowClient))),
    topic.schema !== undefined ? el('details', {}, el('summary', {}, 'Message schema'), jsonBlock(topic.schema)) : null,
    topic.example !== undefined ? el('div', { class: 'example' }, el('span', { class: 'label' }, 'Example value'), jsonBlock(topic.example)) : null,
    el('div', { class: 'actions' }, buttons))
}

/**
 * @param {Record<string, unknown>} access
 */
function accessItem (access) {
  const subscribe = list(access.subscribe).map(String)
  const publish = list(access.publish).map(String)
  /** @param {string[]} topics */
  const codes = topics => topics.flatMap((t, i) => [i > 0 ? ', ' : '', el('code', {}, t)])
  return el('li', { class: 'access' },
    el('strong', {}, `Plan ${text(access.plan)}`),
    access.description ? ` — ${text(access.description)}` : '',
    el('ul', {},
      el('li', {}, 'Subscribe: ', subscribe.length ? codes(subscribe) : 'nothing'),
      el('li', {}, 'Publish: ', publish.length ? codes(publish) : 'nothing (read-only)')),
    [...subscribe, ...publish].some(t => t.includes('{'))
      ? el('p', { class: 'note' }, '{sub} and other {claims} are filled from your credential: orders.{sub} is orders.<your subject>.')
      : null)
}

/**
 * @param {Record<string, unknown>} product
 * @param {ConsoleHooks} hooks
 */
function productArticle (product, hooks) {
  const name = text(product.name)
  const publishable = new Set(list(product.access).flatMap(a => isObject(a) ? list(a.publish).map(String) : []))
  const asyncapi = text(product.asyncapi)
  const docs = el('section', { class: 'asyncapi', 'data-asyncapi': asyncapi }, el('p', { class: 'loading' }, 'Loading the AsyncAPI document…'))
  const article = el('article', { class: 'product', id: `product-${name}`, 'data-product': name },
    el('h3', {}, text(product.title, name), ' ', el('code', { class: 'name' }, name)),
    product.description ? el('p', { class: 'description' }, text(product.description)) : null,
    el('h4', {}, 'Plans'),
    el('ul', { class: 'plans' }, list(product.plans).filter(isObject).map(plan =>
      el('li', { class: 'plan', 'data-plan': text(plan.name) },
        el('strong', {}, text(plan.title, text(plan.name))),
        plan.description ? ` — ${text(plan.description)}` : '',
        el('ul', { class: 'limits' }, limitsInWords(plan.limits))))),
    el('h4', {}, 'Topics'),
    el('ul', { class: 'topics' }, list(product.topics).filter(isObject).map(topic => topicItem(topic, publishable, hooks))),
    el('h4', {}, 'Who may do what'),
    el('ul', { class: 'access-list' }, list(product.access).filter(isObject).map(accessItem)),
    el('h4', {}, 'AsyncAPI ', ASYNCAPI_PATH.test(asyncapi) ? el('a', { href: asyncapi }, asyncapi) : null),
    docs)
  if (ASYNCAPI_PATH.test(asyncapi)) {
    getJson(asyncapi).then(doc => docs.replaceChildren(asyncapiView(doc)), err => {
      docs.replaceChildren(el('p', { class: 'bad' }, `Could not load the AsyncAPI document: ${/** @type {Error} */ (err).message}`))
    })
  } else {
    docs.replaceChildren(el('p', { class: 'note' }, 'This product names no AsyncAPI document of this gateway.'))
  }
  return article
}

/**
 * Follows a local `$ref` (`#/components/...`); anything else is shown as it is.
 * @param {unknown} root
 * @param {unknown} value
 * @returns {unknown}
 */
export function deref (root, value) {
  let current = value
  // a chain of refs ends within a few hops; a longer one is a loop
  for (let hops = 0; hops < 8 && isObject(current) && typeof current.$ref === 'string'; hops++) {
    const ref = current.$ref
    if (!ref.startsWith('#/')) return current
    /** @type {unknown} */
    let node = root
    for (const raw of ref.slice(2).split('/')) {
      const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
      node = isObject(node) && Object.hasOwn(node, key) ? node[key] : undefined
    }
    if (node === undefined) return current
    current = node
  }
  return current
}

const ACTION_WORDS = { receive: 'Subscribe (receive)', send: 'Publish (send)' }

/**
 * @param {unknown} doc
 * @param {unknown} message
 */
function messageView (doc, message) {
  const m = deref(doc, message)
  if (!isObject(m)) return el('div', { class: 'message-doc' }, jsonBlock(m))
  return el('div', { class: 'message-doc', 'data-message': text(m.name) },
    el('h6', {}, text(m.title, text(m.name, 'message')), m.contentType ? el('span', { class: 'tag' }, text(m.contentType)) : null),
    m.summary ? el('p', {}, text(m.summary)) : null,
    m.payload !== undefined ? el('div', { class: 'payload' }, el('span', { class: 'label' }, 'Payload schema'), jsonBlock(deref(doc, m.payload))) : null,
    list(m.examples).filter(isObject).map(example =>
      el('div', { class: 'example' },
        el('span', { class: 'label' }, `Example${example.name ? ` "${text(example.name)}"` : ''}${example.summary ? `: ${text(example.summary)}` : ''}`),
        jsonBlock(example.payload))))
}

/**
 * @param {unknown} doc an AsyncAPI 3 document
 * @returns {HTMLElement}
 */
export function asyncapiView (doc) {
  if (!isObject(doc)) return el('p', { class: 'bad' }, 'Not an AsyncAPI document.')
  const info = isObject(doc.info) ? doc.info : {}
  const operations = entries(doc.operations).filter(([, op]) => isObject(op))
  /** @param {string} id */
  const operationsOf = id => operations.filter(([, op]) => isObject(op) && isObject(op.channel) && op.channel.$ref === `#/channels/${id}`)
  const topicChannels = []
  const socketChannels = []
  for (const [id, channel] of entries(doc.channels)) {
    if (!isObject(channel)) continue
    const ops = operationsOf(id)
    const view = el('div', { class: 'channel', 'data-channel': id, 'data-address': text(channel.address) },
      el('h5', {}, channel.address ? el('code', {}, text(channel.address)) : text(channel.title, id)),
      channel.description ? prose(text(channel.description)) : (channel.summary ? el('p', {}, text(channel.summary)) : null),
      ops.length
        ? el('ul', { class: 'operations' }, ops.map(([opId, op]) => {
          const o = /** @type {Record<string, unknown>} */ (op)
          const plans = list(o['x-sluice-plans']).map(String)
          return el('li', { class: 'operation', 'data-operation': opId, 'data-action': text(o.action) },
            el('strong', {}, word(ACTION_WORDS, o.action)),
            o.title ? ` — ${text(o.title)}` : '',
            plans.length ? el('span', { class: 'tag' }, `plan${plans.length > 1 ? 's' : ''} ${plans.join(', ')}`) : null,
            o.summary ? prose(text(o.summary)) : null,
            o.description ? prose(text(o.description)) : null)
        }))
        : el('p', { class: 'note' }, 'No access rule lets anyone use this channel.'),
      entries(channel.messages).map(([, message]) => messageView(doc, message)))
    if (channel.address === null || channel.address === undefined) socketChannels.push(view)
    else topicChannels.push(view)
  }
  const servers = entries(doc.servers).filter(([, s]) => isObject(s)).map(([name, s]) => {
    const server = /** @type {Record<string, unknown>} */ (s)
    return el('li', {}, el('code', {}, `${text(server.protocol)}://${text(server.host)}${text(server.pathname)}`), ` (${name})`, server.description ? ` — ${text(server.description)}` : '')
  })
  const components = isObject(doc.components) ? doc.components : {}
  const schemes = entries(components.securitySchemes).filter(([, s]) => isObject(s)).map(([name, s]) => {
    const scheme = /** @type {Record<string, unknown>} */ (s)
    return el('li', {}, el('strong', {}, name), ` (${[text(scheme.type), text(scheme.in), text(scheme.name)].filter(Boolean).join(', ')})`, scheme.description ? prose(text(scheme.description)) : null)
  })
  return el('div', { class: 'asyncapi-doc' },
    el('p', { class: 'meta' }, `AsyncAPI ${text(doc.asyncapi, '?')} — ${text(info.title)} ${text(info.version)}`),
    servers.length ? el('div', {}, el('span', { class: 'label' }, 'Servers'), el('ul', {}, servers)) : null,
    el('div', { class: 'channels' }, topicChannels),
    socketChannels.length ? el('details', { class: 'frames' }, el('summary', {}, 'The frames of the protocol (/v1/stream)'), socketChannels) : null,
    schemes.length ? el('details', { class: 'security' }, el('summary', {}, 'Credentials (security schemes)'), el('ul', {}, schemes)) : null)
}

/**
 * Loads and renders the catalogue into `#products`.
 * @param {ConsoleHooks} hooks
 */
export async function showCatalogue (hooks) {
  const status = /** @type {HTMLElement} */ (document.getElementById('catalogue-status'))
  const container = /** @type {HTMLElement} */ (document.getElementById('products'))
  const suggestions = /** @type {HTMLElement} */ (document.getElementById('topic-suggestions'))
  let catalogue
  try {
    catalogue = await getJson('/v1/products')
  } catch (err) {
    status.dataset.state = 'failed'
    status.textContent = `Could not load the catalogue: ${/** @type {Error} */ (err).message}`
    return
  }
  const products = isObject(catalogue) && Array.isArray(catalogue.products) ? catalogue.products.filter(isObject) : []
  const shown = products.slice(0, MAX_PRODUCTS)
  container.replaceChildren(...shown.map(product => productArticle(product, hooks)))
  status.dataset.state = 'loaded'
  status.textContent = products.length === 0
    ? 'This gateway offers no product yet.'
    : `${count(products.length)} product${products.length === 1 ? '' : 's'}${products.length > shown.length ? `, the first ${shown.length} shown` : ''}.`
  const topics = new Set(shown.flatMap(p => list(p.topics).filter(isObject).map(t => text(t.pattern))).filter(t => EXACT_TOPIC.test(t)))
  suggestions.replaceChildren(...[...topics].sort().map(t => el('option', { value: t })))
  const nav = document.getElementById('product-nav')
  if (nav) nav.replaceChildren(...shown.map(p => el('li', {}, el('a', { href: `#product-${text(p.name)}` }, text(p.title, text(p.name))))))
}
