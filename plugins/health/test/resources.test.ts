// The watch on the node's own descriptors and heap, with a fake /proc: the
// thresholds, the hysteresis between them, one log line per episode.
import { test } from 'tap'
import Fastify from 'fastify'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import metrics from '@sluice/metrics'
import health from '../src/index.ts'
import { closeSync, openSync, readdirSync, statSync } from 'node:fs'
import { LIMITS_MAX_AGE_MS, ResourceWatch, parseFdLimit, procReader, type ProcFiles, type ResourceReader, type ResourceState, type Usage } from '../src/resources.ts'

function fakeReader (fds: Usage | undefined, heap: Usage = { used: 10, limit: 100 }) {
  const now = { fds, heap }
  const reader: ResourceReader = {
    fds: async () => now.fds && { ...now.fds },
    heap: () => ({ ...now.heap })
  }
  return { reader, now }
}

test('the soft limit is read from /proc/self/limits', async t => {
  const limits = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             63448                63448                processes ',
    'Max open files            20000                524288               files     ',
    ''
  ].join('\n')
  t.equal(parseFdLimit(limits), 20000, 'the soft one, not the hard one')
  t.equal(parseFdLimit('Max open files            unlimited            unlimited            files'), undefined)
  t.equal(parseFdLimit(''), undefined)
})

test('this process\'s descriptors, counted by the size of /proc/self/fd where the kernel gives it (no listing)', { skip: process.platform !== 'linux' && 'Linux /proc only' }, async t => {
  const reader = procReader()
  const before = (await reader.fds())!
  t.ok(before.limit > 0 && before.used > 0, `${before.used} of ${before.limit}`)
  const opened = Array.from({ length: 500 }, () => openSync('/dev/null', 'r'))
  try {
    const after = (await reader.fds())!
    t.ok(Math.abs(after.used - before.used - 500) <= 2, `500 more counted (${before.used} -> ${after.used})`)
    const size = statSync('/proc/self/fd').size
    if (size > 0) {
      // Linux 6.2+: the count is the directory's size; a listing would count its own descriptor too
      t.equal(after.used, size, 'the size of /proc/self/fd, not a listing')
      t.equal(after.used, readdirSync('/proc/self/fd').length - 1, 'the same descriptors a listing finds, less its own')
    } else {
      t.equal(after.used, readdirSync('/proc/self/fd').length, 'an older kernel: listed')
    }
  } finally {
    for (const fd of opened) closeSync(fd)
  }
})

test('the soft limit is read again once a minute, the descriptors at every sample, all from /proc without the thread pool', async t => {
  let clock = 0
  const reads = { limits: 0, size: 0, list: 0 }
  let soft = 1024
  let size = 10
  let full = false
  const files: ProcFiles = {
    limits: () => {
      reads.limits++
      if (full) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })
      return `Max open files            ${soft}                 524288               files\n`
    },
    fdDirSize: () => {
      reads.size++
      if (full) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })
      return size
    },
    listFds: async () => { reads.list++; return 7 }
  }
  const reader = procReader({ files, now: () => clock })
  t.same(await reader.fds(), { used: 10, limit: 1024 })
  // a sample a second for 59 s: the limit is not read again
  for (let i = 1; i < 60; i++) {
    clock = i * 1000
    size = 10 + i
    t.same(await reader.fds(), { used: 10 + i, limit: 1024 })
  }
  t.equal(reads.limits, 1, `the limit read once in ${LIMITS_MAX_AGE_MS / 1000} s of samples`)
  t.equal(reads.size, 60, 'the descriptors at every sample')
  // prlimit from outside: seen at the next read of the limit
  soft = 4096
  clock = LIMITS_MAX_AGE_MS
  t.same(await reader.fds(), { used: 69, limit: 4096 }, 'the new limit after a minute')
  t.equal(reads.limits, 2)
  // a full table: nothing can be opened, so the last limit counts as reached
  full = true
  clock = 2 * LIMITS_MAX_AGE_MS
  t.same(await reader.fds(), { used: 4096, limit: 4096 }, 'EMFILE: the table is full at the last limit read')
  // an older kernel gives no size: the directory is listed
  full = false
  size = 0
  clock += 1000
  t.same(await reader.fds(), { used: 7, limit: 4096 }, 'no size: listed')
  t.equal(reads.list, 1)
})

test('not ready from 90 % of the descriptors, ready again only below 80 %', async t => {
  const { reader, now } = fakeReader({ used: 100, limit: 256 })
  const exhausted: ResourceState[] = []
  const recovered: ResourceState[] = []
  const watch = new ResourceWatch({ reader, onExhausted: s => exhausted.push(s), onRecovered: s => recovered.push(s) })
  await t.resolves(watch.check('fds'))

  now.fds = { used: 230, limit: 256 } // 89.8 %
  await t.resolves(watch.check('fds'), 'just under 90 %: ready')
  now.fds = { used: 231, limit: 256 } // 90.2 %
  await t.rejects(watch.check('fds'), /231 of 256 file descriptors open \(90 %\); ready again below 80 %/)
  t.equal(exhausted.length, 1, 'the crossing is reported')
  t.match(exhausted[0], { resource: 'fds', used: 231, limit: 256, exhausted: true })

  now.fds = { used: 255, limit: 256 }
  await t.rejects(watch.check('fds'))
  now.fds = { used: 210, limit: 256 } // 82 %: under 90 % but not under 80 %
  await t.rejects(watch.check('fds'), 'between the two ratios it stays not ready')
  t.equal(exhausted.length, 1, 'once per episode, however many samples see it')
  t.equal(recovered.length, 0)

  now.fds = { used: 204, limit: 256 } // 79.7 %
  await t.resolves(watch.check('fds'), 'below 80 %: ready again')
  t.equal(recovered.length, 1)
  now.fds = { used: 215, limit: 256 }
  await t.resolves(watch.check('fds'), 'going up again between the ratios stays ready')

  now.fds = { used: 240, limit: 256 }
  await t.rejects(watch.check('fds'))
  t.equal(exhausted.length, 2, 'a second episode is reported again')
})

test('the heap against its limit, on its own', async t => {
  const { reader, now } = fakeReader({ used: 10, limit: 256 }, { used: 500 * 2 ** 20, limit: 1024 * 2 ** 20 })
  const exhausted: string[] = []
  const watch = new ResourceWatch({ reader, onExhausted: s => exhausted.push(s.resource) })
  await t.resolves(watch.check('heap'))
  now.heap = { used: 930 * 2 ** 20, limit: 1024 * 2 ** 20 }
  await t.rejects(watch.check('heap'), /930 MiB of the 1024 MiB heap used \(91 %\)/)
  await t.resolves(watch.check('fds'), 'the descriptors are fine')
  t.same(exhausted, ['heap'])
})

test('without /proc the descriptors are not judged; a full table counts as the limit', async t => {
  const { reader, now } = fakeReader(undefined)
  const watch = new ResourceWatch({ reader })
  await t.resolves(watch.check('fds'))
  t.equal((await watch.sample()).fds, undefined)
  now.fds = { used: 256, limit: 256 }
  await t.rejects(watch.check('fds'), /256 of 256/)
})

test('callers at the same moment share one read; a read younger than maxAgeMs is reused', async t => {
  let reads = 0
  const watch = new ResourceWatch({
    reader: {
      fds: async () => { reads++; await new Promise(resolve => setTimeout(resolve, 10)); return { used: 1, limit: 256 } },
      heap: () => ({ used: 1, limit: 100 })
    }
  })
  await Promise.all(Array.from({ length: 20 }, () => watch.sample()))
  t.equal(reads, 1)
  await watch.sample(60_000)
  t.equal(reads, 1, 'reused')
  await watch.sample()
  t.equal(reads, 2)
})

test('ratios that cannot make a hysteresis are refused', async t => {
  t.throws(() => new ResourceWatch({ notReadyRatio: 0.8, readyRatio: 0.9 }), /readyRatio/)
  t.throws(() => new ResourceWatch({ notReadyRatio: 1.5 }), /notReadyRatio/)
})

test('/readyz, one warn line and /metrics follow an episode of the plugin', async t => {
  const { reader, now } = fakeReader({ used: 40, limit: 256 })
  const lines: Array<{ level: number, msg: string, resource?: string }> = []
  const logger = pino({ level: 'info' }, new Writable({ write (chunk, _enc, done) { lines.push(...String(chunk).split('\n').filter(Boolean).map(l => JSON.parse(l))); done() } }))
  const app = Fastify({ loggerInstance: logger })
  await app.register(metrics, { defaultMetrics: false })
  await app.register(health, { resources: { reader, intervalMs: 20 } })
  t.teardown(() => app.close())
  const readyz = async () => {
    // readiness runs serve for 100 ms; wait them out so each probe sees the fake's latest numbers
    await new Promise(resolve => setTimeout(resolve, 250))
    const res = await app.inject('/readyz')
    return { status: res.statusCode, checks: res.json().checks }
  }
  const scrape = async () => (await app.inject('/metrics')).body

  t.match(await readyz(), { status: 200, checks: { fds: { ok: true }, heap: { ok: true } } })
  t.match(await scrape(), /sluice_open_fds 40\n/)
  t.match(await scrape(), /sluice_fd_limit 256\n/)

  now.fds = { used: 250, limit: 256 }
  const down = await readyz()
  t.equal(down.status, 503)
  t.match(down.checks.fds.reason, /250 of 256 file descriptors open \(98 %\); ready again below 80 %/)
  // the timer samples every 20 ms: several samples saw the episode, one line tells it
  await new Promise(resolve => setTimeout(resolve, 100))
  const warns = lines.filter(l => l.level === 40)
  t.equal(warns.length, 1, 'one warn line per episode')
  t.match(warns[0], { resource: 'fds', msg: /not ready: 250 of 256 file descriptors open/ })
  const metricsText = await scrape()
  t.match(metricsText, /sluice_resource_exhaustions_total\{resource="fds"\} 1\n/)
  t.match(metricsText, /sluice_resource_exhausted\{resource="fds"\} 1\n/)
  t.match(metricsText, /sluice_resource_exhausted\{resource="heap"\} 0\n/)
  t.notMatch(metricsText, /sluice_dependency_up\{dependency="fds"\}/, 'the node\'s own state is not a dependency')

  now.fds = { used: 30, limit: 256 }
  t.equal((await readyz()).status, 200, 'ready again below 80 %')
  t.match(lines.at(-1), { level: 30, resource: 'fds' }, 'the recovery is logged at info')
  t.match(await scrape(), /sluice_resource_exhausted\{resource="fds"\} 0\n/)
})

test('the timer logs an episode while nobody asks /readyz', async t => {
  const { reader, now } = fakeReader({ used: 40, limit: 256 })
  const lines: Array<{ level: number }> = []
  const logger = pino({ level: 'info' }, new Writable({ write (chunk, _enc, done) { lines.push(...String(chunk).split('\n').filter(Boolean).map(l => JSON.parse(l))); done() } }))
  const app = Fastify({ loggerInstance: logger })
  await app.register(health, { resources: { reader, intervalMs: 20 } })
  t.teardown(() => app.close())
  await app.ready()
  now.fds = { used: 256, limit: 256 }
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(lines.filter(l => l.level === 40).length, 1)
})
