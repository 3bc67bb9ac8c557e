// GET /favicon.ico: an ICO holding one 32×32 PNG, drawn by favicon.ts, with
// the portal's security headers and an ETag; the page links favicon.svg.
import { test } from 'tap'
import Fastify from 'fastify'
import { inflateSync } from 'node:zlib'
import portal, { faviconIco, faviconPng } from '@sluice/portal'

test('/favicon.ico is an ICO with one 32x32 PNG of the mark, revalidated by its ETag', async t => {
  const fastify = Fastify({ logger: false })
  await fastify.register(portal)
  t.teardown(() => fastify.close())
  const res = await fastify.inject({ url: '/favicon.ico' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'image/x-icon')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  const ico = res.rawPayload
  t.same(ico, faviconIco())
  t.same([ico.readUInt16LE(0), ico.readUInt16LE(2), ico.readUInt16LE(4)], [0, 1, 1], 'ICONDIR: an icon, one image')
  t.same([ico[6], ico[7], ico.readUInt16LE(12)], [32, 32, 32], '32x32, 32 bits a pixel')
  const png = ico.subarray(ico.readUInt32LE(18))
  t.equal(ico.readUInt32LE(14), png.length, 'the entry says where the image is and how long')
  t.same(png, faviconPng())
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG signature')
  t.same([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]], [32, 32, 8, 6], 'IHDR: 32x32, RGBA 8 bits')
  // the pixels: transparent corners, the accent colour, the ink of the gate, the white streams
  const idat = png.indexOf('IDAT')
  const rows = inflateSync(png.subarray(idat + 4, idat + 4 + png.readUInt32BE(idat - 4)))
  const at = (x: number, y: number) => [...rows.subarray(y * 129 + 1 + x * 4, y * 129 + 1 + x * 4 + 4)]
  t.same(at(0, 0), [0, 0, 0, 0], 'a rounded corner is transparent')
  t.same(at(3, 3), [0x1f, 0x5f, 0xbf, 0xff], 'the accent')
  t.same(at(16, 16), [0x1d, 0x23, 0x30, 0xff], 'the gate')
  t.same(at(8, 16), [0xff, 0xff, 0xff, 0xff], 'a stream')

  const again = await fastify.inject({ url: '/favicon.ico', headers: { 'if-none-match': String(res.headers.etag) } })
  t.equal(again.statusCode, 304)
  const svg = await fastify.inject({ url: '/portal/favicon.svg' })
  t.equal(svg.statusCode, 200)
  t.equal(svg.headers['content-type'], 'image/svg+xml')
  t.match((await fastify.inject({ url: '/portal' })).body, /<link rel="icon" href="\/portal\/favicon\.svg" type="image\/svg\+xml">/)
})
