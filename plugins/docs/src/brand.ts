// Sluice's mark for the API docs UI (@fastify/swagger-ui shows Fastify's logo
// and favicon unless given others): the portal's mark (three streams through
// a gate, plugins/portal/public/favicon.svg) with the name beside it, white on
// the UI's top bar, and a stylesheet that gives the bar the portal's colours.

const MARK = '<rect width="32" height="32" rx="7" fill="#1f5fbf"/><path d="M6 11h20M6 16h20M6 21h20" stroke="#fff" stroke-width="3"/><rect x="14" y="5" width="4" height="22" fill="#1d2330"/>'

export const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><title>Sluice</title>${MARK}</svg>`

// 40 px high in the bar (the UI's own img height); the text in the system fonts the portal uses
export const LOGO_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 150 32" width="188" height="40"><title>Sluice</title>' +
  MARK +
  '<text x="42" y="24" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="22" font-weight="600" fill="#ffffff">Sluice</text></svg>'

// portal.css --ink for the bar; the bar's URL box serves nothing here (the UI shows this gateway's document only)
export const THEME_CSS = '.swagger-ui .topbar { background-color: #1d2330; } .swagger-ui .topbar .download-url-wrapper { display: none; }\n'
