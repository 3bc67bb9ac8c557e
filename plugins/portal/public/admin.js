// The admin page (/portal/admin): the admin API (/admin/..., the apps
// plugin's /admin/subscriptions and /admin/applications, and the metering's
// /admin/usage) driven from a browser with the admin token, which the
// operator types once per tab. Kept in sessionStorage: it goes with the tab,
// is never written to disk as a cookie would be, and is never sent by the
// browser on its own (a bearer header, not a cookie, so no CSRF).
import { count, el, isObject, text } from './dom.js'

const TOKEN_KEY = 'sluice-admin-token'
// one page of each admin listing: the admin API's own default page
const PAGE = 100

/**
 * @param {unknown} value
 * @returns {any[]}
 */
function list (value) {
  return Array.isArray(value) ? value.slice(0, PAGE) : []
}

/** @param {string} id */
function byId (id) {
  return /** @type {HTMLElement} */ (document.getElementById(id))
}

/**
 * A request to the admin API with the token; the gateway's error, code and message, when refused.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
async function call (method, path, body) {
  const headers = /** @type {Record<string, string>} */ ({ accept: 'application/json', authorization: `Bearer ${window.sessionStorage.getItem(TOKEN_KEY) ?? ''}` })
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', body: body === undefined ? undefined : JSON.stringify(body) })
  if (response.status === 204) return undefined
  const parsed = await response.json().catch(() => undefined)
  if (!response.ok) {
    const error = isObject(parsed) && isObject(parsed.error) ? parsed.error : {}
    const err = new Error(`HTTP ${response.status} ${text(error.code)}: ${text(error.message)}`)
    Object.assign(err, { status: response.status })
    throw err
  }
  return parsed
}

/**
 * @param {string} state
 * @param {string} words
 */
function status (state, words) {
  const line = byId('admin-status')
  line.dataset.state = state
  line.textContent = words
}

/**
 * @param {string[]} headings
 * @param {HTMLElement[]} rows
 * @param {string} className
 */
function table (headings, rows, className) {
  return el('table', { class: className },
    el('thead', {}, el('tr', {}, ...headings.map(h => el('th', {}, h)))),
    el('tbody', {}, ...rows))
}

/** @param {unknown} iso */
function when (iso) {
  return text(iso).slice(0, 19).replace('T', ' ')
}

/**
 * Runs an action, then shows everything again.
 * @param {() => Promise<unknown>} action
 * @param {string} done
 */
async function act (action, done) {
  try {
    await action()
  } catch (error) {
    return status('error', /** @type {Error} */ (error).message)
  }
  await refresh()
  status('ok', done)
}

async function showPending () {
  const subscriptions = list((await call('GET', `/admin/subscriptions/pending?limit=${PAGE}`)).subscriptions).filter(isObject)
  const rows = subscriptions.map(sub => {
    const id = text(sub.id)
    const reason = /** @type {HTMLInputElement} */ (el('input', { class: 'reject-reason', maxlength: 1000, placeholder: 'reason (optional)', 'aria-label': 'Reason for a rejection' }))
    return el('tr', { class: 'pending', 'data-subscription': id, 'data-application': text(sub.application), 'data-plan': text(sub.plan) },
      el('td', {}, el('code', {}, text(sub.application))),
      el('td', {}, text(sub.product)),
      el('td', {}, text(sub.plan)),
      el('td', {}, when(sub.createdAt)),
      el('td', {},
        el('button', { type: 'button', class: 'approve small', onclick: () => { act(() => call('POST', `/admin/subscriptions/${encodeURIComponent(id)}/approve`), `Approved: ${text(sub.application)} is on ${text(sub.plan)}, its open sockets included.`) } }, 'Approve'), ' ',
        reason, ' ',
        el('button', {
          type: 'button',
          class: 'reject small',
          onclick: () => { act(() => call('POST', `/admin/subscriptions/${encodeURIComponent(id)}/reject`, reason.value.trim() ? { reason: reason.value.trim() } : {}), `Rejected: ${text(sub.application)} keeps its plan.`) }
        }, 'Reject')))
  })
  byId('pending-body').replaceChildren(rows.length
    ? table(['Application', 'Product', 'Plan asked for', 'Asked at (UTC)', ''], rows, 'pending-subscriptions')
    : el('p', { class: 'none' }, 'No subscription waits for approval.'))
}

async function showApplications () {
  const applications = list((await call('GET', `/admin/applications?limit=${PAGE}`)).applications).filter(isObject)
  const rows = applications.map(app => {
    const subs = list(app.subscriptions).filter(s => isObject(s) && (s.state === 'active' || s.state === 'pending'))
    return el('tr', { class: 'admin-application', 'data-application': text(app.id) },
      el('td', {}, text(app.name), ' ', el('code', {}, text(app.id))),
      el('td', {}, text(app.owner)),
      el('td', {}, subs.map(s => `${text(s.product)}: ${text(s.plan)} (${text(s.state)})`).join(', ') || 'none'),
      el('td', {}, when(app.createdAt)))
  })
  byId('applications-body').replaceChildren(rows.length
    ? table(['Application', 'Developer', 'Plans', 'Created (UTC)'], rows, 'applications')
    : el('p', { class: 'none' }, 'No application yet.'))
}

async function showUsage () {
  const date = new Date().toISOString().slice(0, 10)
  let usage
  try {
    usage = await call('GET', `/admin/usage?date=${date}`)
  } catch (error) {
    // a gateway without metering: the rest of the page works
    byId('usage-body').replaceChildren(el('p', { class: 'none', 'data-state': 'unavailable' },
      /** @type {{ status?: number }} */ (error).status === 404 ? 'Usage not available on this gateway.' : `Usage not available: ${/** @type {Error} */ (error).message}`))
    return
  }
  const rows = list(usage.applications).filter(isObject).map(u => el('tr', { class: 'usage', 'data-application': text(u.application) },
    el('td', {}, el('code', {}, text(u.application))),
    el('td', {}, text(u.product)),
    el('td', { class: 'delivered' }, count(Number(u.delivered) || 0)),
    el('td', {}, count(Number(u.deliveredBytes) || 0)),
    el('td', {}, count(Number(u.published) || 0)),
    el('td', {}, count(Number(u.connectionMinutes) || 0)),
    el('td', {}, isObject(u.refused) ? Object.entries(u.refused).map(([reason, n]) => `${reason} ${count(Number(n) || 0)}`).join(', ') : '')))
  byId('usage-body').replaceChildren(rows.length
    ? table(['Application', 'Product', 'Delivered', 'Bytes', 'Published', 'Connection minutes', 'Refused'], rows, 'usage-by-application')
    : el('p', { class: 'none' }, `No usage on ${date}.`))
}

async function showSessions () {
  const answer = await call('GET', `/admin/sessions?limit=${PAGE}`)
  const rows = list(answer.sessions).filter(isObject).map(s => {
    const id = text(s.id)
    return el('tr', { class: 'session', 'data-session': id, 'data-key': text(s.keyId), 'data-subject': text(s.subject) },
      el('td', {}, el('code', {}, id)),
      el('td', {}, `${text(s.kind)} ${text(s.subject)}`, s.keyId ? el('code', {}, ` sk_${text(s.keyId)}`) : ''),
      el('td', {}, text(s.route)),
      el('td', {}, list(s.topics).map(t => text(t)).join(', ')),
      el('td', {}, when(s.connectedAt)),
      el('td', {}, el('button', {
        type: 'button',
        class: 'kick small',
        // the socket is closed with 1008 (policy violation): the client hears it was an administrator
        onclick: () => { act(() => call('DELETE', `/admin/sessions/${encodeURIComponent(id)}`), `Session ${id} closed.`) }
      }, 'Kick')))
  })
  byId('sessions-body').replaceChildren(
    el('p', {}, `${count(Number(answer.total) || 0)} open on this node.`),
    rows.length ? table(['Session', 'Who', 'Route', 'Topics', 'Since (UTC)', ''], rows, 'sessions') : '')
}

async function refresh () {
  if (!window.sessionStorage.getItem(TOKEN_KEY)) {
    status('idle', 'Type the admin token to begin.')
    return
  }
  try {
    await Promise.all([showPending(), showApplications(), showUsage(), showSessions()])
  } catch (error) {
    return status('error', /** @type {Error} */ (error).message)
  }
  status('ok', `Shown at ${new Date().toISOString().slice(11, 19)} UTC.`)
}

byId('admin-token-form').addEventListener('submit', event => {
  event.preventDefault()
  const input = /** @type {HTMLInputElement} */ (byId('admin-token'))
  window.sessionStorage.setItem(TOKEN_KEY, input.value.trim())
  input.value = ''
  refresh()
})
byId('admin-forget').addEventListener('click', () => {
  window.sessionStorage.removeItem(TOKEN_KEY)
  for (const id of ['pending-body', 'applications-body', 'usage-body', 'sessions-body']) byId(id).replaceChildren()
  refresh()
})
byId('admin-refresh').addEventListener('click', () => { refresh() })
refresh().then(() => { document.documentElement.dataset.ready = 'true' })
