// Builds DOM nodes. Every string becomes a text node (textContent): text from
// the catalogue, the AsyncAPI documents and the frames of /v1/stream is data,
// never markup: no string is ever parsed as HTML anywhere in the portal.

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Record<string, string | number | boolean | undefined | ((event: Event) => void)>} Attributes
 */

/**
 * `el('p', { class: 'note' }, 'text', otherNode)`; attributes starting with
 * `on` are event listeners, `true` sets an empty attribute, `false` and
 * `undefined` leave it out.
 * @param {string} tag
 * @param {Attributes} [attributes]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
export function el (tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue
    if (typeof value === 'function') node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value === true ? '' : String(value))
  }
  append(node, children)
  return node
}

/**
 * @param {Node} parent
 * @param {Array<Child | Child[]>} children
 */
export function append (parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)))
  }
}

// What a reader can take in: a schema or example past this is cut, so that a
// huge document cannot freeze the tab.
export const MAX_SHOWN_CHARS = 20_000

/**
 * Pretty JSON in a <pre>, cut at MAX_SHOWN_CHARS.
 * @param {unknown} value
 * @param {string} [className]
 */
export function jsonBlock (value, className = 'json') {
  let text
  try {
    text = JSON.stringify(value, null, 2) ?? String(value)
  } catch {
    text = String(value)
  }
  if (text.length > MAX_SHOWN_CHARS) text = text.slice(0, MAX_SHOWN_CHARS) + `\n… (${text.length - MAX_SHOWN_CHARS} more characters not shown)`
  return el('pre', { class: className }, el('code', {}, text))
}

/**
 * A number in words a reader scans quickly: 65536 → "65,536".
 * @param {number} n
 */
export function count (n) {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : String(n)
}

/**
 * A count and its noun, singular for exactly one: every count the page shows
 * goes through here ("1 product", "2 products", "1 message delivered").
 * @param {number} n
 * @param {string} one the singular
 * @param {string} [many] the plural, when it is not the singular and an s
 */
export function plural (n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`
}

/**
 * Bytes in the unit a reader thinks in: 65536 → "64 KiB".
 * @param {number} n
 */
export function bytes (n) {
  if (!Number.isFinite(n)) return String(n)
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${count(n / (1024 * 1024))} MiB`
  if (n >= 1024 && n % 1024 === 0) return `${count(n / 1024)} KiB`
  return plural(n, 'byte')
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
export function isObject (value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * A string field of untrusted data, or the fallback.
 * @param {unknown} value
 * @param {string} [fallback]
 */
export function text (value, fallback = '') {
  return typeof value === 'string' ? value : fallback
}

/**
 * The few Markdown marks the AsyncAPI descriptions use, as DOM nodes (never
 * parsed as HTML): blank-line paragraphs, `- ` lists, `code` and **bold**.
 * @param {string} source
 * @returns {HTMLElement}
 */
export function prose (source) {
  const box = el('div', { class: 'prose' })
  for (const block of source.slice(0, MAX_SHOWN_CHARS).split(/\n{2,}/)) {
    const lines = block.split('\n')
    if (lines.every(line => line.startsWith('- '))) {
      box.appendChild(el('ul', {}, lines.map(line => el('li', {}, inline(line.slice(2))))))
    } else {
      box.appendChild(el('p', {}, inline(lines.join(' '))))
    }
  }
  return box
}

/**
 * @param {string} line
 * @returns {Array<string | HTMLElement>}
 */
function inline (line) {
  /** @type {Array<string | HTMLElement>} */
  const out = []
  // `code` or **bold**; what is between is plain text
  const marks = /`([^`]+)`|\*\*([^*]+)\*\*/g
  let at = 0
  for (const match of line.matchAll(marks)) {
    if (match.index > at) out.push(line.slice(at, match.index))
    out.push(match[1] !== undefined ? el('code', {}, match[1]) : el('strong', {}, match[2] ?? ''))
    at = match.index + match[0].length
  }
  if (at < line.length) out.push(line.slice(at))
  return out
}
