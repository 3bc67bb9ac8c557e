// Fastify-free: the portal's files, read once from the package's `public/`
// folder into memory (a few tens of KiB), each with its content type and an
// ETag, and the charting library's two files from its npm package (VENDOR).
// Only these names are served, looked up in a Map: a request path is never
// joined to a file-system path, so there is nothing to traverse.
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml'
}

// a plain file name: what the page links to, nothing that could name a folder
export const ASSET_NAME = /^[a-z0-9][a-z0-9-]{0,63}\.(?:html|css|js|svg)$/

/**
 * Sent with every portal file. The page runs only its own scripts and styles
 * (no inline script, nothing from another origin), talks only to this gateway
 * over HTTP and WebSocket, and cannot be framed (a console holding a
 * credential must not be clickjacked).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self' ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // the page's URL carries no secret, but a reader may paste one into the console: tell no one where it was
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin'
}

/**
 * Files of npm packages served beside public/, by the name the page asks for: uPlot (MIT, 51 KB
 * minified), the usage chart's library, small and canvas-drawn, with no inline style or script
 * (the CSP above holds), loaded by the page only when it draws a chart.
 */
export const VENDOR: Readonly<Record<string, string>> = {
  'uplot.js': 'uplot/dist/uPlot.iife.min.js',
  'uplot.css': 'uplot/dist/uPlot.min.css'
}

export interface Asset {
  body: Buffer
  type: string
  etag: string
}

/** A body to serve, with its ETag: a digest of its bytes. */
export function toAsset (body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }
}

/** Every servable file of `dir` (not its subfolders), by name. */
export async function loadAssets (dir: string = PUBLIC_DIR): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>()
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !ASSET_NAME.test(entry.name)) continue
    assets.set(entry.name, toAsset(await readFile(join(dir, entry.name)), TYPES[extname(entry.name)]!))
  }
  if (!assets.has('index.html')) throw new Error(`the portal has no index.html in ${dir}`)
  for (const [name, specifier] of Object.entries(VENDOR)) {
    if (assets.has(name)) continue
    assets.set(name, toAsset(await readFile(fileURLToPath(import.meta.resolve(specifier))), TYPES[extname(name)]!))
  }
  return assets
}
