// Fastify-free: the icon browsers ask for at /favicon.ico, drawn here rather
// than shipped as a binary: the portal's mark (public/favicon.svg: three
// streams through a gate) as a 32×32 PNG inside an ICO container (Windows
// Vista and every browser since read a PNG entry). Built once at start:
// 175 bytes.
import { crc32, deflateSync } from 'node:zlib'

// 32×32: the size browsers show in tabs at 2× (16×16 CSS pixels)
const SIZE = 32
const ACCENT = [0x1f, 0x5f, 0xbf, 0xff] // portal.css --accent
const INK = [0x1d, 0x23, 0x30, 0xff] // portal.css --ink
const WHITE = [0xff, 0xff, 0xff, 0xff]
const CLEAR = [0, 0, 0, 0]

/** The colour of pixel (x, y), sampled at its centre: the same shapes as favicon.svg. */
function pixel (x: number, y: number): number[] {
  const cx = x + 0.5
  const cy = y + 0.5
  // a square with corners of radius 7
  const r = 7
  const dx = Math.max(r - cx, cx - (SIZE - r), 0)
  const dy = Math.max(r - cy, cy - (SIZE - r), 0)
  if (dx * dx + dy * dy > r * r) return CLEAR
  if (cx >= 14 && cx <= 18 && cy >= 5 && cy <= 27) return INK
  if (cx >= 6 && cx <= 26 && [11, 16, 21].some(line => Math.abs(cy - line) <= 1.5)) return WHITE
  return ACCENT
}

function chunk (type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

/** A PNG (RGBA, 8 bits a channel) of the mark. */
export function faviconPng (): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(SIZE, 0)
  header.writeUInt32BE(SIZE, 4)
  header[8] = 8 // bits per channel
  header[9] = 6 // RGBA
  // each row: filter type 0 (none), then its pixels
  const rows = Buffer.alloc(SIZE * (1 + SIZE * 4))
  for (let y = 0; y < SIZE; y++) {
    const at = y * (1 + SIZE * 4)
    for (let x = 0; x < SIZE; x++) rows.set(pixel(x, y), at + 1 + x * 4)
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0))
  ])
}

/** An ICO file holding one PNG image (ICONDIR, one ICONDIRENTRY, the PNG). */
export function faviconIco (): Buffer {
  const png = faviconPng()
  const dir = Buffer.alloc(6 + 16)
  dir.writeUInt16LE(0, 0) // reserved
  dir.writeUInt16LE(1, 2) // 1: an icon
  dir.writeUInt16LE(1, 4) // one image
  dir[6] = SIZE // width
  dir[7] = SIZE // height
  dir[8] = 0 // no palette
  dir[9] = 0 // reserved
  dir.writeUInt16LE(1, 10) // colour planes
  dir.writeUInt16LE(32, 12) // bits per pixel
  dir.writeUInt32LE(png.length, 14)
  dir.writeUInt32LE(dir.length, 18) // the image follows the directory
  return Buffer.concat([dir, png])
}
