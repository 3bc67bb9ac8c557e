// Running transform modules: what a throw, a bad result, a discard and a
// slow call cost (one message each), disabling a module that keeps running
// over its budget, and once-per-record output with copies of the bytes.
import { test } from 'tap'
import type { ConsumedRecord, Logger } from '@sluice/kafka'
import type { LoadedTransform, TransformFunction, TransformMessage } from '@sluice/policy'
import { DEFAULT_TRANSFORM_LIMITS, TransformRunner, type FailureReason } from '../src/transform-runner.ts'

function setup (fn: TransformFunction, limits = DEFAULT_TRANSFORM_LIMITS) {
  const failures: FailureReason[] = []
  let discards = 0
  const logs: Array<{ level: string, msg?: string }> = []
  const log: Logger = {
    debug () {},
    info () {},
    warn (_obj, msg) { logs.push({ level: 'warn', msg }) },
    error (_obj, msg) { logs.push({ level: 'error', msg }) }
  }
  const transform: LoadedTransform = { id: 'test', file: '/policies/transforms/test.ts', fn }
  const runner = new TransformRunner(transform, 'input', limits, log, { failure: (_d, reason) => failures.push(reason), discard: () => { discards++ } })
  return { runner, failures, logs, discards: () => discards }
}

const message = (value = '{"a":1}'): TransformMessage => ({ topic: 'in', key: null, value: Buffer.from(value), headers: {}, timestamp: 1 })

/** Spends `ms` of this thread's CPU, as the runner measures it (a wait on the clock gets less CPU on a loaded machine). */
function busy (ms: number): void {
  const cpu = () => { const u = process.threadCpuUsage(); return (u.user + u.system) / 1000 }
  const until = cpu() + ms
  while (cpu() < until) { /* a slow transform */ }
}

test('results: a message, undefined for unchanged, null to discard; strings become bytes', async t => {
  const { runner, discards } = setup(m => m.topic === 'drop' ? null : m.topic === 'same' ? undefined : { ...m, topic: 'out', key: 'k', value: 'v', headers: { h: 'x' } } as unknown as TransformMessage)
  t.match(runner.run(message()), { ok: true, message: { topic: 'out', key: Buffer.from('k'), value: Buffer.from('v'), headers: { h: Buffer.from('x') }, timestamp: 1 } })
  t.match(runner.run({ ...message(), topic: 'same' }), { ok: true, message: { topic: 'same', value: Buffer.from('{"a":1}') } })
  t.same(runner.run({ ...message(), topic: 'drop' }), { ok: true, message: null })
  t.equal(discards(), 1, 'a discard is counted')
})

test('a throw or a result that is not a message costs that message only', async t => {
  let calls = 0
  const { runner, failures, logs } = setup(m => {
    calls++
    const v = m.value?.toString()
    if (v === 'throw') throw new Error('boom')
    if (v === 'array') return [] as unknown as TransformMessage
    if (v === 'no-topic') return { ...m, topic: '' }
    if (v === 'bad-value') return { ...m, value: 5 } as unknown as TransformMessage
    if (v === 'bad-time') return { ...m, timestamp: -1 }
    return m
  })
  t.match(runner.run(message('throw')), { ok: false, error: { code: 'SLUICE_COMPAT_TRANSFORM_FAILED', message: /boom/ } })
  for (const bad of ['array', 'no-topic', 'bad-value', 'bad-time']) {
    t.match(runner.run(message(bad)), { ok: false, error: { code: 'SLUICE_COMPAT_TRANSFORM_FAILED' } }, bad)
  }
  t.match(runner.run(message('fine')), { ok: true }, 'the next message goes through')
  t.same(failures, ['threw', 'invalid', 'invalid', 'invalid', 'invalid'])
  t.equal(logs.filter(l => l.level === 'warn').length, 1, 'logged once, not once per failure (10 s apart at most)')
  t.equal(calls, 6)
})

test('a call over its budget is skipped; a module that keeps running over is disabled, then tried again', async t => {
  let slow = true
  let calls = 0
  const limits = { ...DEFAULT_TRANSFORM_LIMITS, disabledMs: 300 }
  const { runner, failures, logs } = setup(m => {
    calls++
    // four times the budget
    if (slow) busy(DEFAULT_TRANSFORM_LIMITS.budgetMs * 4)
    return m
  }, limits)
  t.match(runner.run(message()), { ok: false, error: { code: 'SLUICE_COMPAT_TRANSFORM_SLOW' } }, 'its result comes too late: skipped')
  for (let i = 1; i < DEFAULT_TRANSFORM_LIMITS.maxOverruns; i++) runner.run(message())
  t.ok(runner.disabled, `disabled after ${DEFAULT_TRANSFORM_LIMITS.maxOverruns} overruns within the window`)
  t.ok(logs.some(l => l.level === 'error' && /transform disabled/.test(l.msg ?? '')), 'and said so')
  slow = false
  const before = calls
  t.match(runner.run(message()), { ok: false, error: { code: 'SLUICE_COMPAT_TRANSFORM_DISABLED' } }, 'fail closed: skipped without a call')
  t.equal(calls, before, 'not called while disabled')
  t.equal(failures.filter(f => f === 'slow').length, DEFAULT_TRANSFORM_LIMITS.maxOverruns)
  t.equal(failures.at(-1), 'disabled')
  await new Promise(resolve => setTimeout(resolve, limits.disabledMs + 50))
  t.match(runner.run(message()), { ok: true }, 'tried again after the disabled period')
  t.notOk(runner.disabled)
})

// the thread blocked without spending CPU: what a descheduled process looks like from inside the call
function blocked (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

test('the budget is CPU spent, not the clock: a call descheduled on a busy machine keeps its message; one blocked past a second does not', async t => {
  const { runner, failures } = setup(m => {
    const v = m.value?.toString()
    if (v === 'waits') blocked(DEFAULT_TRANSFORM_LIMITS.budgetMs * 6)
    if (v === 'hangs') blocked(1100)
    return m
  })
  t.match(runner.run(message('waits')), { ok: true }, '30 ms on the clock, ~0 of CPU: not over the budget')
  t.match(runner.run(message('hangs')), { ok: false, error: { code: 'SLUICE_COMPAT_TRANSFORM_SLOW' } }, '1.1 s on the clock: over the wall limit')
  t.same(failures, ['slow'])
})

test('output: once per record whatever the number of formats, on copies of its bytes', async t => {
  let calls = 0
  const { runner } = setup(m => {
    calls++
    m.value!.fill(0x78)
    return m
  })
  const record: ConsumedRecord = { topic: 'in', partition: 0, offset: '7', timestamp: '1732500000000', key: Buffer.from('k'), value: Buffer.from('abc'), headers: { h: Buffer.from('v') } }
  const first = runner.output(record)
  t.equal(first?.value?.toString(), 'xxx')
  t.equal(first?.timestamp, 1732500000000, 'the record\'s timestamp, in ms')
  t.equal(runner.output(record), first, 'the same result for the next format')
  t.equal(calls, 1)
  t.equal(record.value?.toString(), 'abc', 'the record itself is untouched: other routes send it as it is')
})
