// The developer's panel: Sign in (the gateway's OpenID Connect sign-in,
// /portal/login), who is signed in, Sign out, and "My applications" through
// the developer API (/v1/developer/...), which the session cookie
// authenticates: list, create, subscribe to a product's plan, issue a key
// (shown once, with a button that puts it in the live console).
import { el, isObject, text } from './dom.js'

// a developer holds at most 50 applications (plugins/apps); anything longer is not the gateway's answer
const MAX_ITEMS = 100

/**
 * A request to this gateway with the session cookie; the gateway's error, code and message, when refused.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
async function call (method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  if (response.status === 204) return undefined
  let parsed
  try {
    parsed = await response.json()
  } catch {
    throw new Error(`HTTP ${response.status}, not JSON`)
  }
  if (!response.ok) {
    const error = isObject(parsed) && isObject(parsed.error) ? parsed.error : {}
    throw new Error(`HTTP ${response.status} ${text(error.code)}: ${text(error.message)}`)
  }
  return parsed
}

/**
 * @param {unknown} value
 * @returns {any[]}
 */
function list (value) {
  return Array.isArray(value) ? value.slice(0, MAX_ITEMS) : []
}

export class DeveloperPanel {
  /** @param {{ useKey: (key: string) => void }} hooks */
  constructor (hooks) {
    this.hooks = hooks
    this.root = /** @type {HTMLElement} */ (document.getElementById('developer'))
    this.who = /** @type {HTMLElement} */ (document.getElementById('developer-who'))
    this.status = /** @type {HTMLElement} */ (document.getElementById('developer-status'))
    this.body = /** @type {HTMLElement} */ (document.getElementById('developer-body'))
    /** @type {Array<{ name: string, plans: string[] }>} */
    this.products = []
  }

  /** @param {string} message */
  #error (message) {
    this.status.textContent = message
    this.status.dataset.state = 'error'
  }

  /** @param {string} message */
  #ok (message) {
    this.status.textContent = message
    this.status.dataset.state = 'ok'
  }

  async show () {
    this.who.replaceChildren()
    let session
    try {
      session = await call('GET', '/portal/session')
    } catch (error) {
      // a session cookie the gateway refused (tampered, expired): it is cleared; offer to sign in again
      this.#error(`Your session was refused (${/** @type {Error} */ (error).message}).`)
      this.body.replaceChildren(el('a', { id: 'sign-in', class: 'button', href: '/portal/login' }, 'Sign in'))
      return
    }
    if (!session.signIn) {
      this.status.textContent = 'This gateway has no developer sign-in (portal.oidc is not configured).'
      this.body.replaceChildren()
      return
    }
    if (!isObject(session.developer)) {
      this.status.textContent = 'Sign in with your organisation\'s account to create applications and get keys.'
      this.body.replaceChildren(el('a', { id: 'sign-in', class: 'button', href: '/portal/login' }, 'Sign in'))
      return
    }
    this.root.dataset.signedIn = 'true'
    this.who.replaceChildren(
      el('span', { id: 'signed-in-as' }, `Signed in as ${text(session.developer.name)}`), ' ',
      el('button', { id: 'sign-out', type: 'button', class: 'small', onclick: () => { this.#signOut() } }, 'Sign out'))
    this.status.textContent = ''
    this.status.dataset.state = 'idle'
    try {
      const catalogue = await call('GET', '/v1/products')
      this.products = list(catalogue.products).filter(isObject).map(p => ({
        name: text(p.name),
        plans: list(p.plans).filter(isObject).map(plan => text(plan.name))
      }))
    } catch {
      this.products = []
    }
    await this.#render()
  }

  async #signOut () {
    try {
      await call('POST', '/portal/logout')
    } catch (error) {
      return this.#error(`Sign-out failed: ${/** @type {Error} */ (error).message}`)
    }
    delete this.root.dataset.signedIn
    await this.show()
  }

  async #render () {
    let applications
    try {
      applications = list((await call('GET', '/v1/developer/applications')).applications)
    } catch (error) {
      return this.#error(`Your applications could not be listed: ${/** @type {Error} */ (error).message}`)
    }
    const name = /** @type {HTMLInputElement} */ (el('input', { id: 'application-name', name: 'name', required: true, maxlength: 100, placeholder: 'my-dashboard' }))
    const create = el('form', {
      id: 'create-application',
      autocomplete: 'off',
      onsubmit: (/** @type {Event} */ event) => {
        event.preventDefault()
        this.#act(() => call('POST', '/v1/developer/applications', { name: name.value.trim() }), `Application "${name.value.trim()}" created.`)
      }
    }, el('label', { for: 'application-name' }, 'New application'), name, el('button', { type: 'submit' }, 'Create'))
    const items = applications.filter(isObject).map(app => this.#application(app))
    this.body.replaceChildren(
      el('h3', {}, 'My applications'),
      items.length ? el('ul', { id: 'applications' }, ...items) : el('p', { class: 'none' }, 'No application yet.'),
      create,
      el('div', { id: 'issued-key', role: 'status' }))
  }

  /**
   * @param {() => Promise<unknown>} action
   * @param {string} done
   */
  async #act (action, done) {
    try {
      await action()
    } catch (error) {
      return this.#error(/** @type {Error} */ (error).message)
    }
    await this.#render()
    this.#ok(done)
  }

  /** @param {Record<string, any>} app */
  #application (app) {
    const id = text(app.id)
    const subscriptions = list(app.subscriptions).filter(s => isObject(s) && (s.state === 'active' || s.state === 'pending'))
    const active = subscriptions.filter(s => s.state === 'active')
    const choice = /** @type {HTMLSelectElement} */ (el('select', { class: 'plan-choice', 'aria-label': 'Product and plan' },
      ...this.products.flatMap(p => p.plans.map(plan => el('option', { value: `${p.name}/${plan}` }, `${p.name}: ${plan}`)))))
    const subscribe = el('button', {
      type: 'button',
      class: 'subscribe small',
      onclick: () => {
        const [product, plan] = choice.value.split('/')
        this.#act(() => call('POST', `/v1/developer/applications/${encodeURIComponent(id)}/subscriptions`, { product, plan }), `Subscribed to ${product}: ${plan}.`)
      }
    }, 'Subscribe')
    const issue = active.map(s => el('button', {
      type: 'button',
      class: 'issue-key small',
      'data-product': text(s.product),
      onclick: () => { this.#issue(id, text(s.product)) }
    }, `Issue a ${text(s.product)} key`))
    return el('li', { class: 'application', 'data-application': id, 'data-name': text(app.name) },
      el('strong', {}, text(app.name)), ' ', el('code', {}, id),
      el('ul', { class: 'app-subscriptions' }, ...(subscriptions.length
        ? subscriptions.map(s => el('li', { 'data-product': text(s.product), 'data-state': text(s.state) }, `${text(s.product)}: ${text(s.plan)} (${text(s.state)})`))
        : [el('li', { class: 'none' }, 'No subscription: subscribe to a plan to get keys.')])),
      el('div', { class: 'actions' }, choice, subscribe, ...issue))
  }

  /**
   * @param {string} id
   * @param {string} product
   */
  async #issue (id, product) {
    let issued
    try {
      issued = await call('POST', `/v1/developer/applications/${encodeURIComponent(id)}/keys`, { product })
    } catch (error) {
      return this.#error(`No key issued: ${/** @type {Error} */ (error).message}`)
    }
    const key = text(issued.key)
    const box = /** @type {HTMLElement} */ (document.getElementById('issued-key'))
    box.replaceChildren(
      el('p', {}, `Your ${product} key, shown this once (copy it now; it expires ${text(issued.expiresAt)}):`),
      el('code', { id: 'new-key' }, key), ' ',
      el('button', { id: 'use-key', type: 'button', class: 'small', onclick: () => this.hooks.useKey(key) }, 'Use it in the console'))
    this.#ok(`Key ${text(issued.prefix)} issued.`)
  }
}
