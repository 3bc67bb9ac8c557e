// What the resume window holds per record beyond its bytes (plugins/hub/src/window.ts): N records of a
// 66-byte value appended in batches of K, each batch's values views of one buffer as the reader hands
// them (a fetch response), no frames; V8's heap and the array buffers after full GCs, against the
// window's own count (RECORD_OVERHEAD and CHUNK_OVERHEAD). Then how many records the default window
// (stream.resumeWindowBytes) holds, each batch with the native frames the live dispatch built for it.
//
//   bash deploy/local/node.sh --expose-gc bench/window-memory.ts [--records 200000] [--batches 1,20,200]
import { parseArgs } from 'node:util'
import type { ConsumedRecord } from '@sluice/kafka'
import { nativeFormat } from '@sluice/hub'
import { WindowBudget, DEFAULT_WINDOW_BOUNDS } from '@sluice/hub/window'
import { cacheKeyOf, frameBatch } from '@sluice/hub/framed-batch'

const { values } = parseArgs({ options: { records: { type: 'string', default: '200000' }, batches: { type: 'string', default: '1,20,200' } } })
const N = Number(values.records)
const VALUE = 66
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')

function held (): number {
  for (let i = 0; i < 4; i++) gc!()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

function batch (from: number, k: number): ConsumedRecord[] {
  const response = Buffer.allocUnsafeSlow(k * VALUE)
  return Array.from({ length: k }, (_v, i) => ({
    topic: 'bench.window',
    partition: 0,
    offset: String(from + i),
    timestamp: String(1733486400000 + from + i),
    key: null,
    value: response.subarray(i * VALUE, (i + 1) * VALUE).fill(97),
    headers: {}
  }))
}

for (const framed of [false, true]) {
  for (const k of values.batches.split(',').map(Number)) {
    const budget = new WindowBudget({ maxBytes: Number.MAX_SAFE_INTEGER })
    const window = budget.window('bench.window', { maxBytes: Number.MAX_SAFE_INTEGER, maxAgeMs: Number.MAX_SAFE_INTEGER })
    window.open(0, 0n)
    const before = held()
    for (let at = 0; at < N; at += k) {
      const records = batch(at, k)
      window.append(0, records, undefined, framed ? new Map([[cacheKeyOf(nativeFormat.key, 'json'), frameBatch(records, nativeFormat, 'json')]]) : undefined)
    }
    const after = held()
    const perRecord = (after - before) / N
    console.log(`batches of ${k}${framed ? ', native frames' : ''}: ${perRecord.toFixed(0)} bytes held a record (${(perRecord - VALUE).toFixed(0)} beyond its ${VALUE}-byte value); the window counts ${(window.bytes / N).toFixed(0)}`)
    window.close()
  }
}

for (const k of values.batches.split(',').map(Number)) {
  const window = new WindowBudget().window('bench.window', { ...DEFAULT_WINDOW_BOUNDS, maxAgeMs: Number.MAX_SAFE_INTEGER })
  window.open(0, 0n)
  let at = 0
  for (; at < 40_000; at += k) {
    const records = batch(at, k)
    window.append(0, records, undefined, new Map([[cacheKeyOf(nativeFormat.key, 'json'), frameBatch(records, nativeFormat, 'json')]]))
  }
  const held = Number(window.end(0)! - window.start(0)!)
  console.log(`batches of ${k}, native frames: the default window (${DEFAULT_WINDOW_BOUNDS.maxBytes} bytes) holds the last ${held} records`)
  window.close()
}
