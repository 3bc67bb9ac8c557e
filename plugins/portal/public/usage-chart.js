// The last days' deliveries of an application as bars, drawn by uPlot (the
// gateway serves it as /portal/uplot.js from its npm package): loaded the
// first time a chart is drawn, so a reader without an application never
// downloads it. The table under the chart says the same in numbers.
import { isObject } from './dom.js'

/** @type {Promise<any> | undefined} */
let library

/** uPlot's global, once its script and stylesheet are in the page. */
function uPlot () {
  library ??= new Promise((resolve, reject) => {
    document.head.append(Object.assign(document.createElement('link'), { rel: 'stylesheet', href: '/portal/uplot.css' }))
    const script = Object.assign(document.createElement('script'), { src: '/portal/uplot.js' })
    script.addEventListener('load', () => resolve(/** @type {any} */ (window).uPlot))
    script.addEventListener('error', () => {
      library = undefined
      reject(new Error('the chart library did not load'))
    })
    document.head.append(script)
  })
  return library
}

/**
 * Days as uPlot's columns: UTC midnights in seconds, deliveries and publishes.
 * @param {Array<Record<string, unknown>>} days
 * @returns {[number[], number[], number[]]}
 */
export function usageColumns (days) {
  const rows = days.filter(d => isObject(d) && typeof d.date === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(d.date))
    .map(d => ({ at: Date.parse(`${d.date}T00:00:00Z`) / 1000, delivered: Number(d.delivered) || 0, published: Number(d.published) || 0 }))
    .sort((a, b) => a.at - b.at)
  return [rows.map(r => r.at), rows.map(r => r.delivered), rows.map(r => r.published)]
}

/**
 * Draws the days in `box` (replacing what it holds); a chart that cannot be drawn leaves the table alone.
 * @param {HTMLElement} box
 * @param {Array<Record<string, unknown>>} days
 */
export async function drawUsage (box, days) {
  const data = usageColumns(days)
  if (data[0].length === 0) return
  let Chart
  try {
    Chart = await uPlot()
  } catch {
    box.dataset.state = 'failed'
    return
  }
  if (!box.isConnected) return
  box.replaceChildren()
  // as wide as the panel allows, at most 36rem (portal.css); 180 px holds the bars and the two axes
  const width = Math.max(240, Math.min(box.clientWidth || 480, 576))
  const bars = Chart.paths.bars({ size: [0.6, 40] })
  const chart = new Chart({
    width,
    height: 180,
    // days on the x axis in UTC, as the metering counts them
    tzDate: (/** @type {number} */ ts) => Chart.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    // half a day of room at each end: the first and last bars whole, not cut at the axis
    scales: { x: { time: true, range: (/** @type {any} */ _u, /** @type {number} */ min, /** @type {number} */ max) => [min - 43_200, max + 43_200] }, y: { range: (/** @type {any} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => [0, Math.max(1, max) * 1.1] } },
    axes: [{ values: '{MM}-{DD}' }, { size: 60 }],
    series: [
      {},
      { label: 'Delivered', stroke: '#1f5fbf', fill: 'rgba(31, 95, 191, 0.35)', paths: bars, points: { show: false } },
      // a line over the bars: two bar series on one day would hide each other
      { label: 'Published', stroke: '#17733a', width: 2, points: { show: true } }
    ]
  }, data, box)
  box.dataset.state = 'drawn'
  return chart
}
