// /metrics: prom-client's default metrics with the app's prefix, less the one that walks /proc/self/fd
// on the main thread at every scrape (the health plugin's sluice_open_fds counts the same, asynchronously).
import { test } from 'tap'
import Fastify from 'fastify'
import fs from 'node:fs'
import metrics from '../src/index.ts'

test('a scrape never reads /proc/self/fd on the main thread, and the other default metrics stay', async t => {
  const app = Fastify()
  await app.register(metrics)
  t.teardown(() => app.close())
  const read: string[] = []
  const readdirSync = fs.readdirSync
  // prom-client's collectors call fs.readdirSync through the module object, so this sees their reads
  fs.readdirSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    read.push(String(path))
    return (readdirSync as (...args: unknown[]) => unknown)(path, ...rest)
  }) as typeof fs.readdirSync
  t.teardown(() => { fs.readdirSync = readdirSync })

  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.same(read.filter(path => path.startsWith('/proc/self/fd')), [], 'no synchronous walk of the descriptors')
  t.notMatch(res.body, /^sluice_process_open_fds /m, 'prom-client\'s own count is gone')
  t.match(res.body, /^sluice_process_resident_memory_bytes \d+/m, 'the rest of the defaults are there, prefixed')
  t.match(res.body, /^sluice_process_max_fds \d+/m, 'the limit (read once at start) is kept')
  t.match(res.body, /^sluice_nodejs_active_handles_total \d+/m)
})

test('no default metrics when the app asks for none, and a prefix of its own', async t => {
  const bare = Fastify()
  await bare.register(metrics, { defaultMetrics: false })
  t.teardown(() => bare.close())
  t.equal((await bare.inject('/metrics')).body.trim(), '')

  const other = Fastify()
  await other.register(metrics, { prefix: 'edge_' })
  t.teardown(() => other.close())
  const body = (await other.inject('/metrics')).body
  t.match(body, /^edge_process_resident_memory_bytes \d+/m)
  t.notMatch(body, /^edge_process_open_fds /m)
})
