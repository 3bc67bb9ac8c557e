// The catalogue: the products of GET /v1/products (plans, topics, who may do
// what) and each product's AsyncAPI document (/asyncapi/<name>.json) rendered
// for reading: channels, the operations allowed, payload schemas, examples.
import { el, jsonBlock, prose, plural, bytes, isObject, text } from './dom.js'
import { KEY_PLACEHOLDER, snippets } from './snippets.js'

// A product's asyncapi path as the catalogue gives it; anything else is not fetched.
const ASYNCAPI_PATH = /^\/asyncapi\/[A-Za-z0-9._-]{1,128}\.json$/
// A catalogue or document bigger than this is not what this gateway serves: refuse to render it.
const MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
// More than a reader scrolls through; the rest is counted, not shown.
const MAX_PRODUCTS = 100
const MAX_ITEMS = 200

// A JSON Schema is shown as a table down to this depth (a.b.c.d); deeper, the JSON below the table says it.
const MAX_SCHEMA_DEPTH = 4

/**
 * @typedef {{ fillSubscribe (topic: string): void, fillPublish (topic: string, value: unknown): void }} ConsoleHooks
 * @typedef {{ name: string, title: string, plans: string[], subscribe: string[], publish: string[] }} ReaderProduct
 * @typedef {{ subject: string, kind: string, plan?: { name: string, title: string, description?: string, limits: Record<string, number> }, products: ReaderProduct[] }} Reader
 */

/**
 * Who the reader is to this gateway (GET /v1/me), once the console has
 * connected: the catalogue marks their plan and fills examples with their own topics.
 * @type {Reader | undefined}
 */
let reader

/**
 * The reader's API key, once one is issued in "My applications" in this tab: the snippets show it.
 * @type {string | undefined}
 */
let snippetKey

/**
 * A topic's copy-paste clients, filled with the reader's key when there is one.
 * @param {HTMLElement} box
 */
function fillSnippets (box) {
  const topic = box.dataset.topic ?? ''
  box.replaceChildren(
    el('summary', {}, 'Connect from code: browser, Node, Python, websocat, wscat, MQTT.js'),
    el('p', { class: 'note' }, snippetKey
      ? 'With the key you issued in My applications: keep it out of code you share.'
      : `Replace ${KEY_PLACEHOLDER} with a key from My applications (sign in, subscribe an application, issue a key: it is filled in here).`),
    ...snippets(topic, window.location.origin, snippetKey).flatMap(s => [
      el('h6', {}, s.title),
      el('pre', { class: 'snippet' }, el('code', { 'data-snippet': s.id }, s.code))
    ]))
}

/**
 * A key was issued in this tab: every topic's snippets show it.
 * @param {string} key
 */
export function showSnippetKey (key) {
  snippetKey = key
  for (const box of document.querySelectorAll('details.snippets')) fillSnippets(/** @type {HTMLElement} */ (box))
}

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
  connections: (/** @type {number} */ n) => `${plural(n, 'concurrent connection')}`,
  connectsPerMinute: (/** @type {number} */ n) => `${plural(n, 'new connection')} a minute`,
  deliveredPerSecond: (/** @type {number} */ n) => `${plural(n, 'message')} delivered a second`,
  publishedPerSecond: (/** @type {number} */ n) => n === 0 ? 'no publishing' : `${plural(n, 'message')} published a second`,
  bytesPerSecond: (/** @type {number} */ n) => `${bytes(n)} delivered a second`,
  dailyQuota: (/** @type {number} */ n) => `${plural(n, 'message')} delivered a day (UTC)`
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
 * What a product's resume window gives a client: "up to 2 MiB and 120 s".
 * @param {Record<string, unknown>} resume
 */
function resumeWords (resume) {
  const bytes = typeof resume.windowBytes === 'number' ? resume.windowBytes : undefined
  const ms = typeof resume.windowMs === 'number' ? resume.windowMs : undefined
  if (bytes === 0 || ms === 0) return 'none kept: a resume is read from Kafka'
  const size = bytes === undefined
    ? undefined
    : bytes >= 1048576 && bytes % 1048576 === 0 ? `${bytes / 1048576} MiB` : bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`
  const age = ms === undefined ? undefined : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
  return `from a cursor within the last ${[size, age].filter(Boolean).join(' and ')} of records, replayed from the gateway's memory`
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
 * Whether `topic` is a name `pattern` (`*` one segment, `**` any characters) stands for.
 * @param {string} topic
 * @param {string} pattern
 */
export function matches (topic, pattern) {
  const source = pattern.split(/(\*\*|\*)/).map(part => part === '**' ? '.+' : part === '*' ? '[^.]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('')
  return new RegExp(`^${source}$`).test(topic)
}

/**
 * The topic "Publish the example" fills in for a product topic: an exact name
 * as it is; else, once the reader is known, a topic of theirs it stands for
 * (orders.* is orders.dev for the dev credential); else the rule's pattern,
 * whose {sub} the console asks the reader to fill in.
 * @param {string} pattern the product topic
 * @param {string[]} rulePatterns what the product's rules let publish, as written
 * @param {string} product
 * @param {Reader | undefined} who
 */
export function publishTarget (pattern, rulePatterns, product, who) {
  if (EXACT_TOPIC.test(pattern)) return pattern
  const mine = who?.products.find(p => p.name === product)?.publish ?? []
  const own = mine.find(t => EXACT_TOPIC.test(t) && matches(t, pattern))
  if (own !== undefined) return own
  return rulePatterns.find(p => mayOverlap(p, pattern)) ?? pattern
}

/**
 * @param {Record<string, unknown>} topic
 * @param {string[]} publishable patterns some rule lets publish
 * @param {string} product
 * @param {ConsoleHooks} hooks
 */
function topicItem (topic, publishable, product, hooks) {
  const pattern = text(topic.pattern)
  const buttons = []
  // a pattern too: /v1/stream subscribes to every topic it reaches that the credential may read
  buttons.push(el('button', { type: 'button', class: 'small', onclick: () => hooks.fillSubscribe(pattern) }, 'Subscribe in the console'))
  if (publishable.some(p => mayOverlap(p, pattern))) {
    // decided on click: the reader may have connected since the page loaded
    buttons.push(el('button', { type: 'button', class: 'small', onclick: () => hooks.fillPublish(publishTarget(pattern, publishable, product, reader), topic.example) }, 'Publish the example'))
  }
  return el('li', { class: 'topic', 'data-topic': pattern },
    el('h5', {}, el('code', {}, pattern), EXACT_TOPIC.test(pattern) ? null : el('span', { class: 'tag' }, 'pattern')),
    topic.description ? el('p', {}, text(topic.description)) : null,
    el('ul', { class: 'facts' },
      el('li', { 'data-encoding': text(topic.encoding) }, 'Encoding: ', word(ENCODING_WORDS, topic.encoding)),
      el('li', {}, 'Slow clients: ', word(SLOW_CLIENT_WORDS, topic.slowClient)),
      typeof topic.resume === 'object' && topic.resume !== null ? el('li', { 'data-resume': '' }, 'Resume: ', resumeWords(/** @type {Record<string, unknown>} */ (topic.resume))) : null),
    topic.schema !== undefined ? el('div', { class: 'payload' }, el('span', { class: 'label' }, 'Message fields'), schemaView(topic.schema, topic.schema)) : null,
    topic.example !== undefined ? el('div', { class: 'example' }, el('span', { class: 'label' }, 'Example value'), jsonBlock(topic.example)) : null,
    el('div', { class: 'actions' }, buttons),
    snippetBox(pattern))
}

/** @param {string} topic */
function snippetBox (topic) {
  const box = el('details', { class: 'snippets', 'data-topic': topic })
  fillSnippets(box)
  return box
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
  const publishable = [...new Set(list(product.access).flatMap(a => isObject(a) ? list(a.publish).map(String) : []))]
  const asyncapi = text(product.asyncapi)
  const docs = el('section', { class: 'asyncapi', 'data-asyncapi': asyncapi }, el('p', { class: 'loading' }, 'Loading the AsyncAPI document…'))
  const article = el('article', { class: 'product', id: `product-${name}`, 'data-product': name },
    el('h3', {}, text(product.title, name), ' ', el('code', { class: 'name' }, name)),
    product.description ? el('p', { class: 'description' }, text(product.description)) : null,
    el('h4', {}, 'Plans'),
    el('p', { class: 'yours', hidden: true }),
    el('ul', { class: 'plans' }, list(product.plans).filter(isObject).map(plan =>
      el('li', { class: 'plan', 'data-plan': text(plan.name) },
        el('strong', {}, text(plan.title, text(plan.name))),
        plan.description ? ` — ${text(plan.description)}` : '',
        el('ul', { class: 'limits' }, limitsInWords(plan.limits))))),
    el('h4', {}, 'Topics'),
    el('ul', { class: 'topics' }, list(product.topics).filter(isObject).map(topic => topicItem(topic, publishable, name, hooks))),
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

/**
 * A schema's type in words: `string`, `integer or null`, `array of number`, `one of "buy", "sell"`.
 * @param {unknown} doc
 * @param {Record<string, unknown>} schema
 * @param {number} [depth]
 * @returns {string}
 */
function typeWords (doc, schema, depth = 0) {
  if (Object.hasOwn(schema, 'const')) return `always ${JSON.stringify(schema.const)}`
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.slice(0, 20).map(v => JSON.stringify(v)).join(', ')}`
  const alternatives = list(schema.oneOf ?? schema.anyOf).map(a => deref(doc, a)).filter(isObject)
  if (alternatives.length > 0 && depth < 2) return alternatives.map(a => typeWords(doc, a, depth + 1)).join(' or ')
  const types = (Array.isArray(schema.type) ? schema.type : [schema.type]).filter(t => typeof t === 'string')
  let words = types.length
    ? types.map(t => {
      const items = deref(doc, schema.items)
      return t === 'array' && isObject(items) && depth < 2 ? `array of ${typeWords(doc, items, depth + 1)}` : t
    }).join(' or ')
    : (isObject(schema.properties) ? 'object' : 'any JSON value')
  const format = text(schema.format) || text(schema.contentEncoding)
  if (format) words += ` (${format})`
  return words
}

/**
 * A range in words: "1 to 128 characters", "at least 0", "at most 10 items".
 * @param {unknown} min
 * @param {unknown} max
 * @param {string} unit
 */
function range (min, max, unit) {
  const suffix = unit ? ` ${unit}` : ''
  if (typeof min === 'number' && typeof max === 'number') return `${min} to ${max}${suffix}`
  if (typeof min === 'number') return `at least ${min}${suffix}`
  if (typeof max === 'number') return `at most ${max}${suffix}`
  return ''
}

/**
 * What a field means and may hold: its description (its `code` marks kept), bounds and examples.
 * @param {Record<string, unknown>} schema
 * @returns {HTMLElement}
 */
function aboutView (schema) {
  const parts = [
    range(schema.minimum, schema.maximum, ''),
    range(schema.minLength, schema.maxLength, 'characters'),
    range(schema.minItems, schema.maxItems, 'items'),
    typeof schema.pattern === 'string' ? `matches ${schema.pattern}` : '',
    list(schema.examples).length ? `e.g. ${list(schema.examples).slice(0, 3).map(v => JSON.stringify(v)).join(', ')}` : ''
  ].filter(Boolean)
  const description = text(schema.description)
  return prose([description, parts.join('; ')].filter(Boolean).join('. '))
}

/**
 * Rows of the fields table: the schema's properties, nested ones as `a.b`, an array's item fields as `a[].b`.
 * @param {unknown} doc
 * @param {unknown} schema
 * @param {string} path
 * @param {boolean} required
 * @param {number} depth
 * @param {HTMLElement[]} rows
 */
function fieldRows (doc, schema, path, required, depth, rows) {
  const s = deref(doc, schema)
  if (!isObject(s) || rows.length >= MAX_ITEMS) return
  const properties = entries(s.properties)
  const items = deref(doc, s.items)
  // the value itself gets a row when it has no fields to list (a string topic, any JSON)
  if (path || properties.length === 0) {
    rows.push(el('tr', { 'data-field': path || '(value)' },
      el('td', {}, el('code', {}, path || '(the value)')),
      el('td', { class: 'type' }, typeWords(doc, s)),
      el('td', { class: 'required' }, path ? (required ? 'yes' : 'no') : ''),
      el('td', {}, aboutView(s))))
  }
  if (depth >= MAX_SCHEMA_DEPTH) return
  const requiredNames = new Set(list(s.required).map(String))
  for (const [name, property] of properties) fieldRows(doc, property, path ? `${path}.${name}` : name, requiredNames.has(name), depth + 1, rows)
  if (isObject(items) && isObject(items.properties)) {
    const itemRequired = new Set(list(items.required).map(String))
    for (const [name, property] of entries(items.properties)) fieldRows(doc, property, `${path || '(each item)'}[].${name}`, itemRequired.has(name), depth + 1, rows)
  }
}

/**
 * A JSON Schema for reading: a table of its fields, their types, whether
 * they are required and what they hold; the schema itself folded below.
 * @param {unknown} doc the document its local $refs point into
 * @param {unknown} schema
 */
export function schemaView (doc, schema) {
  /** @type {HTMLElement[]} */
  const rows = []
  fieldRows(doc, schema, '', true, 0, rows)
  return el('div', { class: 'schema' },
    el('table', { class: 'fields' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Field'), el('th', {}, 'Type'), el('th', {}, 'Required'), el('th', {}, 'About'))),
      el('tbody', {}, rows)),
    el('details', {}, el('summary', {}, 'JSON Schema'), jsonBlock(deref(doc, schema))))
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
    m.payload !== undefined ? el('div', { class: 'payload' }, el('span', { class: 'label' }, 'Payload schema'), schemaView(doc, m.payload)) : null,
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
            plans.length ? el('span', { class: 'tag' }, `${plans.length === 1 ? 'plan' : 'plans'} ${plans.join(', ')}`) : null,
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
    : `${plural(products.length, 'product')}${products.length > shown.length ? `, the first ${shown.length} shown` : ''}.`
  const topics = new Set(shown.flatMap(p => list(p.topics).filter(isObject).map(t => text(t.pattern))).filter(t => EXACT_TOPIC.test(t)))
  suggestions.replaceChildren(...[...topics].sort().map(t => el('option', { value: t })))
  const nav = document.getElementById('product-nav')
  if (nav) nav.replaceChildren(...shown.map(p => el('li', {}, el('a', { href: `#product-${text(p.name)}` }, text(p.title, text(p.name))))))
}

/**
 * The reader is known (the console connected and asked GET /v1/me): mark
 * the plan their credential gets in every product that sells it, say what
 * it may use in each product, and let "Publish the example" fill their own
 * topics. Undefined forgets them.
 * @param {Reader | undefined} who
 */
export function showReader (who) {
  reader = who
  for (const article of document.querySelectorAll('#products article.product')) {
    const name = article.getAttribute('data-product')
    for (const plan of article.querySelectorAll('li.plan')) {
      const yours = who?.plan?.name === plan.getAttribute('data-plan')
      plan.classList.toggle('yours', yours)
      plan.querySelector(':scope > .tag')?.remove()
      if (yours) plan.querySelector(':scope > strong')?.after(' ', el('span', { class: 'tag' }, 'your plan'))
    }
    const line = /** @type {HTMLElement | null} */ (article.querySelector('p.yours'))
    if (!line) continue
    const mine = who?.products.find(p => p.name === name)
    line.hidden = !who
    if (!who) continue
    /** @param {string[]} topics */
    const codes = topics => topics.length ? topics.flatMap((t, i) => [i > 0 ? ', ' : '', el('code', {}, t)]) : ['nothing']
    line.replaceChildren(...(mine
      ? [`Your credential (${who.subject}) gets plan `, el('strong', {}, who.plan ? who.plan.title : 'none'), ': it may subscribe to ', ...codes(mine.subscribe), ' and publish on ', ...codes(mine.publish), '.']
      : [`Your credential (${who.subject}) is granted nothing in this product.`]))
  }
}
