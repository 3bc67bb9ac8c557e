// The developer's panel: Sign in (the gateway's OpenID Connect sign-in,
// /portal/login), who is signed in, Sign out, and "My applications" through
// the developer API (/v1/developer/...), which the session cookie
// authenticates: list, create, subscribe to a product's plan, issue a key
// (shown once, with a button that puts it in the live console).
import { count, el, isObject, text } from './dom.js'

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

// how a subscription's state reads beside its plan
/** @type {Record<string, string>} */
const STATE_WORDS = { active: 'active', pending: 'pending: waiting for an admin\'s approval', rejected: 'rejected' }

/**
 * An application's usage, or undefined where the gateway has no metering (404) or it failed.
 * @param {string} path
 */
async function usageOf (path) {
  try {
    return await call('GET', `${path}/usage?days=7`)
  } catch {
    return undefined
  }
}

/**
 * Refusals of a day, every reason together.
 * @param {unknown} refused
 */
function refusedTotal (refused) {
  if (!isObject(refused)) return 0
  let total = 0
  for (const n of Object.values(refused)) total += Number(n) || 0
  return total
}

/**
 * @typedef {object} PanelHooks
 * @property {(key: string) => void} useKey puts a key in the console
 * @property {(key: string) => void} [keyIssued] a key was issued: the snippets may show it
 * @property {() => void} [listed] the applications were listed again: a plan may have changed since
 * @property {(box: HTMLElement, days: Array<Record<string, any>>) => void} [drawUsage] draws the days' deliveries in `box`
 */

export class DeveloperPanel {
  /** @param {PanelHooks} hooks */
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
    // each application's keys and usage are read at once: a developer has at most 50 applications
    const items = await Promise.all(applications.filter(isObject).map(app => this.#application(app)))
    // the key shown once survives the re-render that lists it (a rotation re-renders)
    const issued = document.getElementById('issued-key') ?? el('div', { id: 'issued-key', role: 'status' })
    this.body.replaceChildren(
      // an admin's decision or another tab's change is seen on the next listing
      el('h3', {}, 'My applications ', el('button', { id: 'refresh-applications', type: 'button', class: 'small', onclick: () => { this.#render() } }, 'Refresh')),
      items.length ? el('ul', { id: 'applications' }, ...items) : el('p', { class: 'none' }, 'No application yet.'),
      create,
      issued)
    this.hooks.listed?.()
  }

  /**
   * @param {() => Promise<any>} action
   * @param {string | ((result: any) => string)} done
   */
  async #act (action, done) {
    let result
    try {
      result = await action()
    } catch (error) {
      return this.#error(/** @type {Error} */ (error).message)
    }
    await this.#render()
    this.#ok(typeof done === 'string' ? done : done(result))
  }

  /**
   * One application: its plans (active, pending, the last rejection), a form to subscribe or to ask for
   * another plan, its keys (rotate, revoke), and today's usage against the quota with the last 7 days.
   * @param {Record<string, any>} app
   */
  async #application (app) {
    const id = text(app.id)
    const path = `/v1/developer/applications/${encodeURIComponent(id)}`
    const [keys, usage] = await Promise.all([
      call('GET', `${path}/keys`).then(r => list(r.keys).filter(isObject), () => undefined),
      usageOf(path)
    ])
    const subscriptions = list(app.subscriptions).filter(isObject)
    const shown = subscriptions.filter(s => s.state === 'active' || s.state === 'pending')
    // the latest rejection of a product that has no request waiting: why the developer's plan did not change
    const rejected = subscriptions.filter(s => s.state === 'rejected' && !shown.some(o => o.state === 'pending' && o.product === s.product)).slice(-1)
    const active = shown.filter(s => s.state === 'active')
    const activePlan = (/** @type {string} */ product) => text(active.find(s => s.product === product)?.plan)
    // what may be asked for: every plan of every product but the one already active
    const offers = this.products.flatMap(p => p.plans.filter(plan => plan !== activePlan(p.name)).map(plan => ({ product: p.name, plan })))
    const choice = /** @type {HTMLSelectElement} */ (el('select', { class: 'plan-choice', 'aria-label': 'Product and plan' },
      ...offers.map(o => el('option', { value: `${o.product}/${o.plan}` }, `${o.product}: ${o.plan}${activePlan(o.product) ? ` (instead of ${activePlan(o.product)})` : ''}`))))
    const subscribe = el('button', {
      type: 'button',
      class: 'subscribe small',
      onclick: () => {
        const [product, plan] = choice.value.split('/')
        this.#act(() => call('POST', `${path}/subscriptions`, { product, plan }),
          sub => sub?.state === 'pending' ? `Plan ${plan} of ${product} requested: it waits for an admin's approval; your keys keep their plan meanwhile.` : `Subscribed to ${product}: ${plan}.`)
      }
    }, active.length ? 'Request this plan' : 'Subscribe')
    const issue = active.map(s => el('button', {
      type: 'button',
      class: 'issue-key small',
      'data-product': text(s.product),
      onclick: () => { this.#issue(id, text(s.product)) }
    }, `Issue a ${text(s.product)} key`))
    return el('li', { class: 'application', 'data-application': id, 'data-name': text(app.name) },
      el('strong', {}, text(app.name)), ' ', el('code', {}, id),
      el('ul', { class: 'app-subscriptions' }, ...(shown.length || rejected.length
        ? [...shown, ...rejected].map(s => el('li', { 'data-product': text(s.product), 'data-plan': text(s.plan), 'data-state': text(s.state) },
            `${text(s.product)}: ${text(s.plan)} (${STATE_WORDS[text(s.state)] ?? text(s.state)})`,
            s.state === 'rejected' && s.reason ? ` — ${text(s.reason)}` : ''))
        : [el('li', { class: 'none' }, 'No subscription: subscribe to a plan to get keys.')])),
      offers.length ? el('div', { class: 'actions' }, choice, subscribe, ...issue) : el('div', { class: 'actions' }, ...issue),
      this.#keys(path, keys),
      this.#usage(usage))
  }

  /**
   * Today's deliveries against the plan's daily quota, and the last 7 days (the metering's
   * GET .../usage?days=7); "not available" where the gateway does not meter.
   * @param {Record<string, any> | undefined} usage
   */
  #usage (usage) {
    const refresh = el('button', { type: 'button', class: 'refresh-usage small', onclick: () => { this.#render() } }, 'Refresh')
    if (!usage) return el('div', { class: 'app-usage', 'data-state': 'unavailable' }, el('p', {}, 'Usage not available on this gateway. ', refresh))
    const today = isObject(usage.today) ? usage.today : {}
    const delivered = Number(today.delivered) || 0
    const quota = typeof today.quota === 'number' ? today.quota : null
    const days = list(usage.days).filter(isObject)
    const chart = el('div', { class: 'usage-chart', role: 'img', 'aria-label': `Messages delivered on each of the last ${days.length} days` })
    const box = el('div', { class: 'app-usage', 'data-state': 'available' },
      el('p', {},
        'Today: ', el('span', { class: 'usage-today', 'data-delivered': delivered }, `${count(delivered)} delivered`),
        quota === null ? ' (no daily quota)' : ` of ${count(quota)} (${quota > 0 ? Math.min(100, Math.round(delivered / quota * 1000) / 10) : 100} % of the daily quota)`,
        `, ${count(Number(today.published) || 0)} published, ${count(Number(today.connectionMinutes) || 0)} connection minutes. `, refresh),
      chart,
      el('table', { class: 'usage-days' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Day (UTC)'), el('th', {}, 'Delivered'), el('th', {}, 'Published'), el('th', {}, 'Refused'))),
        el('tbody', {}, ...days.map(d => el('tr', {},
          el('td', {}, text(d.date)), el('td', {}, count(Number(d.delivered) || 0)), el('td', {}, count(Number(d.published) || 0)),
          el('td', {}, count(refusedTotal(d.refused))))))))
    // drawn once the box is in the page: the chart takes its width from it
    if (days.length) queueMicrotask(() => { this.hooks.drawUsage?.(chart, days) })
    return box
  }

  /**
   * The application's live keys, with Rotate (a grace period in seconds: both keys work meanwhile) and Revoke.
   * @param {string} path
   * @param {Array<Record<string, any>> | undefined} keys
   */
  #keys (path, keys) {
    if (keys === undefined) return el('p', { class: 'app-keys none' }, 'Keys could not be listed.')
    if (keys.length === 0) return el('p', { class: 'app-keys none' }, 'No key yet.')
    return el('table', { class: 'app-keys' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Key'), el('th', {}, 'Plan'), el('th', {}, 'Expires'), el('th', {}, 'Last used'), el('th', {}, ''))),
      el('tbody', {}, ...keys.map(key => {
        const keyId = text(key.id)
        // an hour: time enough to roll a client's configuration; 0 revokes the old key at once (at most a week, the gateway's bound)
        const grace = /** @type {HTMLInputElement} */ (el('input', { class: 'grace-seconds', type: 'number', min: 0, max: 604800, value: 3600, 'aria-label': 'Grace period (seconds)' }))
        return el('tr', { class: 'key', 'data-key': keyId, 'data-plan': text(key.plan) },
          el('td', {}, el('code', {}, text(key.prefix)), ' ', text(key.product)),
          el('td', { class: 'key-plan' }, text(key.plan)),
          el('td', {}, text(key.expiresAt).slice(0, 16).replace('T', ' ')),
          el('td', {}, key.lastUsedAt ? text(key.lastUsedAt).slice(0, 16).replace('T', ' ') : 'never'),
          el('td', {},
            grace, ' s ',
            el('button', { type: 'button', class: 'rotate-key small', onclick: () => { this.#rotate(path, keyId, Number(grace.value)) } }, 'Rotate'), ' ',
            el('button', {
              type: 'button',
              class: 'revoke-key small',
              onclick: () => { this.#act(() => call('DELETE', `${path}/keys/${encodeURIComponent(keyId)}`), `Key sk_${keyId} revoked: its sockets are closed.`) }
            }, 'Revoke')))
      })))
  }

  /**
   * @param {string} path
   * @param {string} keyId
   * @param {number} graceSeconds
   */
  async #rotate (path, keyId, graceSeconds) {
    let rotated
    try {
      rotated = await call('POST', `${path}/keys/${encodeURIComponent(keyId)}/rotate`, { graceSeconds: Number.isInteger(graceSeconds) ? graceSeconds : 3600 })
    } catch (error) {
      return this.#error(`The key was not rotated: ${/** @type {Error} */ (error).message}`)
    }
    this.#showKey(text(rotated.key), text(rotated.product), text(rotated.expiresAt),
      `The old key sk_${keyId} works until ${text(rotated.previous?.expiresAt)}, then its sockets are closed.`)
    await this.#render()
    this.#ok(`Key sk_${keyId} rotated: the new one is ${text(rotated.prefix)}.`)
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
    this.#showKey(text(issued.key), product, text(issued.expiresAt))
    await this.#render()
    this.#ok(`Key ${text(issued.prefix)} issued.`)
  }

  /**
   * A key's secret, shown this once, with a button that puts it in the console.
   * @param {string} key
   * @param {string} product
   * @param {string} expiresAt
   * @param {string} [note]
   */
  #showKey (key, product, expiresAt, note) {
    const box = /** @type {HTMLElement} */ (document.getElementById('issued-key'))
    box.replaceChildren(
      el('p', {}, `Your ${product} key, shown this once (copy it now; it expires ${expiresAt}):`),
      el('code', { id: 'new-key' }, key), ' ',
      el('button', { id: 'use-key', type: 'button', class: 'small', onclick: () => this.hooks.useKey(key) }, 'Use it in the console'),
      note ? el('p', { class: 'note' }, note) : '')
    this.hooks.keyIssued?.(key)
  }
}
